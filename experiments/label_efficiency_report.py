"""Tables and figures of the label-efficiency study (``label_efficiency.py``), from its finished steps only."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from study.tables import mean_sd, per_image

NAMES = {"unet": "BasicUNet scratch", "scratch": "adapter scratch (patch 8)", "mae": "MAE → adapter (patch 8)",
         "vasomim": "VasoMIM, border-only pseudo-mask → adapter (patch 8)",
         "vasomim_fov": "VasoMIM, field-of-view pseudo-mask → adapter (patch 8)",
         "vasomim_unetr": "VasoMIM, border-only pseudo-mask → VesselUNETR (patch 16)",
         "probe_random": "frozen random encoder + adapter", "probe_mae": "frozen MAE encoder + adapter",
         "probe_vasomim": "frozen VasoMIM (border-only) encoder + adapter",
         "probe_vasomim_fov": "frozen VasoMIM (field of view) encoder + adapter",
         "mae_p8": "MAE pretrained at patch 8 → adapter (patch 8)",
         "vasomim_p8": "VasoMIM pretrained at patch 8 (field of view) → adapter (patch 8)",
         "probe_mae_p8": "frozen MAE (patch 8) encoder + adapter",
         "probe_vasomim_p8": "frozen VasoMIM (patch 8) encoder + adapter",
         "mae_p8_e100": "MAE pretrained at patch 8, 100 epochs → adapter (patch 8)",
         "vasomim_p8_e100": "VasoMIM pretrained at patch 8, 100 epochs → adapter (patch 8)",
         "probe_mae_p8_e100": "frozen MAE (patch 8, 100 epochs) encoder + adapter",
         "probe_vasomim_p8_e100": "frozen VasoMIM (patch 8, 100 epochs) encoder + adapter",
         "unet_cl": "BasicUNet scratch, + clDice loss", "scratch_cl": "adapter scratch (patch 8), + clDice loss",
         "vasomim_p8_cl": "VasoMIM pretrained at patch 8 → adapter (patch 8), + clDice loss",
         "unet_dice": "BasicUNet scratch, Dice loss", "scratch_dice": "adapter scratch (patch 8), Dice loss",
         "mae_p8_e100_dice": "MAE pretrained at patch 8, 100 epochs → adapter (patch 8), Dice loss",
         "vasomim_p8_e100_dice": "VasoMIM pretrained at patch 8, 100 epochs → adapter (patch 8), Dice loss",
         "unet_224": "BasicUNet scratch, 224² input",
         "scratch_dice_224": "adapter scratch (patch 8), Dice loss, 224² input",
         "vasomim_p8_e100_dice_224": "VasoMIM pretrained at patch 8, 100 epochs → adapter (patch 8), Dice loss, "
                                     "224² input",
         "vasomim_i224_e100_dice_224": "VasoMIM pretrained at 224² and patch 16, 100 epochs → adapter (patch 8), "
                                       "Dice loss, 224² input",
         "vasomim_p8_e100_w256_dice_224": "VasoMIM at patch 8, 100 epochs, 256² frames → adapter (patch 8), "
                                          "Dice loss, 224² input",
         "vasomim_p8_e100_cl_dice_224": "VasoMIM pretrained at patch 8, 100 epochs → adapter (patch 8), Dice + "
                                        "clDice loss, 224² input",
         "unet_cl_224": "BasicUNet scratch, + clDice loss, 224² input",
         "vasomim_p8_e200_dice_224": "VasoMIM pretrained at patch 8, 200 epochs → adapter (patch 8), Dice loss, "
                                     "224² input",
         "unet_256": "BasicUNet scratch, 256² input",
         "vasomim_p8_e100_dice_256": "VasoMIM pretrained at patch 8, 100 epochs → adapter (patch 8), Dice loss, "
                                     "256² input",
         "unet_288": "BasicUNet scratch, 288² input",
         "vasomim_p8_e100_dice_288": "VasoMIM pretrained at patch 8, 100 epochs → adapter (patch 8), Dice loss, "
                                     "288² input",
         "unet_aug_256": "BasicUNet scratch, 256² input, the authors' augmentation and warm-up",
         "vasomim_p8_e100_dice_aug_256": "VasoMIM pretrained at patch 8, 100 epochs → adapter (patch 8), Dice loss, "
                                         "256² input, the authors' augmentation and warm-up",
         "scratch_dice_aug_256": "adapter scratch (patch 8), Dice loss, 256² input, the authors' augmentation and "
                                 "warm-up"}
CURVE_ARMS = ("unet", "scratch", "mae_p8_e100", "vasomim_p8_e100", "unet_dice", "scratch_dice", "mae_p8_e100_dice",
              "vasomim_p8_e100_dice", "unet_224", "scratch_dice_224", "vasomim_p8_e100_dice_224",
              "vasomim_i224_e100_dice_224", "vasomim_p8_e100_w256_dice_224", "vasomim_p8_e200_dice_224", "unet_256",
              "vasomim_p8_e100_dice_256", "unet_288", "vasomim_p8_e100_dice_288")
"""The arms of the curve figure: the longest pretrainings and the baselines, with each fine-tuning loss and size."""


SIZE_STYLES = {"_224": {"linestyle": ":", "marker": "s"}, "_256": {"linestyle": "-.", "marker": "^"},
               "_288": {"linestyle": (0, (5, 1)), "marker": "D"}}
"""Line styles of the arms fine-tuned at another input size than the scale's, by arm-name suffix."""


def size_suffix(arm: str) -> str:
    """The ``SIZE_STYLES`` suffix that ``arm`` ends with, or ""."""
    return next((s for s in SIZE_STYLES if arm.endswith(s)), "")


def curve_style(arm: str) -> dict:
    """Colour by base arm (the arm without its ``_dice`` and size suffixes), dashed for the Dice loss, dotted with
    squares at 224², dash-dotted with triangles at 256², densely dashed with diamonds at 288²."""
    bases = [a.removesuffix(size_suffix(a)).removesuffix("_dice") for a in CURVE_ARMS]
    colour = f"C{list(dict.fromkeys(bases)).index(bases[CURVE_ARMS.index(arm)])}"
    if size := size_suffix(arm):
        return {"color": colour, **SIZE_STYLES[size]}
    return {"color": colour, "linestyle": "--" if arm.endswith("_dice") else "-", "marker": "o"}


def _empty_row() -> dict:
    return {"seeds": [], "dice": [], "cldice": [], "cpu_s": []}


def collect(runs: Path, split: str) -> dict[tuple[str, int], dict]:
    """{(arm, n): {"seeds": [...], "dice": [...], "cldice": [...], "cpu_s": [...]}} over the finished evaluations on
    ``split`` ("val" or "test"); dice and cldice are means over images, per seed."""
    rows: dict[tuple[str, int], dict] = {}
    for done in sorted((runs / "seg").glob(f"*/n*/seed*/{split}/done.json")):
        seed_dir = done.parents[1]
        arm, n, seed = seed_dir.parents[1].name, int(seed_dir.parent.name[1:]), int(seed_dir.name[4:])
        m = per_image(done.parent / "eval")
        row = rows.setdefault((arm, n), _empty_row())
        row["seeds"].append(seed)
        row["dice"].append(sum(m["dice"]) / len(m["dice"]))
        row["cldice"].append(sum(m["cldice"]) / len(m["cldice"]))
        steps = [seed_dir / "train" / "done.json", done]
        row["cpu_s"].append(sum(json.loads(p.read_text())["cpu_s"] for p in steps if p.exists()))
    return rows


def merge_ledger(rows: dict, ledger: Path) -> dict:
    """Adds to ``rows`` the (arm, n, seed) results of an earlier ``labels.csv`` that ``rows`` lacks, so that a study
    resumed in a fresh checkout (whose gitignored runs are gone) keeps what was measured before."""
    if not ledger.exists():
        return rows
    with open(ledger, newline="") as f:
        for r in csv.DictReader(f):
            row = rows.setdefault((r["arm"], int(r["n_labels"])), _empty_row())
            if int(r["seed"]) not in row["seeds"]:
                row["seeds"].append(int(r["seed"]))
                row["dice"].append(float(r["dsc"]) / 100)
                row["cldice"].append(float(r["cldice"]) / 100)
                row["cpu_s"].append(float(r["train_eval_cpu_s"]))
    return rows


def cell(row: dict | None, key: str) -> str:
    """"mean ± sd (k)" in %, or "—"."""
    if not row:
        return "—"
    m, sd = mean_sd(row[key])
    k = len(row["seeds"])
    return f"{100 * m:.1f} ± {100 * sd:.1f} ({k})" if k > 1 else f"{100 * m:.1f} (1)"


def table(rows: dict, arms: list[str], labels: list[int], title: str) -> list[str]:
    """Markdown: one row per arm, DSC and clDice per label count."""
    head = "| arm | " + " | ".join(f"{n} labels DSC | {n} labels clDice" for n in labels) + " |"
    lines = [title, "", head, "|---|" + "---|---|" * len(labels)]
    for arm in arms:
        if any((arm, n) in rows for n in labels):
            cells = " | ".join(f"{cell(rows.get((arm, n)), 'dice')} | {cell(rows.get((arm, n)), 'cldice')}"
                               for n in labels)
            lines.append(f"| {NAMES.get(arm, arm)} | {cells} |")
    return lines


def write_csv(rows: dict, path: Path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arm", "n_labels", "seed", "dsc", "cldice", "train_eval_cpu_s"])
        for (arm, n), row in sorted(rows.items()):
            for i, seed in sorted(enumerate(row["seeds"]), key=lambda x: x[1]):
                w.writerow([arm, n, seed, f"{100 * row['dice'][i]:.2f}", f"{100 * row['cldice'][i]:.2f}",
                            f"{row['cpu_s'][i]:.0f}"])


def curve_figure(rows: dict, path: Path) -> None:
    """DSC and clDice against the number of labels (log2 axis), mean ± sd over seeds, one line per arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 5.8))
    for ax, key, title in ((axes[0], "dice", "DSC (%)"), (axes[1], "cldice", "clDice (%)")):
        for arm in CURVE_ARMS:
            ns = sorted(n for a, n in rows if a == arm)
            if not ns:
                continue
            stats = [mean_sd(rows[(arm, n)][key]) for n in ns]
            ax.errorbar(ns, [100 * m for m, _ in stats], yerr=[100 * sd for _, sd in stats], capsize=3,
                        label=NAMES[arm], **curve_style(arm))
        ax.set_xscale("log", base=2)
        ax.set_xlabel("labelled training images")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=2, fontsize=7)
    fig.tight_layout(rect=(0, 0.26, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def keep_pretraining_metrics(runs: Path, kept: Path) -> None:
    """Copies each finished pretraining's ``metrics.jsonl`` to ``kept/<arm>.jsonl`` (committed with the results)."""
    kept.mkdir(parents=True, exist_ok=True)
    for metrics in sorted((runs / "pretrain").glob("*/run/metrics.jsonl")):
        if (metrics.parents[1] / "done.json").exists():
            (kept / f"{metrics.parents[1].name}.jsonl").write_text(metrics.read_text())


def pretraining_curves(kept: Path, path: Path) -> list[str]:
    """L_rec (and L_cons) per epoch of each pretraining, from ``kept/<arm>.jsonl``; returns a markdown summary."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = ["| pretraining | epochs | L_rec first → last | L_rec best epoch | L_cons first → last |",
             "|---|---|---|---|---|"]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for metrics in sorted(kept.glob("*.jsonl")):
        records = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
        if not records:
            continue
        arm = metrics.stem
        rec = [r["loss_rec"] for r in records]
        ax.plot([r["epoch"] for r in records], rec, label=f"{arm} L_rec")
        cons = [r.get("loss_cons", 0.0) for r in records]
        if any(cons):
            ax.plot([r["epoch"] for r in records], cons, "--", label=f"{arm} L_cons")
        best = min(range(len(rec)), key=rec.__getitem__)
        cons_text = f"{cons[0]:.3f} → {cons[-1]:.3f}" if any(cons) else "—"
        lines.append(f"| {arm} | {len(records)} | {rec[0]:.3f} → {rec[-1]:.3f} | {records[best]['epoch']} | "
                     f"{cons_text} |")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (epoch mean)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return lines


def write_report(runs: Path, results: Path, figures: Path, s: dict, test: str | None = None) -> None:
    """Writes ``labels.md``/``labels.csv`` (and, when ``test`` names the test images, ``labels_test.*``), the curve
    figure and the pretraining curves."""
    results.mkdir(parents=True, exist_ok=True)
    caption = (f"{s['img_size']}² input unless the arm says otherwise, ViT {s['hidden_size']}-d/{s['num_layers']} "
               f"layers, {s['iterations']} fine-tuning iterations of batch {s['seg_batch']} whatever the label count, "
               "nested label subsets of the 32 training images of xca_dca80_train (split seed 0). DSC and clDice (%), "
               "mean ± sd over fine-tuning seeds (number of seeds in brackets)")
    md = []
    for split in ("val", "test") if test else ("val",):
        csv_path = results / f"labels{'' if split == 'val' else '_test'}.csv"
        rows = merge_ledger(collect(runs, split), csv_path)
        if not rows:
            continue
        labels = sorted({n for _, n in rows})
        where = "the 8 validation images" if split == "val" else test
        fine_tuned = [*CURVE_ARMS, *(a for a in NAMES if a not in CURVE_ARMS and not a.startswith("probe_"))]
        md += table(rows, fine_tuned, labels, f"Fine-tuned, on {where}: {caption}.") + [""]
        probes = [a for a in NAMES if a.startswith("probe_") and any(a == arm for arm, _ in rows)]
        if probes:
            md += table(rows, probes, labels, f"Frozen-encoder probe (only the adapter trained), on {where}.") + [""]
        write_csv(rows, csv_path)
        curve_figure(rows, figures / f"label_efficiency{'' if split == 'val' else '_test'}.png")
    keep_pretraining_metrics(runs, results / "pretraining")
    md += ["Pretraining (seed 0), epoch means:", ""] + pretraining_curves(results / "pretraining",
                                                                          figures / "pretraining_curves.png")
    (results / "labels.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))

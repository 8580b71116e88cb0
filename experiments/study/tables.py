"""Per-image metrics of finished evaluation steps, gathered per arm into the study's tables."""

from __future__ import annotations

import csv
import glob
import json
from pathlib import Path

from .arms import BAR, LABELS, base_arm


def per_image_named(eval_dir: Path) -> dict[str, dict[str, float]]:
    """Per-image DSC and clDice from MetricsSaver's ``*_raw.csv`` files, by image path in file order:
    {"dice": {path: value}, "cldice": {path: value}}."""
    result = {}
    for key, name in (("dice", "val_mean_dice_raw.csv"), ("cldice", "val_cldice_raw.csv")):
        with open(eval_dir / name) as f:
            rows = list(csv.reader(f))
        result[key] = {r[0]: float(r[-1]) for r in rows[1:]
                       if r and r[0] not in ("mean", "std", "median", "min", "max")}
    return result


def per_image(eval_dir: Path) -> dict:
    """Per-image DSC and clDice from MetricsSaver's ``*_raw.csv`` files: {"dice": [...], "cldice": [...]}."""
    return {key: list(values.values()) for key, values in per_image_named(eval_dir).items()}


def mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    import numpy as np

    a = np.asarray(values, dtype=float)
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0


def collect(arms: list[str], s: dict, runs: Path) -> list[dict]:
    """One row per arm with per-seed DSC/clDice (means over the val images) and CPU seconds of its steps."""
    rows = []
    for arm in arms:
        if arm == "frangi":
            tuning = runs / "frangi" / "tuning.json"
            if not tuning.exists():
                continue
            path = runs / "frangi" / f"val_thr{json.loads(tuning.read_text())['best']}" / "eval"
            m = per_image(path)
            steps = glob.glob(str(runs / "frangi" / "*" / "done.json"))
            rows.append({"arm": arm, "seeds": [0], "dice": [sum(m["dice"]) / len(m["dice"])],
                         "cldice": [sum(m["cldice"]) / len(m["cldice"])], "image_dice": m["dice"],
                         "pre_cpu_s": 0.0, "ft_cpu_s": [sum(json.loads(Path(p).read_text())["cpu_s"] for p in steps)]})
            continue
        row = {"arm": arm, "seeds": [], "dice": [], "cldice": [], "ft_cpu_s": [], "pre_cpu_s": 0.0}
        pre_done = runs / "pretrain" / base_arm(arm) / "done.json"
        if pre_done.exists():
            row["pre_cpu_s"] = json.loads(pre_done.read_text())["cpu_s"]
        for seed in s["seeds"]:
            out = runs / "seg" / arm / f"seed{seed}"
            if not (out / "eval" / "done.json").exists():
                continue
            m = per_image(out / "eval")
            row["seeds"].append(seed)
            row["dice"].append(sum(m["dice"]) / len(m["dice"]))
            row["cldice"].append(sum(m["cldice"]) / len(m["cldice"]))
            steps = (out / "train" / "done.json", out / "eval" / "done.json")
            row["ft_cpu_s"].append(sum(json.loads(p.read_text())["cpu_s"] for p in steps))
        if row["seeds"]:
            rows.append(row)
    return rows


def write_tables(rows: list[dict], results: Path, scale: str, s: dict) -> None:
    """``reproduction.csv`` and ``reproduction.md``: mean ± sd over seeds, in %, and CPU minutes."""
    results.mkdir(parents=True, exist_ok=True)
    header = ["arm", "n_seeds", "dsc_mean", "dsc_sd", "cldice_mean", "cldice_sd", "pretrain_cpu_min",
              "train_eval_cpu_min_per_seed"]
    lines = []
    for r in rows:
        d, dsd = mean_sd(r["dice"])
        c, csd = mean_sd(r["cldice"])
        lines.append([r["arm"], len(r["seeds"]), 100 * d, 100 * dsd, 100 * c, 100 * csd, r["pre_cpu_s"] / 60,
                      sum(r["ft_cpu_s"]) / len(r["ft_cpu_s"]) / 60])
    with open(results / "reproduction.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for line in lines:
            w.writerow([line[0], line[1]] + [f"{v:.2f}" for v in line[2:]])
    caption = (f"Scale `{scale}`: {s['img_size']}² input, ViT hidden {s['hidden_size']}/{s['num_layers']} layers/"
               f"patch 16, pretraining {s['pre_epochs']} epochs, fine-tuning {s['seg_epochs']} epochs (the "
               f"rows marked {BAR['img_size']}²: {BAR['seg_epochs']} epochs at {BAR['img_size']}²). DSC and clDice (%) "
               "on the 8 validation "
               "images of xca_dca80_train (split seed 0), at source resolution; mean ± sd over fine-tuning seeds "
               "(Frangi: deterministic, one value).")
    md = [caption, "",
          "| arm | seeds | DSC (%) | clDice (%) | pretrain CPU (min) | train+eval CPU per seed (min) |",
          "|---|---|---|---|---|---|"]
    for line in lines:
        pm = (lambda m, sd: f"{m:.1f} ± {sd:.1f}") if line[1] > 1 else (lambda m, sd: f"{m:.1f}")
        md.append(f"| {LABELS.get(line[0], line[0])} | {line[1]} | {pm(line[2], line[3])} | "
                  f"{pm(line[4], line[5])} | {line[6]:.1f} | {line[7]:.1f} |")
    (results / "reproduction.md").write_text("\n".join(md) + "\n")
    per_seed = [["arm", "seed", "dsc", "cldice", "train_eval_cpu_s"]]
    for r in rows:
        for i, seed in enumerate(r["seeds"]):
            per_seed.append([r["arm"], seed, f"{100 * r['dice'][i]:.2f}", f"{100 * r['cldice'][i]:.2f}",
                             f"{r['ft_cpu_s'][i]:.0f}"])
    with open(results / "reproduction_per_seed.csv", "w", newline="") as f:
        csv.writer(f).writerows(per_seed)
    print("\n".join(md))

"""Small-scale reproduction study of VasoMIM on real angiograms, run only through the two bundles' command lines.

Arms: Frangi (threshold tuned on the training split), ViT-UNETR from scratch, MONAI BasicUNet from scratch, and the
same ViT-UNETR fine-tuned from five pretrainings: MAE (random masking, no L_cons), VasoMIM (beta 0 -> 0.5 + L_cons),
the two single-component ablations (guidance only, L_cons only) and beta 1 -> 1. The ``*_bar`` arms (``unet_bar``,
``scratch_vit_bar``, ``vasomim_bar``) fine-tune the same model at the user's bar recipe (256², 80 epochs); the ViT
ones reuse the 128² pretraining, with its position embeddings resized. Every training and evaluation step is a
``python -m monai.bundle run ...`` subprocess; a step is skipped when its ``done.json`` exists, so an interrupted
study resumes where it stopped. The analysis part (tables, figures, representation metrics) loads the saved models.

    python experiments/reproduction.py --scale cpu2 --arms ...  # the study in docs/reproduction.md (its commands)
    python experiments/reproduction.py --scale smoke          # a few minutes, checks the pipeline end to end
    python experiments/reproduction.py --scale cpu --analysis-only

Outputs: runs under ``experiments/runs/<scale>/`` (gitignored), tables under ``experiments/results/``, figures under
``docs/figures/``.
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PRE = REPO / "bundles" / "vasomim_pretrain"
SEG = REPO / "bundles" / "vasomim_seg"

VIT_TI = {"hidden_size": 192, "mlp_dim": 768, "num_layers": 6, "num_heads": 3, "decoder_hidden_size": 128,
          "decoder_mlp_dim": 512, "decoder_num_layers": 2, "decoder_num_heads": 4}
CPU = {"img_size": 128, **VIT_TI, "pre_epochs": 5, "warmup_epochs": 1, "pre_batch": 16, "blr": 1.5e-3,
       "segmentor_epochs": 2, "seg_epochs": 8, "seg_batch": 4, "lr": 5e-4, "seeds": [0, 1, 2],
       "frangi_grid": [0.01, 0.02, 0.03, 0.06, 0.1, 0.15, 0.25]}
SCALES = {
    "smoke": {"img_size": 64, "hidden_size": 64, "mlp_dim": 128, "num_layers": 2, "num_heads": 2,
              "decoder_hidden_size": 32, "decoder_mlp_dim": 64, "decoder_num_layers": 1, "decoder_num_heads": 2,
              "pre_epochs": 1, "warmup_epochs": 0, "pre_batch": 32, "blr": 1.5e-3, "segmentor_epochs": 1,
              "seg_epochs": 1, "seg_batch": 4, "lr": 5e-4, "seeds": [0], "frangi_grid": [0.05, 0.15]},
    "cpu": CPU,
    "cpu2": {**CPU, "pre_epochs": 60, "warmup_epochs": 5, "blr": 8e-3, "segmentor_epochs": 15, "seg_epochs": 40},
    "paper": {"img_size": 256, "hidden_size": 384, "mlp_dim": 1536, "num_layers": 12, "num_heads": 6,
              "decoder_hidden_size": 512, "decoder_mlp_dim": 2048, "decoder_num_layers": 8, "decoder_num_heads": 16,
              "pre_epochs": 400, "warmup_epochs": 40, "pre_batch": 64, "blr": 1.5e-4, "segmentor_epochs": 50,
              "seg_epochs": 100, "seg_batch": 8, "lr": 5e-4, "seeds": [0, 1, 2],
              "frangi_grid": [0.02, 0.05, 0.08, 0.12, 0.16, 0.22, 0.3]},
}

PRETRAIN_ARMS = {
    "mae": {"guided": False, "beta_0": 0.0, "beta_E": 0.0, "use_cons": False},
    "vasomim": {"guided": True, "beta_0": 0.0, "beta_E": 0.5, "use_cons": True},
    "guided_only": {"guided": True, "beta_0": 0.0, "beta_E": 0.5, "use_cons": False},
    "cons_only": {"guided": False, "beta_0": 0.0, "beta_E": 0.0, "use_cons": True},
    "strong_to_weak": {"guided": True, "beta_0": 1.0, "beta_E": 1.0, "use_cons": True},
}
BAR = {"img_size": 256, "seg_epochs": 80}
NOT_PRETRAINED = ("frangi", "unet", "scratch_vit")
FRANGI_CONFIGS = ["train.json", "evaluate.json", "evaluate_frangi.json"]
SEG_ARMS = ["scratch_vit", "unet", "unet_bar", "mae", "vasomim", "guided_only", "cons_only", "strong_to_weak",
            "scratch_vit_bar", "vasomim_bar"]
DEFAULT_ARMS = ["frangi", "unet", "scratch_vit", "mae", "vasomim", "guided_only", "cons_only"]
LABELS = {"frangi": "Frangi (tuned threshold)", "unet": "BasicUNet scratch",
          "unet_bar": "BasicUNet scratch, 256², 80 ep", "scratch_vit": "ViT-UNETR scratch",
          "scratch_vit_bar": "ViT-UNETR scratch, 256², 80 ep", "vasomim_bar": "VasoMIM, 256², 80 ep",
          "mae": "MAE", "vasomim": "VasoMIM", "guided_only": "guided masking only", "cons_only": "L_cons only",
          "strong_to_weak": "VasoMIM beta 1->1"}


def child_cpu() -> float:
    """CPU seconds (user + system) used so far by finished child processes."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def shown(path: Path) -> str:
    """``path`` relative to the repository when it lies inside it, else as given."""
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def run_step(step_dir: Path, cmd: list[str], threads: int, log: Path) -> dict:
    """Runs ``cmd`` once: skipped if ``step_dir/done.json`` exists. Returns the step record (cpu_s, wall_s, cmd)."""
    done = step_dir / "done.json"
    if done.exists():
        return json.loads(done.read_text())
    step_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
    printable = " ".join(a if a and " " not in a and "'" not in a else json.dumps(a) for a in cmd)
    print(f"[{time.strftime('%H:%M:%S')}] {shown(step_dir)}: {printable}", flush=True)
    cpu0, t0 = child_cpu(), time.time()
    with open(step_dir / "log.txt", "w") as f:
        rc = subprocess.call(cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT)
    record = {"cmd": printable, "cpu_s": child_cpu() - cpu0, "wall_s": time.time() - t0, "rc": rc}
    with open(log, "a") as f:
        f.write(json.dumps({"step": str(shown(step_dir)), **record}) + "\n")
    if rc != 0:
        raise RuntimeError(f"step {step_dir} failed (rc {rc}); see {step_dir / 'log.txt'}")
    done.write_text(json.dumps(record, indent=1))
    return record


def rerun(step_dir: Path) -> dict:
    """``{"overwrite": True}`` when ``step_dir`` holds a failed attempt (no done.json), so the bundle may replace it."""
    return {"overwrite": True} if step_dir.exists() and not (step_dir / "done.json").exists() else {}


def bundle_cmd(bundle: Path, run_id: str, configs: list[str], overrides: dict) -> list[str]:
    """``python -m monai.bundle run <run_id>`` on ``bundle`` with a list of config files and ``--key value`` pairs."""
    cfg = "[" + ",".join(f"'{bundle / 'configs' / c}'" for c in configs) + "]"
    meta = str(bundle / "configs" / "metadata.json")
    cmd = [sys.executable, "-m", "monai.bundle", "run", run_id, "--meta_file", meta, "--config_file", cfg]
    for key, value in overrides.items():
        cmd += [f"--{key}", value if isinstance(value, str) else repr(value)]
    return cmd


def pretrain_dirs(data: Path) -> list[str]:
    """The unlabelled pretraining inputs of the issue (DCA-80 training images added without labels)."""
    return [str(data / "xca_cadml97" / "images"), str(data / "xca_arso" / "clinical_frames"),
            str(data / "dicom" / "xa_real" / "XA_coronary_cine_96frames_jpeg_baseline.dcm"),
            str(data / "dicom" / "xa_phantom_runs_jpeg_lossless"), str(data / "xca_dca80_train" / "images")]


def vit_overrides(s: dict) -> dict:
    return {k: s[k] for k in ("img_size", "hidden_size", "mlp_dim", "num_layers", "num_heads")}


def pretrain(arm: str, s: dict, runs: Path, data: Path, threads: int, log: Path, reuse_segmentor: bool = True) -> dict:
    """One pretraining of ``arm`` (seed 0) with the vasomim_pretrain bundle; S is trained once (vasomim) and reused."""
    step, out = runs / "pretrain" / arm, runs / "pretrain" / arm / "run"
    ov = {**vit_overrides(s), "working_size": s["img_size"], "dataset_dir": pretrain_dirs(data),
          "output_dir": str(out), "seed": 0, "max_epochs": s["pre_epochs"], "warmup_epochs": s["warmup_epochs"],
          "batch_size": s["pre_batch"], "blr": s["blr"], "segmentor_epochs": s["segmentor_epochs"],
          "num_workers": 0, "cache_workers": 1, "progress_bar": False,
          **{k: decoder for k, decoder in s.items() if k.startswith("decoder_")}, **PRETRAIN_ARMS[arm]}
    shared_s = runs / "pretrain" / "vasomim" / "run" / "models" / "segmentor.pt"
    if PRETRAIN_ARMS[arm]["use_cons"] and arm != "vasomim" and shared_s.exists() and reuse_segmentor:
        ov["segmentor_ckpt"] = str(shared_s)
    if not (step / "done.json").exists() and glob.glob(str(out / "checkpoints" / "*.pt")):
        ov["resume"] = True
    elif not (step / "done.json").exists() and out.exists():
        ov["overwrite"] = True
    return run_step(step, bundle_cmd(PRE, "training", ["train.json", "preset_cpu.json"], ov), threads, log)


def base_arm(arm: str) -> str:
    """The arm whose model and pretraining a ``*_bar`` arm uses (the bar's recipe: BAR's input size and epochs)."""
    return arm.removesuffix("_bar")


def seg_overrides(arm: str, seed: int, s: dict, runs: Path, data: Path) -> tuple[list[str], dict]:
    """Config files and overrides for fine-tuning (or scratch training) arm ``arm`` with seed ``seed``."""
    out = runs / "seg" / arm / f"seed{seed}"
    ov = {"dataset_dir": str(data / "xca_dca80_train"), "val_fraction": 0.2, "split_seed": 0, "seed": seed,
          "img_size": s["img_size"], "max_epochs": s["seg_epochs"], "batch_size": s["seg_batch"],
          "learning_rate": s["lr"], "num_workers": 0, "ckpt_dir": str(out / "models"),
          "output_dir": str(out / "train_log")}
    configs = ["train.json"]
    if arm.endswith("_bar"):
        ov.update({"img_size": BAR["img_size"], "max_epochs": BAR["seg_epochs"]})
    if base_arm(arm) == "unet":
        configs.append("unet.json")
    else:
        ov.update({k: v for k, v in vit_overrides(s).items() if k != "img_size"})
        if base_arm(arm) == "scratch_vit":
            ov["layer_decay"] = 1.0
        else:
            ov["pretrained_ckpt"] = str(runs / "pretrain" / base_arm(arm) / "run" / "models" / "model.pt")
    return configs, ov


def evaluation(arm: str, seed: int, s: dict, runs: Path, data: Path, part: str, step_dir: Path, output_dir: Path,
               dataset_dir: Path | None = None) -> list[str]:
    """``run evaluating`` of the trained model of ``arm``/``seed`` on ``part`` of ``dataset_dir`` (default: the
    fine-tuning data), writing into ``output_dir``, as the study step ``step_dir``."""
    configs, ov = seg_overrides(arm, seed, s, runs, data)
    ov.pop("pretrained_ckpt", None)
    ov.update({"validate#dataset#data#part": part, "output_dir": str(output_dir), **rerun(step_dir)})
    if dataset_dir is not None:
        ov["dataset_dir"] = str(dataset_dir)
    return bundle_cmd(SEG, "evaluating", configs + ["evaluate.json"], ov)


def finetune(arm: str, seed: int, s: dict, runs: Path, data: Path, threads: int, log: Path) -> tuple[dict, dict]:
    """Trains with ``run training`` then evaluates the best checkpoint on the val split at source resolution."""
    configs, ov = seg_overrides(arm, seed, s, runs, data)
    out = runs / "seg" / arm / f"seed{seed}"
    train_cmd = bundle_cmd(SEG, "training", configs, {**ov, **rerun(out / "train")})
    train = run_step(out / "train", train_cmd, threads, log)
    eval_cmd = evaluation(arm, seed, s, runs, data, "val", out / "eval", out / "eval")
    evaluate = run_step(out / "eval", eval_cmd, threads, log)
    return train, evaluate


def frangi(s: dict, runs: Path, data: Path, threads: int, log: Path) -> dict:
    """Tunes the Frangi threshold on the training split (grid, mean DSC) and evaluates it on the val split."""
    base = {"dataset_dir": str(data / "xca_dca80_train"), "img_size": s["img_size"], "num_workers": 0,
            "validate#dataset#data#val_fraction": 0.2, "validate#dataset#data#seed": 0}
    configs = FRANGI_CONFIGS
    cpu = 0.0
    scores = {}
    for thr in s["frangi_grid"]:
        out = runs / "frangi" / f"train_thr{thr}"
        rec = run_step(out, bundle_cmd(SEG, "evaluating", configs, {**base, **rerun(out), "frangi_threshold": thr,
                       "validate#dataset#data#part": "train", "output_dir": str(out / "eval")}), threads, log)
        cpu += rec["cpu_s"]
        scores[thr] = per_image(out / "eval")["dice"]
    best = max(scores, key=lambda t: sum(scores[t]) / len(scores[t]))
    out = runs / "frangi" / f"val_thr{best}"
    rec = run_step(out, bundle_cmd(SEG, "evaluating", configs, {**base, **rerun(out), "frangi_threshold": best,
                   "validate#dataset#data#part": "val", "output_dir": str(out / "eval")}), threads, log)
    tuned = {str(t): sum(v) / len(v) for t, v in scores.items()}
    (runs / "frangi" / "tuning.json").write_text(json.dumps({"train_mean_dsc": tuned, "best": best}, indent=1))
    return {"cpu_s": cpu + rec["cpu_s"], "best": best}


def drive_pairs(data: Path, runs: Path) -> Path:
    """DRIVE as the seg bundle's ``images/`` + ``labels/`` pairs, under ``runs/drive_pairs`` (gitignored).

    Images are symlinks to the RGB TIFFs (loaded as luminance); the GIF manual labels are rewritten as PNG with the
    image's stem. The field-of-view masks are not used: metrics cover the whole image.
    """
    import numpy as np
    from PIL import Image

    root = runs / "drive_pairs"
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    for image in sorted((data / "drive_train" / "images").glob("*_training.tif")):
        stem = image.name.split("_")[0]
        link = root / "images" / f"{stem}.tif"
        if not link.exists():
            link.symlink_to(image)
        label = root / "labels" / f"{stem}.png"
        if not label.exists():
            manual = np.array(Image.open(data / "drive_train" / "1st_manual" / f"{stem}_manual1.gif").convert("L"))
            Image.fromarray(((manual > 127) * 255).astype(np.uint8)).save(label)
    return root


def drive_eval(arm: str, seed: int, s: dict, runs: Path, data: Path, pairs: Path, threads: int, log: Path) -> dict:
    """Cross-domain check: the XCA-trained model of ``arm``/``seed`` (or the XCA-tuned Frangi) evaluated on DRIVE
    (``pairs``, see drive_pairs)."""
    out = runs / "drive" / "frangi" if arm == "frangi" else runs / "drive" / arm / f"seed{seed}"
    if arm == "frangi":
        best = json.loads((runs / "frangi" / "tuning.json").read_text())["best"]
        cmd = bundle_cmd(SEG, "evaluating", FRANGI_CONFIGS, {
            "img_size": s["img_size"], "num_workers": 0, "frangi_threshold": best, "dataset_dir": str(pairs),
            "validate#dataset#data#part": "all", "output_dir": str(out / "eval"), **rerun(out)})
    else:
        cmd = evaluation(arm, seed, s, runs, data, "all", out, out / "eval", dataset_dir=pairs)
    return run_step(out, cmd, threads, log)


def per_image(eval_dir: Path) -> dict:
    """Per-image DSC and clDice from MetricsSaver's ``*_raw.csv`` files: {"dice": [...], "cldice": [...]}."""
    result = {}
    for key, name in (("dice", "val_mean_dice_raw.csv"), ("cldice", "val_cldice_raw.csv")):
        with open(eval_dir / name) as f:
            rows = list(csv.reader(f))
        result[key] = [float(r[-1]) for r in rows[1:] if r and r[0] not in ("mean", "std", "median", "min", "max")]
    return result


def mean_sd(values: list[float]) -> tuple[float, float]:
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


def write_drive_table(arms: list[str], s: dict, runs: Path, results: Path) -> None:
    """``drive.md``/``drive.csv``: DSC and clDice (%) of the XCA-trained models on the 20 DRIVE images, mean ± sd."""
    lines = []
    for arm in arms:
        dirs = [runs / "drive" / "frangi"] if arm == "frangi" else [
            runs / "drive" / arm / f"seed{seed}" for seed in s["seeds"]]
        done = [d for d in dirs if (d / "done.json").exists()]
        if not done:
            continue
        per = [per_image(d / "eval") for d in done]
        dice = [sum(m["dice"]) / len(m["dice"]) for m in per]
        cldice = [sum(m["cldice"]) / len(m["cldice"]) for m in per]
        lines.append([arm, len(done), *mean_sd(dice), *mean_sd(cldice)])
    if not lines:
        return
    with open(results / "drive.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arm", "n_models", "dsc_mean", "dsc_sd", "cldice_mean", "cldice_sd"])
        w.writerows([[r[0], r[1]] + [f"{100 * v:.2f}" for v in r[2:]] for r in lines])
    md = [("Cross-domain check: models trained on XCA (as in the main table) evaluated on the 20 DRIVE training "
          "images (retina, RGB as luminance, whole image, no field-of-view mask), mean ± sd over seeds."), "",
          "| arm | models | DSC (%) | clDice (%) |", "|---|---|---|---|"]
    for r in lines:
        pm = (lambda m, sd: f"{100 * m:.1f} ± {100 * sd:.1f}") if r[1] > 1 else (lambda m, sd: f"{100 * m:.1f}")
        md.append(f"| {LABELS.get(r[0], r[0])} | {r[1]} | {pm(r[2], r[3])} | {pm(r[4], r[5])} |")
    (results / "drive.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


def bar_figure(rows: list[dict], path: Path) -> None:
    """Bar chart of DSC and clDice per arm (mean ± sd over seeds, seeds as dots)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    x = np.arange(len(rows))
    for ax, key, title in ((axes[0], "dice", "DSC (%)"), (axes[1], "cldice", "clDice (%)")):
        means = [100 * mean_sd(r[key])[0] for r in rows]
        sds = [100 * mean_sd(r[key])[1] for r in rows]
        colours = ["0.6" if base_arm(r["arm"]) in NOT_PRETRAINED else "tab:blue" for r in rows]
        ax.bar(x, means, yerr=sds, capsize=4, color=colours)
        for i, r in enumerate(rows):
            ax.scatter([i] * len(r[key]), [100 * v for v in r[key]], color="k", s=10, zorder=3)
        ax.set_xticks(x)
        ax.set_xticklabels([LABELS.get(r["arm"], r["arm"]) for r in rows], rotation=35, ha="right", fontsize=8)
        ax.set_title(title)
        ax.set_ylim(0, 100)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def seg_parser(s: dict, data: Path, arm: str, runs: Path, seed: int = 0, extra: tuple = ()):
    """The seg bundle's own config (train.json [+ unet.json] + ``extra``) with the study's overrides."""
    from monai.bundle import ConfigParser

    if str(SEG) not in sys.path:
        sys.path.insert(0, str(SEG))
    configs, ov = seg_overrides(arm, seed, s, runs, data)
    parser = ConfigParser()
    parser.read_config([str(SEG / "configs" / c) for c in configs + list(extra)])
    ov.pop("pretrained_ckpt", None)
    ov["device"] = "$torch.device('cpu')"
    for k, v in ov.items():
        parser[k] = v
    return parser


def load_best(parser, ckpt: Path):
    import torch

    net = parser.get_parsed_content("network_def")
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    state = state.get("model", state) if isinstance(state, dict) else state
    net.load_state_dict(state)
    return net.eval()


def val_items(parser) -> list[dict]:
    """The val split through the seg bundle's deterministic preprocessing: [{"image": (1, S, S), "label": ...}]."""
    parser["validate#dataset#data#part"] = "val"
    data = parser.get_parsed_content("validate#dataset#data")
    pre = parser.get_parsed_content("validate#preprocessing")
    return [pre(dict(d)) for d in data]


def example_figure(rows: list[dict], s: dict, data: Path, runs: Path, path: Path, n_images: int = 3) -> None:
    """Grid: image, label, then each learned arm's seed-0 prediction (at the training resolution) on val images."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    arms = [r["arm"] for r in rows if r["arm"] != "frangi" and 0 in r["seeds"]]
    parser = seg_parser(s, data, "scratch_vit", runs)
    items = val_items(parser)[:n_images]
    bar_items = val_items(seg_parser(s, data, "unet_bar", runs))[:n_images] if any(
        a.endswith("_bar") for a in arms) else []
    cols = ["image", "label"] + (["frangi"] if any(r["arm"] == "frangi" for r in rows) else []) + arms
    fig, axes = plt.subplots(n_images, len(cols), figsize=(1.8 * len(cols), 1.9 * n_images), squeeze=False)
    preds = {}
    for arm in arms:
        p = seg_parser(s, data, arm, runs)
        net = load_best(p, runs / "seg" / arm / "seed0" / "models" / "model.pt")
        inputs = bar_items if arm.endswith("_bar") else items
        with torch.no_grad():
            preds[arm] = [(torch.sigmoid(net(it["image"][None].as_tensor())) > 0.5)[0, 0].float() for it in inputs]
    if "frangi" in cols:
        p = seg_parser(s, data, "scratch_vit", runs, extra=("evaluate_frangi.json",))
        p["frangi_threshold"] = json.loads((runs / "frangi" / "tuning.json").read_text())["best"]
        fr = p.get_parsed_content("network_def")
        with torch.no_grad():
            preds["frangi"] = [(torch.sigmoid(fr(it["image"][None].as_tensor())) > 0.5)[0, 0].float() for it in items]
    for i, it in enumerate(items):
        panels = {"image": it["image"][0], "label": it["label"][0], **{a: preds[a][i] for a in preds}}
        for j, c in enumerate(cols):
            ax = axes[i, j]
            ax.imshow(panels[c].T, cmap="gray")
            ax.set_axis_off()
            if i == 0:
                ax.set_title(LABELS.get(c, c), fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def representation(s: dict, data: Path, runs: Path, results: Path, vessel_fraction: float) -> None:
    """Silhouette, Calinski-Harabasz and Davies-Bouldin of final encoder patch tokens on the val images.

    A patch (16x16 at the training resolution) is "vessel" if >= ``vessel_fraction`` of its pixels are vessel
    pixels in the label, else "background". Encoders: each pretraining arm, plus a randomly initialised one.
    """
    import torch
    from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score

    parser = seg_parser(s, data, "scratch_vit", runs)
    from scripts.encoder import load_pretrained_encoder

    items = val_items(parser)
    images = torch.stack([it["image"].as_tensor() for it in items])
    labels = torch.stack([it["label"].as_tensor() for it in items]).float()
    frac = torch.nn.functional.avg_pool2d(labels, 16).flatten(1)  # (B, L) row-major like the patch embedding
    y = (frac >= vessel_fraction).reshape(-1).numpy().astype(int)
    rows = [["encoder", "n_patches", "n_vessel", "silhouette", "calinski_harabasz", "davies_bouldin"]]
    for arm in ["random_init"] + [a for a in PRETRAIN_ARMS if (runs / "pretrain" / a / "done.json").exists()]:
        torch.manual_seed(0)
        net = seg_parser(s, data, "scratch_vit", runs).get_parsed_content("network_def")
        if arm != "random_init":
            net = load_pretrained_encoder(net, str(runs / "pretrain" / arm / "run" / "models" / "model.pt"))
        with torch.no_grad():
            tokens, _ = net.vit.eval()(images)  # (B, L, hidden)
        x = tokens.reshape(-1, tokens.shape[-1]).numpy()
        rows.append([arm, len(y), int(y.sum()), f"{silhouette_score(x, y, random_state=0):.4f}",
                     f"{calinski_harabasz_score(x, y):.2f}", f"{davies_bouldin_score(x, y):.3f}"])
    with open(results / "representation.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    md = [(f"Encoder patch tokens on the 8 val images ({s['img_size']}², patch 16); vessel patch: >= "
          f"{vessel_fraction:.0%} vessel pixels."), "", "| " + " | ".join(rows[0]) + " |",
          "|" + "---|" * len(rows[0])] + ["| " + " | ".join(map(str, r)) + " |" for r in rows[1:]]
    (results / "representation.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=list(SCALES), default="cpu")
    parser.add_argument("--arms", nargs="+", default=DEFAULT_ARMS, choices=["frangi"] + SEG_ARMS)
    parser.add_argument("--seeds", nargs="+", type=int, help="fine-tuning seeds (default: the scale's)")
    parser.add_argument("--pre-epochs", type=int)
    parser.add_argument("--seg-epochs", type=int)
    parser.add_argument("--img-size", type=int)
    parser.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--runs-dir", default=None, help="default experiments/runs/<scale>")
    parser.add_argument("--results-dir", default=None, help="default experiments/results/<scale>")
    parser.add_argument("--figures-dir", default=None, help="default docs/figures/<scale>")
    parser.add_argument("--threads", type=int, default=2, help="OMP threads of each bundle subprocess")
    parser.add_argument("--vessel-fraction", type=float, default=0.1)
    parser.add_argument("--analysis-only", action="store_true")
    parser.add_argument("--drive", action="store_true",
                        help="also evaluate every trained model on DRIVE (retina); works with --analysis-only")
    args = parser.parse_args()

    s = dict(SCALES[args.scale])
    for key, value in (("seeds", args.seeds), ("pre_epochs", args.pre_epochs), ("seg_epochs", args.seg_epochs),
                       ("img_size", args.img_size)):
        if value is not None:
            s[key] = value
    data = Path(args.data_root).resolve()
    runs = Path(args.runs_dir or REPO / "experiments" / "runs" / args.scale).resolve()
    results = Path(args.results_dir or REPO / "experiments" / "results" / args.scale)
    figures = Path(args.figures_dir or REPO / "docs" / "figures" / args.scale)
    runs.mkdir(parents=True, exist_ok=True)
    (runs / "scale.json").write_text(json.dumps(s, indent=1))
    log = runs / "steps.jsonl"
    import torch

    torch.set_num_threads(args.threads)

    if not args.analysis_only:
        if "frangi" in args.arms:
            frangi(s, runs, data, args.threads, log)
        pre_arms = [a for a in ("vasomim", "mae", "guided_only", "cons_only", "strong_to_weak") if a in args.arms]
        bar = [a for a in SEG_ARMS if a.endswith("_bar") and a in args.arms]
        learned = [a for a in ("unet", "scratch_vit") if a in args.arms] + pre_arms
        main_arms = [a for a in ("unet", "scratch_vit", "vasomim", "mae") if a in learned]
        ablations = [a for a in learned if a not in main_arms]
        first = s["seeds"][0]
        order = [(a, seed) for seed in s["seeds"] for a in main_arms]
        order += [(a, first) for a in ablations + bar]
        order += [(a, seed) for seed in s["seeds"][1:] for a in ablations + bar]
        for arm, seed in order:
            if arm in PRETRAIN_ARMS:
                pretrain(arm, s, runs, data, args.threads, log)
            finetune(arm, seed, s, runs, data, args.threads, log)

    if args.drive:
        trained = [(a, seed) for a in args.arms if a != "frangi" for seed in s["seeds"]
                   if (runs / "seg" / a / f"seed{seed}" / "eval" / "done.json").exists()]
        tuned = [("frangi", 0)] if (runs / "frangi" / "tuning.json").exists() and "frangi" in args.arms else []
        pairs = drive_pairs(data, runs)
        for arm, seed in tuned + trained:
            drive_eval(arm, seed, s, runs, data, pairs, args.threads, log)

    rows = collect(args.arms, s, runs)
    write_tables(rows, results, args.scale, s)
    write_drive_table(args.arms, s, runs, results)
    bar_figure(rows, figures / "reproduction_bars.png")
    example_figure(rows, s, data, runs, figures / "reproduction_examples.png")
    representation(s, data, runs, results, args.vessel_fraction)


if __name__ == "__main__":
    main()

"""Cross-domain check: the XCA-trained models (and the XCA-tuned Frangi) evaluated on the DRIVE retina images."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from .arms import FRANGI_CONFIGS, LABELS
from .steps import SEG, bundle_cmd, rerun, run_step
from .tables import mean_sd, per_image
from .training import evaluation


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

"""The study's figures: DSC and clDice bars per arm, and example predictions on validation images."""

from __future__ import annotations

import json
from pathlib import Path

from .arms import LABELS, NOT_PRETRAINED, base_arm
from .models import load_best, seg_parser, val_items
from .tables import mean_sd


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

"""Cluster metrics of encoder patch tokens (vessel vs background patches) for each pretraining arm."""

from __future__ import annotations

import csv
from pathlib import Path

from .arms import PRETRAIN_ARMS
from .models import seg_parser, val_items


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

"""Is one arm better than another image by image? A paired comparison on the held-out angiograms.

The label-efficiency tables give mean ± sd over 3 fine-tuning seeds, which says how stable a recipe is, not whether
its margin holds across images. This script reads the per-image DSC and clDice that the seg bundle's evaluator wrote
for every trained model of a ``label_efficiency.py`` run (``<split>/eval/*_raw.csv``), averages each image over the
seeds, and compares two arms on the same images: the mean paired difference with its 95 % t interval (over images),
and on how many images the first arm is ahead.

    python experiments/paired_images.py vasomim_p8_e100_dice_224 unet_224 scratch_dice_224 --labels 2 4 8 \\
        >> experiments/results/labels_heldout/paired.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
from study.steps import REPO  # noqa: E402
from study.tables import per_image_named  # noqa: E402

KEYS = ("dice", "cldice")


def image_scores(runs: Path, arm: str, n: int, split: str) -> dict[str, dict[str, list[float]]]:
    """{metric: {image path: [score of each seed]}} of ``arm`` at ``n`` labels on ``split`` ("val" or "test")."""
    out: dict[str, dict[str, list[float]]] = {k: {} for k in KEYS}
    for eval_dir in sorted((runs / "seg" / arm / f"n{n}").glob(f"seed*/{split}/eval")):
        for key, values in per_image_named(eval_dir).items():
            for path, value in values.items():
                out[key].setdefault(path, []).append(value)
    return out


def paired(a: dict[str, list[float]], b: dict[str, list[float]]) -> tuple[float, float, float, int, int]:
    """Mean paired difference (points, %) of the seed-averaged scores of the images that ``a`` and ``b`` share,
    its 95 % t interval, the images where ``a`` is ahead, and the image count."""
    names = sorted(set(a) & set(b))
    d = 100 * np.array([np.mean(a[k]) - np.mean(b[k]) for k in names])
    half = stats.t.ppf(0.975, d.size - 1) * d.std(ddof=1) / np.sqrt(d.size) if d.size > 1 else float("nan")
    return float(d.mean()), float(d.mean() - half), float(d.mean() + half), int((d > 0).sum()), int(d.size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("arm", help="the arm compared")
    parser.add_argument("peers", nargs="+", help="the arms it is compared with")
    parser.add_argument("--labels", nargs="+", type=int, default=[2, 4, 8])
    parser.add_argument("--split", choices=["val", "test"], default="test")
    parser.add_argument("--runs-dir", type=Path, default=REPO / "experiments" / "runs" / "labels_cpu_heldout")
    args = parser.parse_args()
    print(f"Paired per-image differences on the {args.split} images, {args.arm} minus each peer: each image's score "
          "averaged over the seeds of each arm; mean difference in points [95 % t interval over images], images "
          "where it is ahead / images.\n")
    print("| peer | labels | seeds (arm, peer) | ΔDSC | ahead in DSC | ΔclDice | ahead in clDice |")
    print("|---|---|---|---|---|---|---|")
    for n in args.labels:
        mine = image_scores(args.runs_dir, args.arm, n, args.split)
        for peer in args.peers:
            theirs = image_scores(args.runs_dir, peer, n, args.split)
            if not mine["dice"] or not theirs["dice"]:
                continue
            seeds = (len(next(iter(mine["dice"].values()))), len(next(iter(theirs["dice"].values()))))
            cells = []
            for key in KEYS:
                m, lo, hi, ahead, count = paired(mine[key], theirs[key])
                cells += [f"{m:+.1f} [{lo:+.1f}, {hi:+.1f}]", f"{ahead} / {count}"]
            print(f"| {peer} | {n} | {seeds[0]}, {seeds[1]} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

"""Does an operating point chosen on the validation images change who wins on held-out angiograms?

The seg bundle thresholds its sigmoid at its ``threshold`` id, 0.5 by default (``--threshold 0.7`` on any of its
entry points sets another; the value chosen here is what a user would pass). The label-efficiency study found that
the two networks miss 0.5 in opposite directions: the ViT adapter under-segments (thin branches lost, low Tsens) and
the BasicUNet over-segments (``topology_breakdown.py``). This script gives every trained model of a
``label_efficiency.py --held-out`` run the threshold a user would pick with the data they have: for each model, the
threshold of ``--thresholds`` with the best mean of DSC and clDice on the 8 validation images (which also picked its
checkpoint). It then scores the 24 held-out images, which neither pretraining, fine-tuning nor selection saw, at that
threshold and at 0.5. The probabilities come from the bundle's own evaluator (``topology_breakdown.probabilities``).

    python experiments/threshold_selection.py --arms unet_224 scratch_dice_224 vasomim_p8_e100_dice_224 \\
        --labels 2 4 8 > experiments/results/labels_heldout/threshold.md
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from study.steps import REPO, SEG  # noqa: E402
from study.tables import mean_sd  # noqa: E402
from topology_breakdown import probabilities, topology  # noqa: E402

KEYS = ("dice", "cldice")


def scores(pairs: list[tuple[np.ndarray, np.ndarray]], threshold: float) -> dict[str, float]:
    """Image-mean DSC and clDice (%) of (probability, label) pairs (D1, D2) thresholded at ``threshold``."""
    rows = [topology(p, g, threshold) for p, g in pairs]
    return {k: 100 * float(np.mean([r[k] for r in rows])) for k in KEYS}


def select(val_scores: dict[float, dict[str, float]]) -> float:
    """The threshold with the best mean of DSC and clDice in ``val_scores`` ({threshold: scores}; the lowest such
    threshold on a tie)."""
    return max(val_scores, key=lambda t: (sum(val_scores[t].values()), -t))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arms", nargs="+", default=["unet_224", "scratch_dice_224", "vasomim_p8_e100_dice_224"])
    parser.add_argument("--labels", nargs="+", type=int, default=[2, 4, 8])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--thresholds", nargs="+", type=float, default=[0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    parser.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--runs-dir", type=Path, default=REPO / "experiments" / "runs" / "labels_cpu_heldout")
    args = parser.parse_args()
    data, runs = Path(args.data_root).resolve(), args.runs_dir.resolve()
    test_dir = runs / "held_out"
    if not (test_dir / "images").is_dir():
        parser.error(f"{test_dir} has no images/: run label_efficiency.py --held-out first")
    os.chdir(SEG)
    torch.set_num_threads(1)
    print(f"Operating point chosen per model on the 8 validation images (best mean of DSC and clDice over thresholds "
          f"{', '.join(map(str, args.thresholds))}), scored on the {len(list((test_dir / 'images').iterdir()))} "
          "held-out images. DSC / clDice in %, mean ± sample sd over seeds.\n")
    print("| arm | labels | thresholds chosen | val at 0.5 | val at chosen | held-out at 0.5 | held-out at chosen "
          "| seeds |")
    print("|---|---|---|---|---|---|---|---|")
    for n in args.labels:
        for arm in args.arms:
            chosen, cols = [], {c: [] for c in ("val05", "val", "test05", "test")}
            for seed in args.seeds:
                if not (runs / "seg" / arm / f"n{n}" / f"seed{seed}" / "models" / "model.pt").exists():
                    continue
                val = probabilities(arm, n, seed, runs, data)
                test = probabilities(arm, n, seed, runs, data, test_dir)
                val_scores = {thr: scores(val, thr) for thr in {*args.thresholds, 0.5}}
                t = select({thr: val_scores[thr] for thr in args.thresholds})
                chosen.append(t)
                for col, result in (("val05", val_scores[0.5]), ("val", val_scores[t]),
                                    ("test05", scores(test, 0.5)), ("test", scores(test, t))):
                    cols[col].append(result)
            if chosen:
                cells = [" / ".join("{:.1f} ± {:.1f}".format(*mean_sd([s[k] for s in cols[c]])) for k in KEYS)
                         for c in ("val05", "val", "test05", "test")]
                print(f"| {arm} | {n} | {', '.join(map(str, chosen))} | " + " | ".join(cells)
                      + f" | {len(chosen)} |", flush=True)


if __name__ == "__main__":
    main()

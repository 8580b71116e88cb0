"""Where do the label-efficiency arms lose clDice? Topology precision and sensitivity of trained models.

clDice = 2·Tprec·Tsens / (Tprec + Tsens) (``scripts/cldice.py``). This script reruns the seg bundle's own evaluation
(``evaluate.json``, val split, source resolution) of trained runs from ``label_efficiency.py`` and splits each
image's clDice into Tprec (how much of the predicted skeleton lies in the label: spurious branches lower it) and Tsens
(how much of the label's skeleton the prediction covers: missed thin branches lower it), with pixel precision and
recall beside them, at the bundle's threshold 0.5 and at other thresholds of the same probabilities.

    python experiments/topology_breakdown.py --arms unet vasomim_p8_e100 --labels 4 8 --seeds 0 1 2 \
        > experiments/results/labels/topology.md
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch
from ignite.engine import Events
from monai.bundle import ConfigParser
from monai.engines import SupervisedEvaluator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from label_efficiency import SCALES, evaluate_overrides  # noqa: E402
from study.steps import REPO, SEG  # noqa: E402
from study.tables import mean_sd  # noqa: E402

sys.path[:0] = [str(SEG), str(REPO)]
from scripts.cldice import cldice_2d, topology_scores  # noqa: E402  (the seg bundle's own clDice)


def topology(prob: np.ndarray, label: np.ndarray, threshold: float) -> dict[str, float]:
    """Tprec, Tsens, clDice (the bundle's, with its empty cases), pixel precision, recall and DSC of ``prob``
    (D1, D2) in [0, 1] thresholded at ``threshold``, against ``label`` (D1, D2)."""
    p, g = prob >= threshold, label > 0
    tprec, tsens = topology_scores(p, g)
    return {"tprec": tprec, "tsens": tsens, "cldice": cldice_2d(p, g),
            "precision": (p & g).sum() / max(p.sum(), 1), "recall": (p & g).sum() / max(g.sum(), 1),
            "dice": 2 * (p & g).sum() / max(p.sum() + g.sum(), 1)}


def probabilities(arm: str, n: int, seed: int, runs: Path, data: Path,
                  test_dir: Path | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """(probability, label) pairs (D1, D2) of the val images (or of all of ``test_dir``), through the bundle's
    evaluator without its threshold."""
    configs, ov = evaluate_overrides(arm, n, seed, SCALES["cpu"], runs, data, test_dir)
    parser = ConfigParser()
    parser.read_meta(str(SEG / "configs" / "metadata.json"))
    parser.read_config([str(SEG / "configs" / c) for c in configs])
    parser.update({"bundle_root": str(SEG), **ov})
    parser["validate#postprocessing#transforms"] = [t for t in parser["validate#postprocessing#transforms"]
                                                   if t["_target_"] != "scripts.threshold.VesselMaskd"]
    parser["validate#handlers"] = parser["validate#handlers"][:1]
    parser["validate#key_metric"], parser["validate#additional_metrics"] = None, None
    evaluator: SupervisedEvaluator = parser.get_parsed_content("validate#evaluator")
    pairs = []
    evaluator.add_event_handler(Events.ITERATION_COMPLETED, lambda e: pairs.extend(
        (o["pred"][0].numpy(), o["label_eval"][0].numpy()) for o in e.state.output))
    evaluator.run()
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arms", nargs="+", default=["unet", "scratch", "vasomim_p8_e100"])
    parser.add_argument("--labels", nargs="+", type=int, default=[4, 8])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--thresholds", nargs="+", type=float, default=[0.3, 0.5, 0.7])
    parser.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--runs-dir", type=Path, default=REPO / "experiments" / "runs" / "labels_cpu")
    args = parser.parse_args()
    data, runs = Path(args.data_root).resolve(), args.runs_dir.resolve()
    os.chdir(SEG)
    torch.set_num_threads(1)
    keys = ("dice", "cldice", "tprec", "tsens", "precision", "recall")
    print("DSC, clDice, Tprec, Tsens, pixel precision and recall in %, mean ± sample sd over seeds of each 8-image "
          "mean\n")
    print("| arm | labels | threshold | " + " | ".join(keys) + " | seeds |")
    print("|---|---|---|" + "---|" * (len(keys) + 1))
    for n in args.labels:
        for arm in args.arms:
            per_seed = {t: [] for t in args.thresholds}
            for seed in args.seeds:
                if not (runs / "seg" / arm / f"n{n}" / f"seed{seed}" / "models" / "model.pt").exists():
                    continue
                pairs = probabilities(arm, n, seed, runs, data)
                for t in args.thresholds:
                    rows = [topology(p, g, t) for p, g in pairs]
                    per_seed[t].append({k: 100 * np.mean([r[k] for r in rows]) for k in keys})
            for t, seeds in per_seed.items():
                if seeds:
                    cells = ["{:.1f} ± {:.1f}".format(*mean_sd([s[k] for s in seeds])) for k in keys]
                    print(f"| {arm} | {n} | {t} | " + " | ".join(cells) + f" | {len(seeds)} |", flush=True)


if __name__ == "__main__":
    main()

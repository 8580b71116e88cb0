"""Small-scale reproduction study of VasoMIM on real angiograms, run only through the two bundles' command lines.

Arms: Frangi (threshold tuned on the training split), ViT-UNETR from scratch, MONAI BasicUNet from scratch, and the
same ViT-UNETR fine-tuned from five pretrainings: MAE (random masking, no L_cons), VasoMIM (beta 0 -> 0.5 + L_cons),
the two single-component ablations (guidance only, L_cons only) and beta 1 -> 1. The ``*_bar`` arms (``unet_bar``,
``scratch_vit_bar``, ``vasomim_bar``) fine-tune the same model at the user's bar recipe (256², 80 epochs); the ViT
ones reuse the 128² pretraining, with its position embeddings resized. Every training and evaluation step is a
``python -m monai.bundle run ...`` subprocess; a step is skipped when its ``done.json`` exists, so an interrupted
study resumes where it stopped. The analysis part (tables, figures, representation metrics) loads the saved models.
This script is the command line; the parts live in ``experiments/study/``.

    python experiments/reproduction.py --scale cpu2 --arms ...  # the study in docs/reproduction.md (its commands)
    python experiments/reproduction.py --scale smoke          # a few minutes, checks the pipeline end to end
    python experiments/reproduction.py --scale cpu --analysis-only

Outputs: runs under ``experiments/runs/<scale>/`` (gitignored), tables under ``experiments/results/``, figures under
``docs/figures/``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from study.arms import DEFAULT_ARMS, PRETRAIN_ARMS, SCALES, SEG_ARMS
from study.drive import drive_eval, drive_pairs, write_drive_table
from study.figures import bar_figure, example_figure
from study.representation import representation
from study.steps import REPO
from study.tables import collect, write_tables
from study.training import finetune, frangi, pretrain


def main() -> None:
    """The study's command line: runs the chosen arms (unless --analysis-only), then writes tables and figures."""
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

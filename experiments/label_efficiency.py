"""Label-efficiency study: does VasoMIM pretraining pay off when labels are scarce, fine-tuned as the paper does?

Fine-tuning follows the authors' protocol (CheXWorld's segmentation adapter on the last block, patch 8, drop path
0.1, layer decay 0.75), the seg bundle's default. Labelled training sets of 2, 4, 8, 16 and 32 images are nested
subsets of the 32-image training split (``--n_labels``, ``--labels_seed 0``), with the same 8 validation images and a
fixed iteration budget whatever the label count. Arms:

* ``unet``: MONAI BasicUNet from scratch (``unet.json``);
* ``scratch``: the adapter network from scratch;
* ``mae``, ``vasomim``, ``vasomim_fov``: the adapter fine-tuned from the MAE and VasoMIM pretrainings (mask ratio 0.5,
  all); ``vasomim`` builds its pseudo-masks from the border alone (the code before the field-of-view step),
  ``vasomim_fov`` with the field-of-view step (the bundle default since);
* ``mae_p8``, ``vasomim_p8``: the same pretrainings at patch 8, the fine-tuning patch, so that no kernel is resized
  and the pretraining sees a 16×16 token grid at 128² (the authors' 224² at patch 16 gives 14×14);
* ``mae_p8_e100``, ``vasomim_p8_e100``: the same, pretrained 100 epochs (10 of warm-up) instead of 30 (3);
* ``unet_cl``, ``scratch_cl``, ``vasomim_p8_cl``: these arms fine-tuned with Dice + BCE + 0.5 soft clDice
  (``--use_cldice_loss true``) instead of Dice + BCE;
* ``vasomim_p8_e100_cl_dice_224``, ``unet_cl_224``: the 224² arms with the soft clDice term added to their own loss
  (Dice + 0.5 soft clDice for VasoMIM, Dice + BCE + 0.5 soft clDice for the U-Net);
* ``unet_dice``, ``scratch_dice``, ``vasomim_p8_e100_dice``, ``mae_p8_e100_dice``: fine-tuned with the Dice loss
  alone (``--ce_weight 0.0``; CheXWorld's segmentation loop, first read as Dice alone, adds BCE to its Dice);
* ``unet_224``, ``scratch_dice_224``, ``vasomim_p8_e100_dice_224``: fine-tuned and evaluated at 224², the authors'
  input size (28×28 tokens at patch 8), instead of 128²;
* ``vasomim_i224_e100_dice_224``: VasoMIM pretrained as the authors do, at 224² and patch 16 (14×14 tokens; the
  kernel is resized to 8 for fine-tuning), 100 epochs, so that pretraining sees the vessels at the fine-tuning scale;
* ``vasomim_p8_e100_w256_dice_224``: ``vasomim_p8_e100`` with the bundle's working size (256) and its Frangi scales
  (1–4): the random crops are taken from 256² frames, not 128² ones, so the 128² inputs keep the detail of thin
  branches at the 16×16 token grid of ``vasomim_p8_e100``;
* ``vasomim_p8_e200_dice_224``: ``vasomim_p8_e100`` pretrained 200 epochs (the same 10 of warm-up, as MAE keeps
  its 40 whatever the length), since its L_rec still fell at epoch 100;
* ``unet_256``, ``vasomim_p8_e100_dice_256``: fine-tuned and evaluated at 256² (32×32 tokens at patch 8), nearer
  the 300² of the DCA-like source images than 224², so that 2–3 px branches shrink less;
* ``unet_288``, ``vasomim_p8_e100_dice_288``: at 288² (36×36 tokens), the multiple of 16 nearest the source's 300²;
* ``unet_aug_256``, ``vasomim_p8_e100_dice_aug_256``: the ``_256`` arms with the seg bundle's ``augment.json``
  overlay, the augmentation and warm-up of CheXWorld's ``train_finetune_seg.py`` (horizontal flip; shift, scale and
  rotation; brightness and contrast jitter; 10 % linear warm-up before the cosine decay);
* ``vasomim_unetr``: VasoMIM fine-tuned through ``VesselUNETR`` (``unetr.json``, patch 16), to isolate the protocol;
* ``probe_random``, ``probe_mae``, ``probe_vasomim``: the encoder frozen (``--freeze_encoder true``), only the adapter
  trained.

Every step is a ``python -m monai.bundle run ...`` subprocess with a ``done.json`` marker (see ``reproduction.py``),
so an interrupted study resumes. ``--test-dir DIR`` also evaluates every trained model on a folder of ``images/`` +
``labels/`` and writes the same tables for it. ``--held-out`` makes such a folder of the 24 training images that no
label set of 8 or fewer uses (the sets are nested), leaves them out of pretraining too, and evaluates every model
on them: a test set that neither pretraining, fine-tuning nor checkpoint selection has seen (its own runs folder,
``labels_<scale>_heldout``, and results, ``experiments/results/labels_heldout``).

    python experiments/label_efficiency.py --labels 4 8 --seeds 0 --arms unet scratch mae vasomim
    python experiments/label_efficiency.py --analysis-only
    python experiments/label_efficiency.py --held-out --labels 4 8 --arms unet_224 vasomim_p8_e100_dice_224
    python experiments/label_efficiency.py --scale smoke --data-root ../shared/data   # pipeline check, minutes
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from label_efficiency_report import write_report  # noqa: E402
from study.arms import VIT_TI  # noqa: E402
from study.steps import PRE, PRETRAIN_CONFIGS, REPO, SEG, bundle_cmd, rerun, run_step  # noqa: E402
from study.training import pretrain_dirs  # noqa: E402

SCALES = {
    "cpu": {"img_size": 128, **VIT_TI, "pre_epochs": 30, "warmup_epochs": 3, "pre_batch": 16, "blr": 8e-3,
            "segmentor_epochs": 10, "segmentor_channels": [8, 16, 32, 64], "vesselness_sigmas": [1, 2, 3],
            "iterations": 200, "seg_batch": 4, "lr": 5e-4, "val_every": 20, "patch_size": 8, "drop_path": 0.1},
    "smoke": {"img_size": 64, "hidden_size": 64, "mlp_dim": 128, "num_layers": 2, "num_heads": 2,
              "decoder_hidden_size": 32, "decoder_mlp_dim": 64, "decoder_num_layers": 1, "decoder_num_heads": 2,
              "pre_epochs": 1, "warmup_epochs": 0, "pre_batch": 32, "blr": 1.5e-3, "segmentor_epochs": 1,
              "segmentor_channels": [4, 8, 16], "vesselness_sigmas": [1, 2], "iterations": 4, "seg_batch": 4,
              "lr": 5e-4, "val_every": 2, "patch_size": 8, "drop_path": 0.1},
}
PRETRAIN_ARMS = {
    "mae": {"guided": False, "use_cons": False},
    "vasomim": {"guided": True, "guidance": "mixed", "beta_0": 0.0, "beta_E": 0.5, "use_cons": True,
                "pseudo_mask_fov_threshold": None},
    "vasomim_fov": {"guided": True, "guidance": "mixed", "beta_0": 0.0, "beta_E": 0.5, "use_cons": True,
                    "pseudo_mask_fov_threshold": 0.1},
}
PRETRAIN_ARMS |= {f"{name}_p8": {**PRETRAIN_ARMS[source], "patch_size": 8}
                  for name, source in (("mae", "mae"), ("vasomim", "vasomim_fov"))}
PRETRAIN_ARMS |= {f"{name}_e100": {**PRETRAIN_ARMS[name], "max_epochs": 100, "warmup_epochs": 10}
                  for name in ("mae_p8", "vasomim_p8")}
PRETRAIN_ARMS["vasomim_i224_e100"] = {**PRETRAIN_ARMS["vasomim_p8_e100"], "img_size": 224, "working_size": 224,
                                      "patch_size": 16}
PRETRAIN_ARMS["vasomim_p8_e100_w256"] = {**PRETRAIN_ARMS["vasomim_p8_e100"], "working_size": 256,
                                         "vesselness_sigmas": [1, 2, 3, 4]}
PRETRAIN_ARMS["vasomim_p8_e200"] = {**PRETRAIN_ARMS["vasomim_p8_e100"], "max_epochs": 200}
BASE_ARMS = ["unet", "scratch", "mae", "vasomim", "vasomim_fov", "mae_p8", "vasomim_p8", "mae_p8_e100",
             "vasomim_p8_e100", "vasomim_unetr", "probe_random", "probe_mae", "probe_vasomim", "probe_vasomim_fov",
             "probe_mae_p8", "probe_vasomim_p8", "probe_mae_p8_e100", "probe_vasomim_p8_e100"]
VARIANTS = {"_cl": {"use_cldice_loss": True}, "_dice": {"ce_weight": 0.0}, "_224": {"img_size": 224},
            "_256": {"img_size": 256}, "_288": {"img_size": 288}, "_aug": {"overlays": ["augment.json"]}}
"""Arm-name suffixes (they stack, e.g. ``_dice_224``) that change the fine-tuning of their base arm: bundle
overrides, and under ``overlays`` config files of the seg bundle added after the arm's own."""
ARMS = (BASE_ARMS + [f"{a}_cl" for a in ("unet", "scratch", "vasomim_p8")]
        + [f"{a}_dice" for a in ("unet", "scratch", "vasomim_p8_e100", "mae_p8_e100")]
        + ["unet_224", "scratch_dice_224", "vasomim_p8_e100_dice_224", "vasomim_i224_e100_dice_224",
           "vasomim_p8_e100_w256_dice_224", "vasomim_p8_e100_cl_dice_224", "unet_cl_224",
           "vasomim_p8_e200_dice_224", "unet_256", "vasomim_p8_e100_dice_256", "unet_288",
           "vasomim_p8_e100_dice_288", "unet_aug_256", "vasomim_p8_e100_dice_aug_256", "scratch_dice_aug_256"])
HELD_OUT_LABELS = 8
"""``--held-out`` keeps out the training images outside the nested ``HELD_OUT_LABELS``-image label set."""
PROTOCOL_LABELS = (8, 32)
"""Label counts of the arms that are not label-efficiency curves (VesselUNETR and the frozen probes)."""


def split_variants(arm: str) -> tuple[str, dict]:
    """(base arm, the overrides of its ``VARIANTS`` suffixes), e.g. "scratch_dice_224" -> ("scratch", {...})."""
    overrides: dict = {}
    while suffix := next((k for k in VARIANTS if arm.endswith(k)), None):
        arm, overrides = arm.removesuffix(suffix), {**VARIANTS[suffix], **overrides}
    return arm, overrides


def pretrained_arm(arm: str) -> str | None:
    """The pretraining an arm fine-tunes from ("mae", "vasomim"), or None."""
    arm = split_variants(arm)[0]
    return next((p for p in sorted(PRETRAIN_ARMS, key=len, reverse=True) if arm.endswith(p) or arm == f"{p}_unetr"),
                None)


def held_out(data: Path, runs: Path) -> tuple[Path, list[str]]:
    """The training images outside the ``HELD_OUT_LABELS``-image label set, linked into ``runs/held_out/{images,
    labels}`` (a ``--test-dir``), and the pretraining inputs without them (the DCA images they leave, linked into
    ``runs/held_out/pretrain_dca``). The split is the seg bundle's own (``scripts.data``), as its training uses."""
    sys.path.insert(0, str(SEG))
    from scripts.data import folder_split, paired_datalist

    dca = data / "xca_dca80_train"
    train = folder_split(dca, 0.2, 0, "train")
    kept = {d["image"] for d in folder_split(dca, 0.2, 0, "train", HELD_OUT_LABELS, 0)}
    test = [d for d in train if d["image"] not in kept]
    out = runs / "held_out"
    for folder, paths in (("images", [d["image"] for d in test]), ("labels", [d["label"] for d in test]),
                          ("pretrain_dca", [d["image"] for d in paired_datalist(dca) if d not in test])):
        (out / folder).mkdir(parents=True, exist_ok=True)
        for path in map(Path, paths):
            link = out / folder / path.name
            if not link.exists():
                link.symlink_to(path)
    inputs = [p for p in pretrain_dirs(data) if Path(p) != dca / "images"] + [str(out / "pretrain_dca")]
    return out, inputs


def pretrain(arm: str, s: dict, runs: Path, data: Path, threads: int, log: Path,
             inputs: list[str] | None = None) -> dict:
    """One pretraining (seed 0) with the vasomim_pretrain bundle, mask ratio 0.5 (the authors' script), on
    ``inputs`` (default ``pretrain_dirs(data)``)."""
    step, out = runs / "pretrain" / arm, runs / "pretrain" / arm / "run"
    ov = {k: s[k] for k in ("img_size", "hidden_size", "mlp_dim", "num_layers", "num_heads", "decoder_hidden_size",
                            "decoder_mlp_dim", "decoder_num_layers", "decoder_num_heads", "blr", "warmup_epochs",
                            "segmentor_epochs", "segmentor_channels", "vesselness_sigmas")}
    ov.update({"working_size": s["img_size"], "dataset_dir": inputs or pretrain_dirs(data), "output_dir": str(out),
               "seed": 0, "max_epochs": s["pre_epochs"], "batch_size": s["pre_batch"], "mask_ratio": 0.5,
               "num_workers": 0, "cache_workers": 1, "progress_bar": False, **PRETRAIN_ARMS[arm]})
    if not (step / "done.json").exists() and list((out / "checkpoints").glob("*.pt")):
        ov["resume"] = True
    elif not (step / "done.json").exists() and out.exists():
        ov["overwrite"] = True
    return run_step(step, bundle_cmd(PRE, "training", PRETRAIN_CONFIGS, ov), threads, log)


def seg_overrides(arm: str, n: int, seed: int, s: dict, runs: Path, data: Path) -> tuple[list[str], dict]:
    """Config files and overrides that train ``arm`` on ``n`` labels with fine-tuning seed ``seed``, for a fixed
    number of iterations (``s["iterations"]``) and a validation every ``s["val_every"]`` iterations. An arm name
    ending in ``VARIANTS`` suffixes is its base arm fine-tuned with their changes: ``_cl`` adds the soft clDice
    term to the loss, ``_dice`` drops the BCE term (the bundle default since; the other arms keep the Dice + BCE
    loss they were run with, which is also the authors'), ``_224`` fine-tunes at 224² (the authors' input), ``_256``
    at 256² and ``_288`` at 288² (nearer the source's 300²) instead of the scale's size, ``_aug`` with the authors'
    augmentation and learning-rate warm-up (``augment.json``)."""
    out = runs / "seg" / arm / f"n{n}" / f"seed{seed}"
    arm, variant = split_variants(arm)
    overlays = variant.pop("overlays", [])
    per_epoch = math.ceil(n / s["seg_batch"])
    ov = {"dataset_dir": str(data / "xca_dca80_train"), "val_fraction": 0.2, "split_seed": 0, "n_labels": n,
          "labels_seed": 0, "seed": seed, "img_size": s["img_size"], "batch_size": s["seg_batch"],
          "max_epochs": math.ceil(s["iterations"] / per_epoch),
          "val_interval": max(1, round(s["val_every"] / per_epoch)),
          "early_stop_patience": 10**6, "learning_rate": s["lr"], "num_workers": 0, "ckpt_dir": str(out / "models"),
          "output_dir": str(out / "train_log"), "ce_weight": 1.0, **variant}
    if arm == "unet":
        return ["train.json", "unet.json", *overlays], ov
    ov.update({k: s[k] for k in ("hidden_size", "mlp_dim", "num_layers", "num_heads")})
    configs = ["train.json"] + (["unetr.json"] if arm.endswith("_unetr") else []) + overlays
    if not arm.endswith("_unetr"):
        ov.update({"patch_size": s["patch_size"], "drop_path": s["drop_path"]})
    if arm.startswith("probe_"):
        ov.update({"freeze_encoder": True, "drop_path": 0.0})
    source = pretrained_arm(arm)
    if source is None:
        ov["layer_decay"] = 1.0
    else:
        ov["pretrained_ckpt"] = str(runs / "pretrain" / source / "run" / "models" / "model.pt")
    return configs, ov


def evaluate_overrides(arm: str, n: int, seed: int, s: dict, runs: Path, data: Path,
                       test_dir: Path | None = None) -> tuple[list[str], dict]:
    """Config files and overrides that evaluate the trained model on the val split (or on all of ``test_dir``)."""
    configs, ov = seg_overrides(arm, n, seed, s, runs, data)
    ov.pop("pretrained_ckpt", None)
    ov["validate#dataset#data#part"] = "val" if test_dir is None else "all"
    if test_dir is not None:
        ov["dataset_dir"] = str(test_dir)
    return configs + ["evaluate.json"], ov


def evaluate_cmd(arm: str, n: int, seed: int, s: dict, runs: Path, data: Path, out: Path,
                 test_dir: Path | None = None) -> list[str]:
    """``run evaluating`` of the trained model on the val split (or on all of ``test_dir``), at source resolution."""
    configs, ov = evaluate_overrides(arm, n, seed, s, runs, data, test_dir)
    return bundle_cmd(SEG, "evaluating", configs, {**ov, "output_dir": str(out / "eval"), **rerun(out)})


def finetune(arm: str, n: int, seed: int, s: dict, runs: Path, data: Path, threads: int, log: Path,
             test_dir: Path | None) -> None:
    """Trains, then evaluates the best checkpoint on the val split (and on ``test_dir``)."""
    out = runs / "seg" / arm / f"n{n}" / f"seed{seed}"
    configs, ov = seg_overrides(arm, n, seed, s, runs, data)
    run_step(out / "train", bundle_cmd(SEG, "training", configs, {**ov, **rerun(out / "train")}), threads, log)
    run_step(out / "val", evaluate_cmd(arm, n, seed, s, runs, data, out / "val"), threads, log)
    if test_dir is not None:
        run_step(out / "test", evaluate_cmd(arm, n, seed, s, runs, data, out / "test", test_dir), threads, log)


def plan(arms: list[str], labels: list[int], seeds: list[int]) -> list[tuple[str, int, int]]:
    """(arm, n, seed) in the order that leaves the most useful part done: seed by seed, fewest labels first."""
    steps = []
    for seed in seeds:
        for n in sorted(labels):
            for arm in arms:
                if (arm.endswith("_unetr") or arm.startswith("probe_")) and n not in PROTOCOL_LABELS:
                    continue
                steps.append((arm, n, seed))
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=list(SCALES), default="cpu")
    parser.add_argument("--arms", nargs="+", default=ARMS, choices=ARMS)
    parser.add_argument("--labels", nargs="+", type=int, default=[4, 8, 32, 2, 16])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--pretrain-only", nargs="*", choices=list(PRETRAIN_ARMS),
                        help="run only these pretrainings (to run them in parallel processes)")
    parser.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--test-dir", type=Path, help="also evaluate every model on DIR/images + DIR/labels")
    parser.add_argument("--held-out", action="store_true",
                        help=f"test on the training images outside the {HELD_OUT_LABELS}-label set, kept out of "
                             "pretraining too (labels <= 8)")
    parser.add_argument("--runs-dir", type=Path)
    parser.add_argument("--threads", type=int, default=1, help="OMP threads of each bundle subprocess")
    parser.add_argument("--analysis-only", action="store_true")
    args = parser.parse_args()

    s = SCALES[args.scale]
    data = Path(args.data_root).resolve()
    name = f"labels_{args.scale}" + ("_heldout" if args.held_out else "")
    runs = (args.runs_dir or REPO / "experiments" / "runs" / name).resolve()
    runs.mkdir(parents=True, exist_ok=True)
    (runs / "scale.json").write_text(json.dumps(s, indent=1))
    log = runs / "steps.jsonl"
    test_dir, inputs = args.test_dir.resolve() if args.test_dir else None, None
    test_name = f"the images of {test_dir} (--test-dir)" if test_dir else None
    if args.held_out:
        if args.test_dir or (max(args.labels) > HELD_OUT_LABELS and not args.analysis_only):
            parser.error(f"--held-out makes its own test folder and takes --labels up to {HELD_OUT_LABELS}")
        test_dir, inputs = held_out(data, runs)
        test_name = (f"the {len(list((test_dir / 'images').iterdir()))} held-out training images (--held-out), "
                     "unseen by pretraining, fine-tuning and checkpoint selection")
    if args.pretrain_only is not None:
        for arm in args.pretrain_only:
            pretrain(arm, s, runs, data, args.threads, log, inputs)
        return
    if not args.analysis_only:
        needed = [p for p in PRETRAIN_ARMS if any(pretrained_arm(a) == p for a in args.arms)]
        for arm in needed:
            pretrain(arm, s, runs, data, args.threads, log, inputs)
        for arm, n, seed in plan(args.arms, args.labels, args.seeds):
            finetune(arm, n, seed, s, runs, data, args.threads, log, test_dir)
    if args.scale == "cpu":
        sub = "labels_heldout" if args.held_out else "labels"
        write_report(runs, REPO / "experiments" / "results" / sub, REPO / "docs" / "figures" / sub, s,
                     test=test_name)
    else:
        write_report(runs, runs / "results", runs / "figures", s, test=test_name)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()

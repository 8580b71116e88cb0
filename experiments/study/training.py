"""The bundle commands of each arm: pretraining, fine-tuning (or training from scratch), evaluation and the Frangi
threshold tuning."""

from __future__ import annotations

import glob
import json
from pathlib import Path

from .arms import BAR, FRANGI_CONFIGS, PRETRAIN_ARMS, base_arm, vit_overrides
from .steps import PRE, PRETRAIN_CONFIGS, SEG, bundle_cmd, rerun, run_step
from .tables import per_image


def pretrain_dirs(data: Path) -> list[str]:
    """The unlabelled pretraining inputs of the issue (DCA-80 training images added without labels)."""
    return [str(data / "xca_cadml97" / "images"), str(data / "xca_arso" / "clinical_frames"),
            str(data / "dicom" / "xa_real" / "XA_coronary_cine_96frames_jpeg_baseline.dcm"),
            str(data / "dicom" / "xa_phantom_runs_jpeg_lossless"), str(data / "xca_dca80_train" / "images")]


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
    return run_step(step, bundle_cmd(PRE, "training", [*PRETRAIN_CONFIGS, "preset_cpu.json"], ov), threads, log)


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

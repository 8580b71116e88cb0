"""vasomim_seg output policy through ``python -m monai.bundle run``: training, evaluation and inference refuse to
replace an earlier run's files unless ``--overwrite true``, and never replace an input."""

from __future__ import annotations

import shutil

import torch

from conftest import SEG_BUNDLE, TINY_NET, TINY_TRAIN, monai_bundle, tiny_seg_net

CONFIGS = SEG_BUNDLE / "configs"
META = str(CONFIGS / "metadata.json")
EVAL_CSVS = {"metrics.csv", "val_mean_dice_raw.csv", "val_mean_dice_summary.csv", "val_cldice_raw.csv",
             "val_cldice_summary.csv"}


def train(cwd, overrides, check=True):
    return monai_bundle(["run", "training", "--config_file", str(CONFIGS / "train.json"), "--meta_file", META],
                        cwd=cwd, overrides=overrides, check=check)


def evaluate(cwd, overrides, frangi=True, check=True):
    names = ["train.json", "evaluate.json"] + (["evaluate_frangi.json"] if frangi else [])
    config = "[" + ",".join(f"'{CONFIGS / n}'" for n in names) + "]"
    return monai_bundle(["run", "evaluating", "--config_file", config, "--meta_file", META], cwd=cwd,
                        overrides=overrides, check=check)


def infer(cwd, overrides, check=True):
    return monai_bundle(["run", "--config_file", str(CONFIGS / "inference.json"), "--meta_file", META], cwd=cwd,
                        overrides=overrides, check=check)


def snapshot(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def assert_refused(proc, *names, error="FileExistsError"):
    log = proc.stdout + proc.stderr
    assert proc.returncode != 0, log[-3000:]
    assert f"{error}: " in log and all(n in log for n in names), log[-3000:]


def test_second_training_refuses_then_overwrite_replaces_model(tmp_path, small_dca_dir):
    model = tmp_path / "models" / "model.pt"
    ov = {**TINY_TRAIN, "max_epochs": 1, "dataset_dir": str(small_dca_dir), "ckpt_dir": str(model.parent),
          "output_dir": str(tmp_path / "eval")}
    train(tmp_path, ov)
    first = model.read_bytes()
    for extra in ({}, {"overwrite": "false"}):
        assert_refused(train(tmp_path, {**ov, **extra}, check=False), str(model.parent), "model.pt",
                       "--overwrite true", "--ckpt_dir")
        assert model.read_bytes() == first
    proc = train(tmp_path, {**ov, "overwrite": "true", "seed": 5})
    assert "replaces 1 earlier output file(s)" in proc.stdout + proc.stderr
    assert model.read_bytes() != first
    torch.load(model, weights_only=True)


def test_training_never_replaces_its_pretrained_checkpoint(tmp_path, small_dca_dir, tiny_pretrain_ckpt):
    model = tmp_path / "models" / "model.pt"
    model.parent.mkdir()
    shutil.copy(tiny_pretrain_ckpt, model)
    proc = train(tmp_path, {**TINY_TRAIN, "max_epochs": 1, "dataset_dir": str(small_dca_dir),
                            "ckpt_dir": str(model.parent), "output_dir": str(tmp_path / "eval"),
                            "pretrained_ckpt": str(model), "overwrite": True}, check=False)
    assert_refused(proc, str(model), "never replaced", error="ValueError")
    assert model.read_bytes() == tiny_pretrain_ckpt.read_bytes()


def test_evaluation_refuses_existing_csvs(tmp_path, small_dca_dir):
    out = tmp_path / "eval"
    out.mkdir()
    (out / "events.out.tfevents.1.train").write_bytes(b"a training run's TensorBoard file")
    ov = {"img_size": 128, "num_workers": 0, "dataset_dir": str(small_dca_dir), "ckpt_dir": str(tmp_path / "none"),
          "output_dir": str(out)}
    evaluate(tmp_path, ov)
    first = snapshot(out)
    assert EVAL_CSVS <= set(first)
    assert_refused(evaluate(tmp_path, {**ov, "frangi_threshold": 0.3}, check=False), "val_mean_dice_raw.csv",
                   "--overwrite true", "--output_dir")
    assert_refused(evaluate(tmp_path, {**TINY_NET, **ov}, frangi=False, check=False), "metrics.csv")
    assert snapshot(out) == first
    evaluate(tmp_path, {**ov, "frangi_threshold": 0.3, "overwrite": True})
    second = snapshot(out)
    assert set(second) == set(first) and second["val_mean_dice_raw.csv"] != first["val_mean_dice_raw.csv"]


def test_inference_refuses_existing_outputs_and_never_replaces_an_input(tmp_path, dca_dir):
    torch.manual_seed(0)
    model = tmp_path / "model.pt"
    torch.save(tiny_seg_net().state_dict(), model)
    out = tmp_path / "out"
    ov = {**TINY_NET, "handlers#0#load_path": str(model), "input_dir": str(dca_dir / "images" / "1.dcm"),
          "output_dir": str(out)}
    infer(tmp_path, ov)
    first = snapshot(out)
    assert set(first) == {"1_vessels.nii.gz", "1_overlay.png", "1_vessels_seg.dcm", "inference_manifest.json"}
    assert_refused(infer(tmp_path, ov, check=False), "1_vessels_seg.dcm", "--overwrite true")
    assert snapshot(out) == first
    infer(tmp_path, {**ov, "overwrite": "true"})
    assert set(snapshot(out)) == set(first)
    overlay = out / "1_overlay.png"
    before = overlay.read_bytes()
    assert_refused(infer(tmp_path, {**ov, "input_dir": str(overlay), "overwrite": True}, check=False),
                   "1_overlay.png", "never replaced", error="ValueError")
    assert overlay.read_bytes() == before

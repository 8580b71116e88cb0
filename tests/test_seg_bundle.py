"""vasomim_seg bundle: MONAI bundle checks, fine-tuning from a pretrain checkpoint, evaluation, data, labels."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from transforms import LoadAngiogramd

from conftest import (
    REPO,
    SEG_BUNDLE,
    TINY_NET,
    TINY_TRAIN,
    TINY_UNETR,
    bundle_copy,
    local_contrast,
    monai_bundle,
    seg_module,
    tiny_mae,
    tiny_seg_net,
)

CONFIGS = SEG_BUNDLE / "configs"
TRAIN = str(CONFIGS / "train.json")
META = str(CONFIGS / "metadata.json")
LOGGING = str(CONFIGS / "logging.conf")
TINY_META = {"_meta_#network_data_format#inputs#image#spatial_shape": [64, 64]}

encoder = seg_module("encoder")
network = seg_module("network")
data = seg_module("data")
labels = seg_module("labels")
dicom_seg = seg_module("dicom_seg")
frangi_baseline = seg_module("frangi_baseline")


def tiny_net():
    return tiny_seg_net()


def encoder_keys(net) -> list[str]:
    return [k for k in net.state_dict() if k.startswith(encoder.ENCODER_PREFIXES)]


def metric_values(log: str, name: str) -> list[float]:
    return [float(v) for v in re.findall(rf"Metrics -- .*?{name}: ([0-9.]+)", log)]


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory, tiny_pretrain_ckpt, small_dca_dir):
    """Two epochs of fine-tuning from the tiny pretrain checkpoint, run from a working directory outside the repo."""
    work = tmp_path_factory.mktemp("finetune")
    out = {"ckpt_dir": str(work / "models"), "output_dir": str(work / "eval")}
    proc = monai_bundle(
        ["run", "training", "--config_file", TRAIN, "--meta_file", META, "--logging_file", LOGGING], cwd=work,
        overrides={**TINY_TRAIN, **out, "dataset_dir": str(small_dca_dir), "pretrained_ckpt": str(tiny_pretrain_ckpt)},
    )
    return {"work": work, "log": proc.stdout + proc.stderr, **out}


def test_verify_metadata(tmp_path):
    bundle = bundle_copy(tmp_path)
    monai_bundle(["verify_metadata", "--meta_file", "configs/metadata.json",
                  "--filepath", "docs/meta_schema_20240725.json"], cwd=bundle)


def test_verify_metadata_rejects_a_broken_file(tmp_path):
    bundle = bundle_copy(tmp_path)
    meta = (bundle / "configs" / "metadata.json")
    meta.write_text(meta.read_text().replace('"task":', '"tusk":'))
    proc = monai_bundle(["verify_metadata", "--meta_file", "configs/metadata.json",
                         "--filepath", "docs/meta_schema_20240725.json"], cwd=bundle, check=False)
    assert proc.returncode != 0 and "task" in proc.stderr


def test_verify_net_in_out(tmp_path):
    bundle = bundle_copy(tmp_path)
    monai_bundle(["verify_net_in_out", "network_def", "--meta_file", "configs/metadata.json",
                  "--config_file", "configs/inference.json", "--device", "cpu"], cwd=bundle,
                 overrides={**TINY_NET, **TINY_META})


def test_ckpt_export_torchscript_matches_eager(tmp_path):
    bundle = bundle_copy(tmp_path)
    net = tiny_net().eval()
    torch.save(net.state_dict(), bundle / "models" / "model.pt")
    monai_bundle(["ckpt_export", "network_def", "--filepath", "models/model.ts", "--ckpt_file", "models/model.pt",
                  "--meta_file", "configs/metadata.json", "--config_file", "configs/inference.json"], cwd=bundle,
                 overrides=TINY_NET)
    scripted = torch.jit.load(str(bundle / "models" / "model.ts"))
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), net(x), rtol=1e-4, atol=1e-5)


def test_network_uses_sdpa_attention_and_exposes_vit():
    net = tiny_net()
    from monai.networks.blocks import SABlock
    from monai.networks.nets import ViT

    assert isinstance(net.vit, ViT) and len(net.vit.blocks) == TINY_NET["num_layers"]
    blocks = [m for m in net.modules() if isinstance(m, SABlock)]
    assert blocks and all(b.use_flash_attention for b in blocks)


def test_finetune_loads_and_updates_every_encoder_tensor(finetuned, tiny_pretrain_ckpt):
    expected = encoder_keys(tiny_net())
    assert f"Loaded {len(expected)} of {len(expected)} pretrained encoder tensors" in finetuned["log"]
    pretrained = encoder.map_mae_to_vit(torch.load(tiny_pretrain_ckpt), TINY_NET["num_layers"])
    final = torch.load(f"{finetuned['ckpt_dir']}/model.pt")
    assert len(encoder.adapt_to_network(pretrained, final)) == 2, "patch 16 -> 8: kernel and position embeddings"
    unchanged = [k for k in expected if torch.equal(final[k], pretrained[k])]
    # MONAI's TransformerBlock always creates norm_cross_attn but uses it only with cross-attention: no gradient.
    assert unchanged and all(".norm_cross_attn." in k for k in unchanged)
    assert all(final[k].shape == pretrained[k].shape for k in expected)


def test_loading_copies_the_checkpoint_into_vit(tiny_pretrain_ckpt):
    net = encoder.load_pretrained_encoder(tiny_net(), str(tiny_pretrain_ckpt))
    mapped = encoder.map_mae_to_vit(torch.load(tiny_pretrain_ckpt), TINY_NET["num_layers"])
    state = net.state_dict()
    encoder.adapt_to_network(mapped, state)
    assert all(torch.equal(state[k], mapped[k]) for k in encoder_keys(net))


def test_validation_logs_dice_and_cldice_each_epoch(finetuned):
    for name in ("val_mean_dice", "val_cldice"):
        values = metric_values(finetuned["log"], name)
        assert len(values) == TINY_TRAIN["max_epochs"], name
        assert all(0.0 <= v <= 1.0 for v in values)
    assert list((finetuned["work"] / "eval").glob("events.out.tfevents*"))


def test_nested_ddp_checkpoint_loads(tmp_path, tiny_pretrain_ckpt):
    state = torch.load(tiny_pretrain_ckpt)
    path = tmp_path / "nested.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}, path)
    net = encoder.load_pretrained_encoder(tiny_net(), str(path))
    assert torch.equal(net.state_dict()["vit.norm.weight"], state[f"blocks.{TINY_NET['num_layers']}.weight"])


def test_position_embeddings_of_another_image_size_are_resized(tmp_path, tiny_pretrain_ckpt):
    state = torch.load(tiny_pretrain_ckpt)
    net = encoder.load_pretrained_encoder(network.VesselUNETR(**{**TINY_UNETR, "img_size": [128, 128]}),
                                          str(tiny_pretrain_ckpt))
    pos = net.state_dict()["vit.patch_embedding.position_embeddings"]
    assert pos.shape == (1, 64, TINY_UNETR["hidden_size"])
    src = state["patch_embedding.position_embeddings"].reshape(4, 4, -1)
    assert torch.allclose(pos.reshape(8, 8, -1).mean(dim=(0, 1)), src.mean(dim=(0, 1)), atol=0.05)


def test_qkv_bias_mismatch_raises(tiny_pretrain_ckpt):
    with pytest.raises(encoder.PretrainedEncoderError, match="qkv_bias"):
        encoder.load_pretrained_encoder(tiny_seg_net(qkv_bias=False), str(tiny_pretrain_ckpt))


@pytest.mark.parametrize("case", ["wider", "deeper_net", "unrelated", "missing"])
def test_mismatched_checkpoint_raises(tmp_path, case):
    path = tmp_path / "bad.pt"
    if case == "wider":
        from monai.networks.nets import MaskedAutoEncoderViT

        torch.save(MaskedAutoEncoderViT(1, 64, 16, hidden_size=64, mlp_dim=64, num_layers=2, num_heads=2,
                                        decoder_num_heads=2, spatial_dims=2, qkv_bias=True).state_dict(), path)
        match = "shape mismatch [1-9]"
    elif case == "deeper_net":
        torch.save(tiny_mae().state_dict(), path)
        net = tiny_seg_net(num_layers=3)
        with pytest.raises(encoder.PretrainedEncoderError, match="missing [1-9]"):
            encoder.load_pretrained_encoder(net, str(path))
        return
    elif case == "unrelated":
        torch.save(torch.nn.Conv2d(1, 4, 3).state_dict(), path)
        match = "loaded 0 of"
    else:
        match = "not found"
    with pytest.raises(encoder.PretrainedEncoderError, match=match):
        encoder.load_pretrained_encoder(tiny_net(), str(path))


def test_bundle_run_fails_on_mismatched_checkpoint(tmp_path, small_dca_dir):
    bad = tmp_path / "bad.pt"
    torch.save(torch.nn.Linear(2, 2).state_dict(), bad)
    proc = monai_bundle(["run", "training", "--config_file", TRAIN, "--meta_file", META], cwd=tmp_path, check=False,
                        overrides={**TINY_TRAIN, "max_epochs": 1, "dataset_dir": str(small_dca_dir),
                                   "pretrained_ckpt": str(bad), "ckpt_dir": str(tmp_path / "m"),
                                   "output_dir": str(tmp_path / "e")})
    assert proc.returncode != 0 and "PretrainedEncoderError" in proc.stderr
    assert not (tmp_path / "m" / "model.pt").exists()


def test_train_from_scratch_from_repo_root(tmp_path, small_dca_dir):
    proc = monai_bundle(["run", "training", "--config_file", "bundles/vasomim_seg/configs/train.json",
                         "--meta_file", "bundles/vasomim_seg/configs/metadata.json",
                         "--logging_file", "bundles/vasomim_seg/configs/logging.conf"], cwd=REPO,
                        overrides={**TINY_TRAIN, "max_epochs": 1, "dataset_dir": str(small_dca_dir),
                                   "ckpt_dir": str(tmp_path / "models"), "output_dir": str(tmp_path / "eval")})
    log = proc.stdout + proc.stderr
    assert "training the encoder from scratch" in log and "pretrained encoder tensors" not in log
    assert (tmp_path / "models" / "model.pt").is_file()
    assert len(metric_values(log, "val_mean_dice")) == 1


def test_multi_gpu_config_under_torchrun_gloo_stops_every_rank_early(tmp_path, tiny_pretrain_ckpt, small_dca_dir):
    """Two CPU ranks (gloo), run from outside the repository. With lr 0 the validation Dice cannot improve, so early
    stopping (patience 1) ends the run after epoch 2 of 4; a rank left training would fail on a closed peer."""
    configs = str([TRAIN, str(CONFIGS / "multi_gpu_train.json")])
    proc = monai_bundle(["run", "training", "--config_file", configs, "--meta_file", META, "--logging_file", LOGGING],
                        cwd=tmp_path, nproc=2, timeout=300,
                        overrides={**TINY_TRAIN, "val_fraction": 0.5, "batch_size": 1, "max_epochs": 4,
                                   "learning_rate": 0.0, "early_stop_patience": 1,
                                   "dataset_dir": str(small_dca_dir), "pretrained_ckpt": str(tiny_pretrain_ckpt),
                                   "ckpt_dir": str(tmp_path / "models"), "output_dir": str(tmp_path / "eval")})
    log = proc.stdout + proc.stderr
    assert "EarlyStopping: Stop training" in log
    assert len(metric_values(log, "val_mean_dice")) == 2, "validation must run on epochs 1 and 2 only"
    state = torch.load(tmp_path / "models" / "model.pt", weights_only=True)
    assert state and not any(k.startswith("module.") for k in state)


def read_csv(path):
    with open(path) as f:
        return list(csv.reader(f))


def check_eval_outputs(out_dir, n_images):
    for name in ("val_mean_dice", "val_cldice"):
        raw = read_csv(out_dir / f"{name}_raw.csv")
        assert raw[0][0] == "filename" and len(raw) == 1 + n_images
        values = np.array([float(r[1]) for r in raw[1:]])
        assert np.all((values >= 0) & (values <= 1))
        summary = {r[0]: r[1:] for r in read_csv(out_dir / f"{name}_summary.csv")}
        header = summary["class"]
        mean, std = float(summary["mean"][header.index("mean")]), float(summary["mean"][header.index("std")])
        assert mean == pytest.approx(values.mean(), abs=1e-4)
        assert std == pytest.approx(values.std(), abs=1e-4)


def test_evaluate_writes_per_image_csv_and_summary(finetuned, small_dca_dir, tmp_path):
    config = f"['{TRAIN}','{CONFIGS / 'evaluate.json'}']"
    proc = monai_bundle(["run", "evaluating", "--config_file", config, "--meta_file", META], cwd=tmp_path,
                        overrides={**TINY_NET, "num_workers": 0, "dataset_dir": str(small_dca_dir),
                                   "ckpt_dir": finetuned["ckpt_dir"], "output_dir": str(tmp_path / "eval")})
    assert "Restored all variables" in proc.stdout + proc.stderr
    check_eval_outputs(tmp_path / "eval", len(data.paired_datalist(str(small_dca_dir))))


def test_frangi_baseline_evaluates_without_a_network_checkpoint(small_dca_dir, tmp_path):
    config = f"['{TRAIN}','{CONFIGS / 'evaluate.json'}','{CONFIGS / 'evaluate_frangi.json'}']"
    proc = monai_bundle(["run", "evaluating", "--config_file", config, "--meta_file", META], cwd=tmp_path,
                        overrides={"img_size": 128, "num_workers": 0, "dataset_dir": str(small_dca_dir),
                                   "ckpt_dir": str(tmp_path / "no_models"), "output_dir": str(tmp_path / "eval")})
    assert "Restored all variables" not in proc.stdout + proc.stderr
    check_eval_outputs(tmp_path / "eval", 4)


def test_frangi_threshold_controls_the_mask(dca_dir):
    image = LoadAngiogramd("image")({"image": str(dca_dir / "images" / "1.dcm"), "frame": None})["image"][None]
    low = frangi_baseline.FrangiBaseline(threshold=0.05)(image) > 0
    high = frangi_baseline.FrangiBaseline(threshold=0.3)(image) > 0
    assert high.sum() < low.sum() and bool((low | ~high).all())


def test_image_and_label_orientation_agree(dca_dir, tmp_path):
    item = {"image": str(dca_dir / "images" / "1.dcm"), "label": str(dca_dir / "labels" / "1.png"), "frame": None}
    d = labels.LoadVesselLabeld("label")(LoadAngiogramd("image")(item))
    image, label = d["image"][0], d["label"][0].bool()
    assert image.shape == label.shape and set(torch.unique(d["label"]).tolist()) == {0.0, 1.0}
    contrast = local_contrast(image.numpy(), label.numpy())
    assert contrast > 0.03  # vessels darker than the 4-pixel ring around them
    assert local_contrast(image.numpy(), label.numpy().T) < contrast / 2  # a transposed label would not be

    seg = tmp_path / "1_seg.dcm"
    dicom_seg.write_dicom_seg(label.numpy().T[None].astype(np.uint8), item["image"], str(seg))
    from monai.transforms import SaveImage

    meta = {"filename_or_obj": "lab", "affine": np.eye(4), "original_affine": np.eye(4), "spatial_shape": label.shape}
    SaveImage(output_dir=str(tmp_path), output_postfix="mask", separate_folder=False, output_ext=".nii.gz",
              resample=True, mode="nearest", print_log=False)(d["label"], meta_data=meta)
    nifti = next(tmp_path.glob("*_mask.nii.gz"))
    for other in (seg, nifti):
        loaded = labels.LoadVesselLabeld("label")({"label": str(other), "frame": None})["label"]
        assert torch.equal(loaded, d["label"]), other


def test_paired_datalist_and_seeded_split(dca_dir):
    pairs = data.paired_datalist(str(dca_dir))
    assert len(pairs) == len(list((dca_dir / "labels").glob("*.png")))
    assert all(p["image"].split("/")[-1][:-4] == p["label"].split("/")[-1][:-4] for p in pairs)
    train, val = (data.split_datalist(pairs, 0.25, 3, part) for part in ("train", "val"))
    assert len(val) == round(len(pairs) * 0.25) and len(train) + len(val) == len(pairs)
    assert not {p["image"] for p in train} & {p["image"] for p in val}
    assert data.split_datalist(pairs, 0.25, 3, "val") == val
    assert any(data.split_datalist(pairs, 0.25, s, "val") != val for s in range(4, 10))


def test_paired_datalist_pairs_any_image_suffix_with_its_label(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    for name in ("a.tif", "b.JPEG", "c.png", "d.dcm", "e", "f.tiff"):
        (tmp_path / "images" / name).write_bytes(b"x")
    for name in ("a.png", "b.png", "c.png", "d.nii.gz", "e.png", "f.dcm", "g.png"):
        (tmp_path / "labels" / name).write_bytes(b"x")
    pairs = data.paired_datalist(str(tmp_path))
    assert [(Path(p["image"]).name, Path(p["label"]).name) for p in pairs] == [
        ("a.tif", "a.png"), ("b.JPEG", "b.png"), ("c.png", "c.png"), ("d.dcm", "d.nii.gz"), ("e", "e.png"),
        ("f.tiff", "f.dcm")]


def test_paired_datalist_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        data.paired_datalist(str(tmp_path))
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    (tmp_path / "images" / "a.dcm").write_bytes(b"x")
    (tmp_path / "labels" / "b.png").write_bytes(b"x")
    with pytest.raises(FileNotFoundError, match="no image"):
        data.paired_datalist(str(tmp_path))

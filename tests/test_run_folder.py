"""transforms.run_folder in-process: the pretraining run folder, the seg bundle's output checks, yes/no options."""

from __future__ import annotations

import shutil

import pytest
import torch
from monai.handlers import CheckpointLoader, StatsHandler

from transforms.flags import as_flag
from transforms.run_folder import check_outputs, prepare_output_dir

PRETRAIN_ARTEFACTS = ["checkpoints", "models", "tb", "metrics.jsonl", "datalist_manifest.json"]


@pytest.mark.parametrize("value, expected", [(True, True), (False, False), ("true", True), ("false", False),
                                             ("False", False), (" YES ", True), ("no", False), (1, True), ("0", False)])
def test_as_flag_reads_words(value, expected):
    assert as_flag(value) is expected


@pytest.mark.parametrize("value", ["maybe", "", 2, None, 0.5])
def test_as_flag_rejects_other_values(value):
    with pytest.raises(ValueError, match="overwrite must be true or false"):
        as_flag(value, "overwrite")


def test_prepare_output_dir(tmp_path):
    out = tmp_path / "run"
    assert prepare_output_dir(out, PRETRAIN_ARTEFACTS) == str(out)
    (out / "checkpoints").mkdir()
    (out / "checkpoints" / "checkpoint_epoch=1.pt").write_bytes(b"x")
    (out / "notes.txt").write_text("mine")
    for overwrite in (False, "false"):
        with pytest.raises(FileExistsError, match="not empty"):
            prepare_output_dir(out, PRETRAIN_ARTEFACTS, overwrite=overwrite)
    with pytest.raises(FileExistsError, match="not empty"):
        prepare_output_dir(out, PRETRAIN_ARTEFACTS, resume="false")
    assert prepare_output_dir(out, PRETRAIN_ARTEFACTS, resume="true") and (out / "checkpoints").exists()
    data = out / "checkpoints" / "data"
    data.mkdir()
    with pytest.raises(ValueError, match="input"):
        prepare_output_dir(out, PRETRAIN_ARTEFACTS, overwrite=True, inputs=[data])
    shutil.rmtree(data)
    prepare_output_dir(out, PRETRAIN_ARTEFACTS, overwrite="true")
    assert not (out / "checkpoints").exists() and (out / "notes.txt").read_text() == "mine"


def test_check_outputs_refuses_only_this_runs_files(tmp_path):
    out = tmp_path / "eval"
    artefacts = ["metrics.csv", "*_raw.csv"]
    assert check_outputs(out, artefacts) == str(out) and not out.exists()
    out.mkdir()
    (out / "events.out.tfevents.1.host").write_bytes(b"tb")
    (out / "notes_raw.txt").write_text("mine")
    check_outputs(out, artefacts)
    (out / "val_mean_dice_raw.csv").write_text("old")
    for overwrite in (False, "false"):
        with pytest.raises(FileExistsError, match=r"val_mean_dice_raw\.csv.*--overwrite true.*--output_dir"):
            check_outputs(out, artefacts, overwrite=overwrite)
    check_outputs(out, artefacts, overwrite="true")
    assert (out / "val_mean_dice_raw.csv").read_text() == "old"


def test_check_outputs_lists_at_most_five_names(tmp_path):
    for i in range(7):
        (tmp_path / f"{i}_overlay.png").write_bytes(b"x")
    with pytest.raises(FileExistsError, match=r"holds 7 output file\(s\).*4_overlay\.png and 2 more"):
        check_outputs(tmp_path, ["*_overlay.png"])


def test_check_outputs_continues_a_loaded_checkpoint_only(tmp_path):
    model = tmp_path / "models" / "model.pt"
    model.parent.mkdir()
    torch.save({"w": torch.zeros(1)}, model)
    net = torch.nn.Linear(1, 1)
    with pytest.raises(FileExistsError, match=r"model\.pt.*--ckpt_dir.*CheckpointLoader"):
        check_outputs(model.parent, ["model.pt"], handlers=[StatsHandler()], folder_id="ckpt_dir")
    other = tmp_path / "other.pt"
    torch.save({"w": torch.zeros(1)}, other)
    with pytest.raises(FileExistsError):
        check_outputs(model.parent, ["model.pt"], handlers=[CheckpointLoader(str(other), {"model": net})])
    loader = CheckpointLoader(str(tmp_path / "models" / ".." / "models" / "model.pt"), {"model": net})
    assert check_outputs(model.parent, ["model.pt"], handlers=[StatsHandler(), loader]) == str(model.parent)


def test_check_outputs_never_replaces_an_input(tmp_path):
    model = tmp_path / "model.pt"
    model.write_bytes(b"pretrained encoder")
    for overwrite in (False, True):
        with pytest.raises(ValueError, match="never replaced"):
            check_outputs(tmp_path, ["model.pt"], overwrite=overwrite, inputs=[None, str(model)])
    image = tmp_path / "a_overlay.png"
    image.write_bytes(b"png")
    with pytest.raises(ValueError, match="a_overlay.png"):
        check_outputs(tmp_path, ["*_overlay.png"], overwrite=True, inputs=[image])
    assert check_outputs(tmp_path / "out", ["*_overlay.png"], inputs=[image])
    assert model.read_bytes() == b"pretrained encoder" and image.read_bytes() == b"png"

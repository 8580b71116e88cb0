"""Readable progress: the pretraining iteration line prints the lr as %.2e, and both bundles take num_threads."""

from __future__ import annotations

import importlib
import logging
from types import SimpleNamespace

import pytest
import torch
from monai.bundle import ConfigParser
from test_pretrain_model import scripts  # noqa: F401  (fixture)

from conftest import REPO

CONFIGS = {
    "pretrain": [REPO / "bundles" / "vasomim_pretrain" / "configs" / n for n in ("train.json", "inference.json")],
    "seg_train": [REPO / "bundles" / "vasomim_seg" / "configs" / "train.json"],
    "seg_inference": [REPO / "bundles" / "vasomim_seg" / "configs" / "inference.json"],
}


@pytest.mark.usefixtures("scripts")
def test_iteration_line_prints_a_warmup_lr_in_scientific_notation(caplog):
    state = SimpleNamespace(output={"loss": torch.tensor(1.5), "loss_rec": 1.0, "loss_cons": 0.5, "beta": 0.05,
                                    "lr": 4.0178e-05}, epoch_length=7, iteration=9, epoch=2, max_epochs=10)
    with caplog.at_level(logging.INFO):
        importlib.import_module("scripts.logging_handlers").log_iteration(
            SimpleNamespace(state=state), logger_name="test_progress_logs")
    assert caplog.messages == ["Epoch: 2/10, Iter: 2/7 -- beta: 0.0500 loss: 1.5000 loss_cons: 0.5000 "
                               "loss_rec: 1.0000 lr: 4.02e-05"]


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_num_threads_is_left_to_torch_by_default_and_set_when_given(name):
    before = torch.get_num_threads()
    parser = ConfigParser()
    parser.read_config([str(p) for p in CONFIGS[name]])
    assert parser["num_threads"] is None
    parser.get_parsed_content("initialize")
    assert torch.get_num_threads() == before
    parser["num_threads"] = before + 1
    try:
        parser.get_parsed_content("initialize", lazy=False)
        assert torch.get_num_threads() == before + 1
    finally:
        torch.set_num_threads(before)

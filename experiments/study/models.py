"""The trained models and validation images of the study, rebuilt through the seg bundle's own config."""

from __future__ import annotations

import sys
from pathlib import Path

from .steps import SEG
from .training import seg_overrides


def seg_parser(s: dict, data: Path, arm: str, runs: Path, seed: int = 0, extra: tuple = ()):
    """The seg bundle's own config (train.json [+ unet.json] + ``extra``) with the study's overrides."""
    from monai.bundle import ConfigParser

    if str(SEG) not in sys.path:
        sys.path.insert(0, str(SEG))
    configs, ov = seg_overrides(arm, seed, s, runs, data)
    parser = ConfigParser()
    parser.read_config([str(SEG / "configs" / c) for c in configs + list(extra)])
    ov.pop("pretrained_ckpt", None)
    ov["device"] = "$torch.device('cpu')"
    for k, v in ov.items():
        parser[k] = v
    return parser


def load_best(parser, ckpt: Path):
    """``network_def`` of ``parser`` with the weights of ``ckpt`` (a state dict, or one under "model"), in eval mode."""
    import torch

    net = parser.get_parsed_content("network_def")
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    state = state.get("model", state) if isinstance(state, dict) else state
    net.load_state_dict(state)
    return net.eval()


def val_items(parser) -> list[dict]:
    """The val split through the seg bundle's deterministic preprocessing: [{"image": (1, S, S), "label": ...}]."""
    parser["validate#dataset#data#part"] = "val"
    data = parser.get_parsed_content("validate#dataset#data")
    pre = parser.get_parsed_content("validate#preprocessing")
    return [pre(dict(d)) for d in data]

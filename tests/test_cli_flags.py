"""Yes/no options typed on the command line reach the bundles as the words they are.

`python -m monai.bundle run ... --guided false` hands the config the string "false" (Fire converts only True/False),
which Python reads as true. These tests parse the bundles' configs with the values exactly as Fire passes them.
"""

from pathlib import Path

import pytest
from monai.bundle import ConfigParser

from conftest import PRETRAIN_TRAIN, bundle_scripts

REPO = Path(__file__).resolve().parents[1]
PRETRAIN, SEG = REPO / "bundles" / "vasomim_pretrain", REPO / "bundles" / "vasomim_seg"


def parser_for(bundle: Path, configs: tuple, overrides: dict) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config([str(bundle / "configs" / c) for c in configs])
    parser.update(overrides)
    return parser


@pytest.mark.parametrize("word, expected", [("false", False), ("False", False), ("true", True), (False, False)])
def test_pretrain_ablation_words(word, expected, tmp_path):
    parser = parser_for(PRETRAIN, (*PRETRAIN_TRAIN, "preset_cpu.json"), {
        "guided": word, "use_cons": word, "progress_bar": word, "norm_pix_loss": word, "output_dir": str(tmp_path)})
    with bundle_scripts(PRETRAIN):
        flags = parser.get_parsed_content("flags")
        beta = parser.get_parsed_content("train#masking#beta")
        shared = parser.get_parsed_content("shared_beta")
        loss = None if expected else parser.get_parsed_content("loss")
    assert flags == dict.fromkeys(("guided", "use_cons", "norm_pix_loss", "progress_bar"), expected)
    assert (beta is shared) is expected
    if loss is not None:
        assert loss.segmentor is None and loss.use_cons is False and loss.norm_pix_loss is False


def test_pretrain_rejects_a_non_flag_word(tmp_path):
    parser = parser_for(PRETRAIN, PRETRAIN_TRAIN, {"guided": "maybe", "output_dir": str(tmp_path)})
    with bundle_scripts(PRETRAIN), pytest.raises(RuntimeError) as info:
        parser.get_parsed_content("flags#guided")
    causes, exc = [], info.value
    while exc is not None:
        causes.append(exc)
        exc = exc.__cause__ or exc.__context__
    assert any(isinstance(e, ValueError) and "guided must be true or false" in str(e) for e in causes)


@pytest.mark.parametrize("word, expected", [("false", False), ("true", True)])
def test_seg_flag_words(word, expected):
    parser = parser_for(SEG, ("train.json",), {"qkv_bias": word, "use_cldice_loss": word, "img_size": 64,
                                               "hidden_size": 32, "mlp_dim": 64, "num_layers": 2, "num_heads": 2})
    with bundle_scripts(SEG):
        net = parser.get_parsed_content("network_def")
        loss = parser.get_parsed_content("loss")
    assert (net.vit.blocks[0].attn.qkv.bias is not None) is expected
    assert (loss.cldice is not None) is expected


@pytest.mark.parametrize("ce_weight", [0.0, 1.0])
def test_seg_ce_weight_selects_the_authors_dice_only_loss(ce_weight):
    import torch
    from monai.losses import DiceCELoss, DiceLoss

    parser = parser_for(SEG, ("train.json",), {"ce_weight": ce_weight})
    with bundle_scripts(SEG):
        loss = parser.get_parsed_content("loss")
    g = torch.Generator().manual_seed(0)
    logits, target = torch.randn(2, 1, 16, 16, generator=g), (torch.rand(2, 1, 16, 16, generator=g) > 0.8).float()
    dice = DiceLoss(sigmoid=True)(logits, target)
    expected = dice if ce_weight == 0 else DiceCELoss(sigmoid=True)(logits, target)
    torch.testing.assert_close(loss(logits, target), expected)

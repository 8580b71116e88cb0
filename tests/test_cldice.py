"""clDice metric (bundles/vasomim_seg/scripts/cldice.py): definition, empty cases, and the MONAI metric wrapper."""

import numpy as np
import pytest
import torch
from monai.metrics import DiceMetric

from conftest import seg_module

_cldice = seg_module("cldice")
ClDiceMetric, cldice_2d = _cldice.ClDiceMetric, _cldice.cldice_2d


def curved_vessel(shape=(96, 96), width=3) -> np.ndarray:
    """A sinusoidal vessel of the given width, (D1, D2) uint8."""
    mask = np.zeros(shape, np.uint8)
    for x in range(8, shape[1] - 8):
        y = int(shape[0] / 2 + 20 * np.sin(x / 12))
        mask[y - width // 2 : y + width // 2 + 1, x] = 1
    return mask


def dice(p: np.ndarray, g: np.ndarray) -> float:
    metric = DiceMetric(include_background=True)
    return float(metric(torch.as_tensor(p)[None, None].float(), torch.as_tensor(g)[None, None].float()).item())


def test_identical_masks_score_one():
    mask = curved_vessel()
    assert cldice_2d(mask, mask) == pytest.approx(1.0)


def test_disjoint_line_scores_zero():
    label = np.zeros((64, 64), np.uint8)
    label[10:54, 20:23] = 1
    pred = np.zeros_like(label)
    pred[10:54, 45:48] = 1
    assert cldice_2d(pred, label) == 0.0


def test_broken_thin_branch_lowers_cldice_more_than_dice():
    label = np.zeros((96, 96), np.uint8)
    label[40:52, 4:92] = 1  # thick trunk
    label[4:40, 60] = 1  # thin branch, 1 px wide
    pred = label.copy()
    pred[10:30, 60] = 0  # the branch is broken
    cl, dsc = cldice_2d(pred, label), dice(pred, label)
    assert 0.0 < cl < dsc < 1.0


def test_empty_cases_are_defined():
    empty = np.zeros((32, 32), np.uint8)
    vessel = curved_vessel((32, 32), 1)
    assert cldice_2d(empty, empty) == 1.0
    assert cldice_2d(vessel, empty) == 0.0
    assert cldice_2d(empty, vessel) == 0.0


def test_metric_per_image_and_aggregate_without_nan():
    mask = curved_vessel((64, 64))
    other = np.roll(mask, 20, axis=1) * 0
    y_pred = torch.as_tensor(np.stack([mask, other, other]))[:, None].float()
    y = torch.as_tensor(np.stack([mask, other, mask]))[:, None].float()
    metric = ClDiceMetric()
    per_image = metric(y_pred, y)
    assert per_image.shape == (3, 1)
    assert per_image[:, 0].tolist() == [pytest.approx(1.0), 1.0, 0.0]
    agg = metric.aggregate()
    assert not torch.isnan(agg)
    assert float(agg) == pytest.approx(float(per_image.mean()))


def test_metric_rejects_multichannel_input():
    with pytest.raises(ValueError, match="B, 1"):
        ClDiceMetric()(torch.zeros(1, 2, 8, 8), torch.zeros(1, 2, 8, 8))

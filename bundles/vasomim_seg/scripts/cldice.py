"""Centerline Dice (clDice, Shit et al., CVPR 2021) as a MONAI cumulative metric and an Ignite handler.

Tprec = |S(P) & L| / |S(P)|, Tsens = |S(L) & P| / |S(L)|, clDice = 2 Tprec Tsens / (Tprec + Tsens), with S the
``skimage.morphology.skeletonize`` skeleton of a binary mask. Empty cases (so that no NaN appears):
prediction and label both empty -> 1.0 (nothing to find, nothing found); exactly one empty -> 0.0;
Tprec + Tsens == 0 (non-empty masks whose skeletons miss each other) -> 0.0.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from monai.handlers import IgniteMetricHandler
from monai.metrics import CumulativeIterationMetric
from monai.metrics.utils import do_metric_reduction
from monai.utils import MetricReduction
from skimage.morphology import skeletonize


def topology_scores(pred: np.ndarray, label: np.ndarray) -> tuple[float, float]:
    """(Tprec, Tsens) of two binary 2D masks (D1, D2) (any dtype, nonzero = vessel); 0 where a skeleton is empty."""
    p, g = np.asarray(pred) > 0, np.asarray(label) > 0
    skel_p, skel_g = skeletonize(p), skeletonize(g)
    return float((skel_p & g).sum() / max(skel_p.sum(), 1)), float((skel_g & p).sum() / max(skel_g.sum(), 1))


def cldice_2d(pred: np.ndarray, label: np.ndarray) -> float:
    """clDice of two binary 2D masks (D1, D2) (any dtype, nonzero = vessel); see the module docstring for empty
    cases."""
    p, g = np.asarray(pred) > 0, np.asarray(label) > 0
    if not p.any() and not g.any():
        return 1.0
    if not p.any() or not g.any():
        return 0.0
    tprec, tsens = topology_scores(p, g)
    if tprec + tsens == 0:
        return 0.0
    return float(2.0 * tprec * tsens / (tprec + tsens))


class ClDiceMetric(CumulativeIterationMetric):
    """clDice per image for binarised 2D predictions.

    Input ``y_pred`` and ``y`` (B, 1, D1, D2) {0, 1} (threshold before, e.g. ``AsDiscreted(threshold=0.5)``);
    per-iteration output (B, 1). ``aggregate()`` reduces the buffer with ``reduction`` (default mean).
    """

    def __init__(self, reduction: MetricReduction | str = MetricReduction.MEAN, get_not_nans: bool = False) -> None:
        super().__init__()
        self.reduction = reduction
        self.get_not_nans = get_not_nans

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if y_pred.shape != y.shape or y_pred.ndim != 4 or y_pred.shape[1] != 1:
            raise ValueError(
                f"expected y_pred and y of shape (B, 1, D1, D2), got {tuple(y_pred.shape)} and {tuple(y.shape)}."
            )
        p, g = y_pred.detach().cpu().numpy(), y.detach().cpu().numpy()
        values = [cldice_2d(p[b, 0], g[b, 0]) for b in range(p.shape[0])]
        return torch.tensor(values, dtype=torch.float32, device=y_pred.device).reshape(-1, 1)

    def aggregate(self, reduction: MetricReduction | str | None = None):
        """Reduced clDice over all buffered images (and the not-NaN count when ``get_not_nans``)."""
        data = self.get_buffer()
        if not isinstance(data, torch.Tensor):
            raise ValueError("the data to aggregate must be a PyTorch Tensor.")
        f, not_nans = do_metric_reduction(data, reduction or self.reduction)
        return (f, not_nans) if self.get_not_nans else f


class ClDiceHandler(IgniteMetricHandler):
    """Ignite metric handler computing :class:`ClDiceMetric` over an epoch (mean clDice; per-image details saved).

    Args:
        reduction: reduction of per-image values.
        output_transform: maps ``engine.state.output`` to ``(y_pred, y)``, each a list of (1, D1, D2) or a batch.
        save_details: keep per-image values in ``engine.state.metric_details`` (for ``MetricsSaver``).
    """

    def __init__(
        self,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        output_transform: Callable = lambda x: x,
        save_details: bool = True,
    ) -> None:
        super().__init__(metric_fn=ClDiceMetric(reduction=reduction), output_transform=output_transform,
                         save_details=save_details)

"""Vessel pseudo-mask from a vesselness map (VasoMIM's anatomy extraction, step 2).

Steps, per channel: zero a border of ``border`` pixels (collimator edges); keep the pixels whose response is at least
the ``percentile``-th percentile of the response inside that border, and above 0; then, with
``keep="strongest_component"``, keep only the connected component that contains the strongest response.

The percentile is taken over the interior (the pixels not zeroed), so ``100 - percentile`` percent of the analysed
field is kept before the component step. The authors' script zeroes the border first and takes the percentile of the
whole image, border zeros included; for a 512 x 512 image with a 20-pixel border that is about the 90.6th percentile
of the interior, so it keeps slightly more pixels.
"""

from __future__ import annotations

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import Transform
from monai.utils.type_conversion import convert_to_dst_type, convert_to_numpy
from skimage.measure import label

from ._mapping import ToNewKeyd

__all__ = ["vessel_pseudo_mask", "VesselPseudoMask", "VesselPseudoMaskd"]

_KEEP = ("strongest_component", "all")


def vessel_pseudo_mask(
    response: np.ndarray,
    border: int = 20,
    percentile: float = 92.0,
    keep: str = "strongest_component",
    connectivity: int = 1,
) -> np.ndarray:
    """Binary vessel mask of one 2D vesselness map.

    Args:
        response: (D1, D2) vesselness, higher = more vessel-like.
        border: pixels zeroed on every side.
        percentile: keep pixels at or above this percentile of the interior response (and above 0).
        keep: "strongest_component" (the connected component holding the maximum response) or "all".
        connectivity: 1 = 4-connected, 2 = 8-connected (``skimage.measure.label`` convention).

    Returns:
        (D1, D2) bool mask; all False when the interior response has no positive value.
    """
    response = np.asarray(response, dtype=np.float64)
    if response.ndim != 2:
        raise ValueError(f"expected a 2D response, got shape {response.shape}")
    interior = np.zeros(response.shape, dtype=bool)
    if border > 0:
        interior[border:-border, border:-border] = True
    else:
        interior[:] = True
    inside = np.where(interior, response, 0.0)
    values = inside[interior]
    if values.size == 0 or not np.any(values > 0):
        return np.zeros(response.shape, dtype=bool)
    mask = interior & (inside >= np.percentile(values, percentile)) & (inside > 0)
    if keep == "all":
        return mask
    labels = label(mask, connectivity=connectivity)
    return labels == labels.flat[np.argmax(inside)]


class VesselPseudoMask(Transform):
    """Array transform: (C, W, H) vesselness -> (C, W, H) float32 {0, 1} vessel mask, each channel separately.

    Args:
        border, percentile, keep, connectivity: see :func:`vessel_pseudo_mask`.

    Input and output: ndarray, tensor or MetaTensor (same type out, metadata kept).
    """

    backend = [torch.Tensor.__name__, np.ndarray.__name__]

    def __init__(
        self, border: int = 20, percentile: float = 92.0, keep: str = "strongest_component", connectivity: int = 1
    ):
        if keep not in _KEEP:
            raise ValueError(f"keep must be one of {_KEEP}, got {keep!r}")
        if not 0 <= percentile <= 100:
            raise ValueError(f"percentile must be in [0, 100], got {percentile}")
        if border < 0:
            raise ValueError(f"border must be >= 0, got {border}")
        self.border, self.percentile = int(border), float(percentile)
        self.keep, self.connectivity = keep, int(connectivity)

    def __call__(self, img):
        """img: (C, W, H) vesselness -> (C, W, H) float32 mask."""
        arr = convert_to_numpy(img)
        if arr.ndim != 3:
            raise ValueError(f"VesselPseudoMask expects a channel-first 2D map (C, W, H), got shape {arr.shape}")
        mask = np.stack(
            [vessel_pseudo_mask(c, self.border, self.percentile, self.keep, self.connectivity) for c in arr]
        ).astype(np.float32)
        return convert_to_dst_type(mask, img, dtype=torch.float32 if isinstance(img, torch.Tensor) else np.float32)[0]


class VesselPseudoMaskd(ToNewKeyd):
    """Dictionary wrapper of :class:`VesselPseudoMask`.

    Args:
        keys: vesselness key(s), each (C, W, H).
        output_key: key (or one key per input key) that receives the (C, W, H) float32 {0, 1} mask.
        allow_missing_keys: skip absent keys.
        other args: see :class:`VesselPseudoMask`.
    """

    backend = VesselPseudoMask.backend

    def __init__(
        self,
        keys: KeysCollection = "vesselness",
        output_key: str | list[str] = "vessel_mask",
        border: int = 20,
        percentile: float = 92.0,
        keep: str = "strongest_component",
        connectivity: int = 1,
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, output_key, VesselPseudoMask(border, percentile, keep, connectivity), allow_missing_keys)

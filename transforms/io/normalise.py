"""Normalising decoded frames: luminance for colour, MONOCHROME1 inversion, min-max to [0, 1] float32, (C, R) axes.

Layer 4 of the read path, the last one: it calls nothing of `transforms.io` (only `transforms._parallel`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .._parallel import run_pieces
from ..errors import AngiogramReadError

LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def normalise_frames(
    path, arrays: Sequence[np.ndarray], invert: bool, indices: Sequence, out: np.ndarray
) -> np.ndarray:
    """Normalises decoded frames (R, C[, 3]) each into its slice of `out` (N, C, R); see `normalise`.

    `indices` name the frames in error reasons (None entries for a single-frame file). Several frames are
    normalised on torch's threads, one frame per piece (`transforms._parallel.run_pieces`; numpy's ufuncs release
    the GIL); when frames fail, the first one's error is raised, as serially.
    """
    if min(len(arrays), torch.get_num_threads()) <= 1:
        for k, (index, arr) in enumerate(zip(indices, arrays)):
            normalise(path, arr, invert, index, out=out[k])
        return out
    errors: dict = {}

    def piece(k: int) -> None:
        try:
            normalise(path, arrays[k], invert, indices[k], out=out[k])
        except Exception as exc:
            errors[k] = exc

    run_pieces(piece, len(arrays), torch.device("cpu"))
    if errors:
        raise errors[min(errors)]
    return out


def normalise(path, arr: np.ndarray, invert: bool, index, out: np.ndarray | None = None) -> np.ndarray:
    """Min-max scales one frame to [0, 1] float32 in MONAI orientation, flipped when `invert`; (R, C[, 3]) -> (C, R).

    Colour frames become luminance (ITU-R 601: 0.299 R + 0.587 G + 0.114 B) first. A constant frame is rejected.
    The result is written into `out` (C, R) when given.
    """
    if arr.ndim == 3:
        arr = arr.astype(np.float32) @ LUMA
    mn, mx = arr.min(), arr.max()
    if not mx > mn:
        where = "" if index is None else f" (frame {index})"
        raise AngiogramReadError(path, f"constant image{where}: every pixel is {mn}")
    if out is None:
        out = np.empty(arr.shape[::-1], dtype=np.float32)
    scale = np.float32(float(mx) - float(mn))
    if arr.dtype.kind == "u" and arr.itemsize <= 2:
        # offsets from min (max) are exact in the stored type and in float32: taken in storage order (vectorised),
        # then one float32 division that transposes them straight into `out` (8-25% faster than transposing first)
        offsets = np.subtract(mx, arr) if invert else np.subtract(arr, mn)
        return np.divide(offsets.T, scale, out=out, dtype=np.float32)
    out[...] = np.ascontiguousarray(arr.T)  # transposing the narrow stored type first is up to 1.6x faster
    if invert:
        np.subtract(np.float32(mx), out, out=out)
    else:
        out -= np.float32(mn)
    out /= scale
    return out


def frame_mean(arr: np.ndarray, invert: bool) -> float:
    """Mean of one decoded frame (luminance for colour), negated when `invert`; NaN when the frame is constant."""
    if arr.ndim == 3:
        arr = arr.astype(np.float32) @ LUMA
    return np.nan if arr.min() == arr.max() else (-1.0 if invert else 1.0) * float(arr.mean())

"""The MONAI entry points of angiogram reading: `LoadAngiogram`, `LoadAngiogramd` and the `AngiogramReader` ImageReader.

Each calls `read.read_angiogram` once and wraps its (array, meta) the MONAI way.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import ImageReader, MetaTensor
from monai.transforms import MapTransform, Transform
from monai.utils import ensure_tuple

from .read import read_angiogram

SUFFIXES = {"", ".dcm", ".dicom", ".dic", ".ima", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif"}


def _affine(spacing) -> np.ndarray:
    """diag(col spacing, row spacing, 1, 1) float64 (4, 4); identity when the spacing is unknown (nan)."""
    row, col = (1.0, 1.0) if math.isnan(spacing[0]) else spacing
    return np.diag([col, row, 1.0, 1.0])


def as_metatensor(array: np.ndarray, meta: dict) -> MetaTensor:
    """The read path's (array (N, W, H), meta) as LoadAngiogram's MetaTensor (N, W, H); `meta` is completed in place
    and becomes the MetaTensor's meta."""
    affine = _affine(meta["pixel_spacing"])
    meta["spatial_shape"] = np.asarray(array.shape[1:])
    meta["original_channel_dim"] = "no_channel"
    meta["original_affine"] = torch.from_numpy(affine.copy())
    # ndarrays, not tensors: MetaTensor converts them once and keeps this fresh meta dict instead of copying it;
    # spatial_ndim is the value it would derive from the affine, given so that it is not derived a second time.
    # The constructor reads `self.ndim` twice, each through MetaTensor.__torch_function__, which returns an int
    # as it is; with that dispatch off, the same MetaTensor costs 15 us less (3% of a single-frame read)
    with torch._C.DisableTorchFunctionSubclass():
        return MetaTensor(array, affine=affine, meta=meta, spatial_ndim=affine.shape[0] - 1)


class LoadAngiogram(Transform):
    """Loads one angiogram frame as a MetaTensor.

    `__call__(path, frame=None)` -> MetaTensor float32 (1, W, H) in [0, 1] (W = Columns, H = Rows), vessels dark;
    for a multi-frame file with `frame=None` every frame is returned, (N, W, H), each normalised on its own.
    Meta keys: filename_or_obj, frame_index (frame decoded; 0 for a single-frame file, -1 when all frames were
    returned), num_frames, pixel_spacing ((row, col) mm from ImagerPixelSpacing, else PixelSpacing; (nan, nan) when
    unknown), sop_instance_uid, series_instance_uid, study_instance_uid, sop_class_uid, modality (strings, "" when
    absent), photometric_interpretation (as stored; the PIL mode for PNG/JPEG/TIFF), rows, columns;
    affine = diag(col spacing, row spacing, 1, 1) (identity when unknown). No meta value is None, so batches
    collate with MONAI's list_data_collate. Parsed multi-frame files are cached per process (see
    `transforms.io.files.open_dicom`), so a cine loaded frame by frame is parsed and checked once; a frame asked for
    alone is read from its own bytes where possible (`files.encoded_frame`), and the frames of a whole cine are
    decoded and normalised on torch's threads (serially in DataLoader workers, which have one). An output of 32 MiB
    or more (a whole cine) is written into the memory of an earlier one once nothing refers to that any more
    (`transforms.io.memory`: at most 256 MiB of freed outputs kept per process; `memory.set_limit(0)` keeps none).
    The reading rules (MONOCHROME1, Modality LUT, colour, normalisation) are in `transforms.io.read`.

    Args:
        decoding_plugin: pydicom decoding plugin to try first; None takes `transforms.io.decode.FASTEST_PLUGIN`'s
            entry for the transfer syntax (Pillow for JPEG Baseline, pyjpegls for JPEG-LS when installed), "" uses
            pydicom's own order.
    """

    def __init__(self, decoding_plugin: str | None = None):
        self.decoding_plugin = decoding_plugin

    def __call__(self, path, frame=None) -> MetaTensor:
        return as_metatensor(*read_angiogram(path, frame, self.decoding_plugin))


class LoadAngiogramd(MapTransform):
    """Dictionary wrapper of LoadAngiogram: d[key] (a path) -> MetaTensor (1, W, H), frame from d[frame_key].

    After loading, d[frame_key] holds the frame actually decoded (an int: 0 for a single-frame file, -1 for all
    frames) instead of None, so that a DataLoader can collate the dict.

    Args:
        keys: keys holding file paths.
        frame_key: key holding the frame index (None or missing = single frame / all frames).
        allow_missing_keys: skip missing keys instead of raising KeyError.
        decoding_plugin: see LoadAngiogram.
    """

    def __init__(
        self,
        keys: KeysCollection,
        frame_key: str | None = "frame",
        allow_missing_keys: bool = False,
        decoding_plugin: str | None = None,
    ):
        super().__init__(keys, allow_missing_keys)
        self.frame_key = frame_key
        self.loader = LoadAngiogram(decoding_plugin)

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        frame = d.get(self.frame_key) if self.frame_key else None
        for key in self.key_iterator(d):
            d[key] = self.loader(d[key], frame)
            if self.frame_key:
                d[self.frame_key] = d[key].meta["frame_index"]
        return d


class AngiogramReader(ImageReader):
    """The angiogram loader as a MONAI ImageReader: `LoadImaged(keys, reader=AngiogramReader())`.

    Same array and meta as LoadAngiogram: float32 (N, W, H) in [0, 1], frames first (N = 1 for a single-frame file
    or when `frame` is given; every frame of a cine otherwise), MONOCHROME1 inverted, one min-max per frame, the
    meta keys listed in LoadAngiogram. `original_channel_dim` is 0 (the frame axis), so `ensure_channel_first=True`
    keeps that shape. Several files given at once are concatenated along the frame axis (meta of the first).
    An unusable file raises AngiogramReadError; note that LoadImage then tries its other registered readers and,
    when they fail too, raises a RuntimeError that quotes the reason.

    Args:
        frame: the frame to read from multi-frame files (None: all); `read(data, frame=...)` overrides it.
        decoding_plugin: see LoadAngiogram.
    """

    def __init__(self, frame: int | None = None, decoding_plugin: str | None = None):
        super().__init__()
        self.frame = frame
        self.decoding_plugin = decoding_plugin

    def verify_suffix(self, filename: Sequence[str] | str) -> bool:
        """True when every name has a DICOM or PNG/JPEG/TIFF/BMP/GIF suffix, or none (DICOM files often have none)."""
        return all(Path(f).suffix.lower() in SUFFIXES for f in ensure_tuple(filename))

    def read(self, data: Sequence[str] | str, **kwargs) -> list[tuple[np.ndarray, dict]]:
        """Reads each file of `data`: a list of (array (N, W, H), meta) pairs."""
        frame = kwargs.get("frame", self.frame)
        return [read_angiogram(f, frame, self.decoding_plugin) for f in ensure_tuple(data)]

    def get_data(self, img: list[tuple[np.ndarray, dict]]) -> tuple[np.ndarray, dict]:
        """(array (N, W, H), meta with affine, original_affine, spatial_shape, original_channel_dim = 0)."""
        arrays = [array for array, _ in img]
        if len({a.shape[1:] for a in arrays}) > 1:
            shapes = [a.shape for a in arrays]
            raise ValueError(f"AngiogramReader: files of different sizes cannot be stacked: {shapes}")
        array = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
        meta = dict(img[0][1])
        affine = _affine(meta["pixel_spacing"])
        meta.update(affine=affine, original_affine=affine.copy(), spatial_shape=np.asarray(array.shape[1:]),
                    original_channel_dim=0)
        return array, meta

"""Angiogram loading: DICOM XA/RF/DX/CR/SC (single- and multi-frame) and PNG/JPEG/TIFF into (1, W, H) MetaTensors.

Rules, applied to each frame on its own:
    1. decode only the requested frame (pydicom.pixels.pixel_array(ds, index=i));
    2. Modality LUT: a Modality LUT Sequence is applied; a linear RescaleSlope/Intercept is folded into step 4, since
       min-max scaling removes it except for the sign of the slope;
    3. MONOCHROME1 is inverted (so vessels are dark on a bright background, as MONOCHROME2 displays them); colour
       (DICOM RGB/YBR, RGB(A)/palette PNG/TIFF) becomes luminance 0.299 R + 0.587 G + 0.114 B;
    4. min-max per frame to [0, 1] float32: (x - min) / (max - min). A MONOCHROME1 copy with stored values
       K - x therefore loads equal to its MONOCHROME2 original. Window Center/Width (VOI LUT) is ignored. A constant
       frame is rejected.
Orientation: MONAI's, i.e. the DICOM `pixel_array.T` (first spatial axis = columns/x, second = rows/y), the same as
`LoadImage(reader="PILReader")` and ITKReader. Every bad input raises `AngiogramReadError(path, reason)`.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform

from . import _dicom
from .errors import AngiogramReadError

logger = logging.getLogger("transforms.io")

IGNORED_SUFFIXES = {
    ".txt", ".md", ".json", ".csv", ".tsv", ".yaml", ".yml", ".py", ".log", ".xml", ".html", ".pdf", ".zip",
    ".gz", ".zst", ".tar", ".npy", ".npz", ".pt", ".pth", ".ckpt", ".nii", ".ini", ".cfg", ".sh",
}
IGNORED_NAMES = {"LICENSE", "LICENCE", "NOTICE", "README", "COPYING", "DICOMDIR", "AUTHORS"}


def _check_frame_index(path, frame, frames: int) -> int:
    try:
        index = int(frame)
    except Exception:
        raise AngiogramReadError(path, f"invalid frame index {frame!r}") from None
    if not 0 <= index < frames:
        raise AngiogramReadError(path, f"frame {index} out of range: the file has {frames} frame(s)")
    return index


def _affine(spacing) -> np.ndarray:
    """diag(col spacing, row spacing, 1, 1) float64 (4, 4); identity when the spacing is unknown (nan)."""
    row, col = (1.0, 1.0) if math.isnan(spacing[0]) else spacing
    return np.diag([col, row, 1.0, 1.0])


NO_SPACING = _dicom.NO_SPACING


def read_angiogram(path, frame=None, decoding_plugin: str | None = None) -> tuple[np.ndarray, dict]:
    """Reads frame `frame` (or every frame when None) of one file.

    Returns:
        (array, meta): float32 array (N, W, H) in [0, 1], N = 1 when `frame` is given or the file has one frame, and
        the meta dict described in LoadAngiogram.
    Raises:
        AngiogramReadError for every unreadable, inconsistent, undecodable or constant input.
    """
    with _dicom.read_errors(path):
        if _dicom.is_image_path(path):
            return _read_image(path, frame)
        image = _dicom.open_dicom(path)
        frames = image.header.frames
        indices = range(frames) if frame is None else [_check_frame_index(path, frame, frames)]
        out = np.empty((len(indices), image.header.columns, image.header.rows), dtype=np.float32)
        for k, (i, arr) in enumerate(zip(indices, _dicom.decode_frames(path, image, indices, decoding_plugin))):
            _dicom.normalise(path, arr, image.invert, i if frames > 1 else None, out=out[k])
        index = -1 if frame is None and frames > 1 else indices[0]
        return out, {"filename_or_obj": str(path), "frame_index": index, **image.info}


def _read_image(path, frame) -> tuple[np.ndarray, dict]:
    arr, info = _dicom.read_image_file(path, frame)
    image = _dicom.normalise(path, arr, False, frame)[None]
    meta = {
        "filename_or_obj": str(path),
        "frame_index": 0 if frame is None else int(frame),
        "num_frames": info["num_frames"],
        "pixel_spacing": NO_SPACING,
        "sop_instance_uid": "",
        "series_instance_uid": "",
        "study_instance_uid": "",
        "sop_class_uid": "",
        "modality": "",
        "photometric_interpretation": info["photometric_interpretation"],
        "rows": int(arr.shape[0]),
        "columns": int(arr.shape[1]),
    }
    return image, meta


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
    `transforms._dicom.open_dicom`), so a cine loaded frame by frame is parsed and checked once.

    Args:
        decoding_plugin: pydicom decoding plugin to try first; None prefers Pillow for JPEG Baseline, "" uses
            pydicom's own order.
    """

    def __init__(self, decoding_plugin: str | None = None):
        self.decoding_plugin = decoding_plugin

    def __call__(self, path, frame=None) -> MetaTensor:
        array, meta = read_angiogram(path, frame, self.decoding_plugin)
        affine = _affine(meta["pixel_spacing"])
        meta["spatial_shape"] = np.asarray(array.shape[1:])
        meta["original_channel_dim"] = "no_channel"
        meta["original_affine"] = torch.from_numpy(affine.copy())
        # ndarrays, not tensors: MetaTensor converts them once and keeps this fresh meta dict instead of copying it;
        # spatial_ndim is the value it would derive from the affine, given so that it is not derived a second time
        return MetaTensor(array, affine=affine, meta=meta, spatial_ndim=affine.shape[0] - 1)


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


def iter_candidate_files(root, recursive: bool = True) -> list[Path]:
    """Files under `root` (a file, a folder or a list of them) that may be angiograms, sorted.

    Hidden files/folders, DICOMDIR and obvious non-images (LICENSE, README, *.txt, *.json, ...) are skipped.
    """
    roots = [root] if isinstance(root, (str, os.PathLike)) else list(root)
    found: list[Path] = []
    for r in roots:
        r = Path(r)
        if r.is_file():
            found.append(r)
            continue
        if not r.is_dir():
            raise AngiogramReadError(r, "no such file or folder")
        walker = os.walk(r) if recursive else [(str(r), [], [p.name for p in r.iterdir() if p.is_file()])]
        for folder, dirs, files in walker:
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in files:
                p = Path(folder) / name
                if name.startswith(".") or p.suffix.lower() in IGNORED_SUFFIXES or p.stem.upper() in IGNORED_NAMES:
                    continue
                found.append(p)
    return sorted(found)


def count_frames(path) -> int:
    """Number of frames of one file, from its header only (pixel data is neither read nor decoded)."""
    if _dicom.is_image_path(path):
        return _dicom.image_pages(path)
    ds = _dicom.read_dataset(path, stop_before_pixels=True)
    return _dicom.check_header(path, ds).frames


def frame_means(path, decoding_plugin: str | None = None) -> np.ndarray:
    """Mean Modality-LUT value of every frame after MONOCHROME1/negative-slope inversion, (N,); NaN if constant.

    Raises AngiogramReadError for every unreadable or undecodable input.
    """
    with _dicom.read_errors(path):
        if _dicom.is_image_path(path):
            n = _dicom.image_pages(path)
            return np.array([_dicom.read_image_file(path, i if n > 1 else None)[0].mean() for i in range(n)])
        image = _dicom.open_dicom(path)
        sign = -1.0 if image.invert else 1.0
        means = np.empty(image.header.frames)
        for i, arr in enumerate(_dicom.decode_frames(path, image, range(image.header.frames), decoding_plugin)):
            if arr.ndim == 3:
                arr = arr.astype(np.float32) @ _dicom.LUMA
            means[i] = np.nan if arr.min() == arr.max() else sign * float(arr.mean())
        return means


def select_frames(path, frames: int, frame_policy) -> list:
    """Frame indices for one file under `frame_policy`; [None] for a single-frame file.

    "all": every frame. int k: frame k (negative counts from the end) of multi-frame files; a file with too few
    frames raises AngiogramReadError. "max_contrast": the frame with the lowest mean intensity after the Modality
    LUT and MONOCHROME1 inversion, i.e. the darkest frame = the most contrast agent in the vessels (decodes every
    frame of the file).
    """
    if frames <= 1:
        return [None]
    if frame_policy == "all":
        return list(range(frames))
    if frame_policy == "max_contrast":
        means = frame_means(path)
        if np.all(np.isnan(means)):
            raise AngiogramReadError(path, "constant image: every frame is constant")
        return [int(np.nanargmin(means))]
    if isinstance(frame_policy, (int, np.integer)) and not isinstance(frame_policy, bool):
        k = int(frame_policy) + (frames if frame_policy < 0 else 0)
        if not 0 <= k < frames:
            raise AngiogramReadError(path, f"frame {frame_policy} out of range: the file has {frames} frames")
        return [k]
    raise ValueError(f"frame_policy must be 'all', 'max_contrast' or an int, got {frame_policy!r}")


def list_angiogram_frames(
    root, frame_policy="all", recursive: bool = True, strict: bool = False
) -> list[dict]:
    """Data list of a folder of angiograms: [{"image": path, "frame": i or None}, ...] in sorted file order.

    "all" and int policies read headers only (stop_before_pixels), so a 96-frame cine gives 96 entries without
    decoding; "max_contrast" decodes every frame. Files whose header is unusable are skipped with one warning line
    each (strict=True raises AngiogramReadError instead). The pixel data itself is not verified here: use
    `transforms.dataset_check.build_datalist` for a full check with a manifest.
    """
    if frame_policy not in ("all", "max_contrast") and not isinstance(frame_policy, (int, np.integer)):
        raise ValueError(f"frame_policy must be 'all', 'max_contrast' or an int, got {frame_policy!r}")
    datalist = []
    for path in iter_candidate_files(root, recursive):
        try:
            frames = select_frames(path, count_frames(path), frame_policy)
        except AngiogramReadError as err:
            if strict:
                raise
            logger.warning("skipped %s: %s", err.path, err.reason)
            continue
        datalist.extend({"image": str(path), "frame": f} for f in frames)
    return datalist


__all__: Sequence[str] = [
    "LoadAngiogram",
    "LoadAngiogramd",
    "read_angiogram",
    "list_angiogram_frames",
    "iter_candidate_files",
    "count_frames",
    "select_frames",
    "frame_means",
]

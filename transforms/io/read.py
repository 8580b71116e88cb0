"""Reading one angiogram file into normalised frames: the read path that the MONAI transforms and readers call.

`read_angiogram` goes down the layers once each and returns: files (sniff, parse, header checks) -> decode ->
normalise. Rules, applied to each frame on its own:
    1. decode only the requested frame (all frames of a multi-frame file in one pass when all are asked for; on
       torch's threads when there are several); a single frame of 8-bit JPEG Baseline is read from its own bytes,
       the rest of the pixel data unread (`files.encoded_frame`);
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

import operator
from functools import partial

import numpy as np

from ..errors import AngiogramReadError, read_errors
from . import decode, files, memory, normalise
from .header import NO_SPACING


def read_angiogram(path, frame=None, decoding_plugin: str | None = None) -> tuple[np.ndarray, dict]:
    """Reads frame `frame` (or every frame when None) of one file.

    Returns:
        (array, meta): float32 array (N, W, H) in [0, 1], N = 1 when `frame` is given or the file has one frame, and
        the meta dict described in `transforms.io.LoadAngiogram`.
    Raises:
        AngiogramReadError for every unreadable, inconsistent, undecodable or constant input.
    """
    with read_errors(path):
        found = None if frame is None else _read_encoded_frame(path, frame, decoding_plugin)
        if found is not None:
            return found
        image = files.open_angiogram(path)
        if image is None:
            return _read_image(path, frame)
        frames = image.header.frames
        indices = range(frames) if frame is None else [_check_frame_index(path, frame, frames)]
        out = _output(image, len(indices))
        names = [i if frames > 1 else None for i in indices]
        fill = partial(normalise.normalise_into, path, image.invert, names, out)
        decode.each_frame(path, image, indices, decoding_plugin, fill)
        return out, _meta(path, image, -1 if frame is None and frames > 1 else indices[0])


def _output(image, n: int) -> np.ndarray:
    """The empty float32 output (n, Columns, Rows) for `n` frames of the DICOM `image` (`memory.empty_float32`)."""
    return memory.empty_float32((n, image.header.columns, image.header.rows))


def _meta(path, image, frame_index: int) -> dict:
    """The meta dict of the DICOM `image`, whose "frame_index" is `frame_index`."""
    return {"filename_or_obj": str(path), "frame_index": frame_index, **image.info}


def _read_encoded_frame(path, frame, plugin: str | None) -> tuple[np.ndarray, dict] | None:
    """`read_angiogram(path, frame)` from the bytes of that frame alone (`files.encoded_frame`, `decode.jpeg8_frame`):
    (1, W, H) and meta; None when that route does not apply or Pillow fails on the frame, so that the caller takes
    the general route, which gives the same values or the reason."""
    try:
        index = operator.index(frame)
    except TypeError:
        return None
    found = files.encoded_frame(path, index)
    arr = None if found is None else decode.jpeg8_frame(found[0], found[1], plugin)
    if arr is None:
        return None
    image = found[0]
    out = _output(image, 1)
    normalise.normalise(path, arr, image.invert, index if image.header.frames > 1 else None, out=out[0])
    return out, _meta(path, image, index)


def _check_frame_index(path, frame, frames: int) -> int:
    try:
        index = int(frame)
    except Exception:
        raise AngiogramReadError(path, f"invalid frame index {frame!r}") from None
    if not 0 <= index < frames:
        raise AngiogramReadError(path, f"frame {index} out of range: the file has {frames} frame(s)")
    return index


def _read_image(path, frame) -> tuple[np.ndarray, dict]:
    arr, info = decode.read_image_file(path, frame)
    image = normalise.normalise(path, arr, False, frame)[None]
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


def frame_means(path, decoding_plugin: str | None = None) -> np.ndarray:
    """Mean Modality-LUT value of every frame after MONOCHROME1/negative-slope inversion, (N,); NaN if constant.

    Raises AngiogramReadError for every unreadable or undecodable input.
    """
    with read_errors(path):
        if files.is_image_path(path):
            n = files.image_pages(path)
            return np.array([decode.read_image_file(path, i if n > 1 else None)[0].mean() for i in range(n)])
        image = files.open_dicom(path)
        arrays = decode.decode_frames(path, image, range(image.header.frames), decoding_plugin)
        return np.array([normalise.frame_mean(arr, image.invert) for arr in arrays], dtype=np.float64)

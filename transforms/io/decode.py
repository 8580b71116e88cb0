"""Decoding the frames of one checked file: native little-endian greyscale with numpy, 8-bit greyscale JPEG Baseline
straight with Pillow, everything else with pydicom and the fastest installed plugin for its syntax.

Layer 3 of the read path. Also reads PNG/JPEG/TIFF/BMP/GIF pages with Pillow. Values are returned as stored (or
through the Modality LUT Sequence), or handed frame by frame to the caller's function (`each_frame`), which the read
path uses to normalise each frame where it was decoded; normalisation is the next layer's job.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Callable, Sequence
from io import BytesIO

import numpy as np
import torch
from pydicom.encaps import get_frame
from pydicom.pixels import apply_modality_lut, get_decoder
from pydicom.pixels.utils import as_pixel_options
from pydicom.uid import UID, JPEGBaseline8Bit, JPEGLSLossless, JPEGLSNearLossless

from .._parallel import run_pieces
from ..errors import AngiogramReadError, first_line, quiet_pydicom
from .header import TAGS, DicomImage

# The plugin tried first per transfer syntax, from the table `benchmarks/dicom_loading.py` prints: pyjpegls is about
# 3x faster than pydicom's default for JPEG-LS with identical output; Pillow is about 4x faster for JPEG Baseline and
# differs from pylibjpeg by 1 in some pixels, but has always been the loader's choice. Other syntaxes: pydicom's order.
FASTEST_PLUGIN = {JPEGBaseline8Bit: "pillow", JPEGLSLossless: "pyjpegls", JPEGLSNearLossless: "pyjpegls"}
INSTALL_HINT = {
    "1.2.840.10008.1.2.4.51": "python-gdcm (pip install python-gdcm)",
    "1.2.840.10008.1.2.4.57": "pylibjpeg-libjpeg or python-gdcm",
    "1.2.840.10008.1.2.4.70": "pylibjpeg-libjpeg or python-gdcm",
    "1.2.840.10008.1.2.4.80": "pylibjpeg-libjpeg or python-gdcm",
    "1.2.840.10008.1.2.4.81": "pylibjpeg-libjpeg or python-gdcm",
    "1.2.840.10008.1.2.4.90": "pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.91": "pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.50": "pylibjpeg-libjpeg or pillow",
    "1.2.840.10008.1.2.5": "pylibjpeg-rle",
}
PIXEL_DATA = TAGS["PixelData"]


def decode_frames(path, image: DicomImage, indices: Sequence[int], plugin: str | None = None) -> list[np.ndarray]:
    """Decodes frames `indices` of a checked file; returns one array per frame, (Rows, Columns) or (Rows, Columns, 3).

    The frames `each_frame` gives, kept in a list.
    """
    arrays: list = [None] * len(indices)
    each_frame(path, image, indices, plugin, arrays.__setitem__)
    return arrays


def each_frame(path, image: DicomImage, indices: Sequence[int], plugin: str | None,
               fn: Callable[[int, np.ndarray], None]) -> None:
    """Decodes frames `indices` of a checked file and calls `fn(k, frame)` for the k-th of them, frame (Rows, Columns)
    or (Rows, Columns, 3), on torch's threads when there are several (`transforms._parallel.run_pieces`).

    Values are as stored, or the Modality LUT Sequence output when the file has one. `plugin=None` tries
    FASTEST_PLUGIN's entry for the transfer syntax first; "" means pydicom's plugin order. A frame that the first
    plugin fails on is decoded again with pydicom's order. Frames of 8-bit greyscale JPEG Baseline are opened with
    Pillow straight, as pydicom's Pillow plugin opens them, without pydicom's per-call set-up, and each is handed to
    `fn` in the piece that decoded it, while it is still in the core's cache (`_pillow_frames`); the frames Pillow
    fails on go through pydicom. Other data are decoded first (all frames of a multi-frame file in one pass), then
    handed to `fn` on the threads. A decoding error is raised before any error of `fn`; of `fn`'s errors, the one
    of the first frame is raised, as a serial loop would raise it.
    """
    errors: dict = {}

    def hand(k: int, arr: np.ndarray) -> None:
        try:
            fn(k, arr)
        except Exception as exc:
            errors[k] = exc

    rest: Sequence[int] = range(len(indices))
    if image.native is None and pillow_direct(image, plugin):
        rest = _pillow_frames(image, indices, hand)
    if rest:
        wanted = [indices[k] for k in rest]
        arrays = native_frames(image, wanted)
        if arrays is None:
            arrays = _pydicom_frames(path, image, wanted, plugin)
        if image.has_modality_lut:
            arrays = [apply_modality_lut(arr, image.ds) for arr in arrays]
        run_pieces(lambda j: hand(rest[j], arrays[j]), len(rest), torch.device("cpu"))
    if errors:
        raise errors[min(errors)]


def pillow_direct(image: DicomImage, plugin: str | None) -> bool:
    """Whether Pillow alone decodes the frames: `image.jpeg8`, with Pillow the plugin asked for (or chosen by
    FASTEST_PLUGIN) and installed."""
    tsyntax = image.header.tsyntax
    return (image.jpeg8 and (FASTEST_PLUGIN[tsyntax] if plugin is None else plugin) == "pillow"
            and "pillow" in get_decoder(tsyntax).available_plugins)


def jpeg8_array(src: bytes, rows: int, cols: int) -> np.ndarray | None:
    """One encoded frame of a `pillow_direct` file opened with Pillow as pydicom's Pillow plugin opens it:
    (rows, cols) uint8, or None when Pillow cannot decode it or decodes it to another mode or size.

    Pillow decodes straight into the returned array: the image is given memory that maps it before it loads
    (`Image.frombuffer`), which `ImageFile.load` keeps since its mode and size are the frame's; this saves copying
    the frame out of Pillow (`np.asarray(img)`: 6% of decoding a 512 x 512 frame that is used and dropped, as the read
    path does, 30% when all frames of a cine are kept). Should a Pillow version replace that memory, the frame is
    copied out as before.
    """
    from PIL import Image

    try:
        with Image.open(BytesIO(src), formats=("JPEG",)) as img:
            if img.mode == "L" and img.size == (cols, rows):
                out = np.empty((rows, cols), np.uint8)
                memory = Image.frombuffer("L", (cols, rows), out, "raw", "L", 0, 1).im
                img.im = memory
                img.load()
                return out if img.im is memory else np.asarray(img)
    except Exception:
        pass
    return None


def jpeg8_frame(image: DicomImage, src: bytes, plugin: str | None) -> np.ndarray | None:
    """The encoded frame `src` of a `pillow_direct` file decoded by `jpeg8_array` (warnings silenced); None when the
    file is not `pillow_direct` or Pillow fails on the frame."""
    if not pillow_direct(image, plugin):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return jpeg8_array(src, image.header.rows, image.header.columns)


def _pillow_frames(image: DicomImage, indices: Sequence[int], hand: Callable[[int, np.ndarray], None]) -> list[int]:
    """Frames `indices` of a `pillow_direct` file decoded by `jpeg8_array` on torch's threads, one frame per piece
    (Pillow's decoder releases the GIL), each handed to `hand(k, frame)` in its piece; returns the positions k of
    the frames Pillow could not decode, in order."""
    rows, cols, *_, frames, _ = image.header
    failed: list = []

    def piece(k: int) -> None:
        try:
            arr = jpeg8_array(get_frame(image.pixels, indices[k], number_of_frames=frames), rows, cols)
        except Exception:
            arr = None
        if arr is None:
            failed.append(k)
        else:
            hand(k, arr)

    with warnings.catch_warnings(), quiet_pydicom():
        warnings.simplefilter("ignore")
        run_pieces(piece, len(indices), torch.device("cpu"))
    return sorted(failed)


def native_frames(image: DicomImage, indices: Sequence[int]) -> list[np.ndarray] | None:
    """Frames `indices` of little-endian native greyscale pixel data as (Rows, Columns) arrays.

    The same values as pydicom's native decoder (unused high bits cleared, or sign-extended when signed), without its
    per-call option parsing; views of the stored bytes when BitsStored = BitsAllocated. None when the data are not of
    that kind (`image.native` is None: big endian, 1-bit, colour, odd header values), so that pydicom decodes them.
    """
    if image.native is None:
        return None
    (dtype, shift), (rows, cols, *_) = image.native, image.header
    data, pixels = image.pixels, rows * cols
    arrays = [np.frombuffer(data, dtype, count=pixels, offset=i * pixels * dtype.itemsize).reshape(rows, cols)
              for i in indices]
    return [(arr << shift) >> shift for arr in arrays] if shift else arrays


def _decoder(path, tsyntax: UID, plugin: str | None):
    try:
        decoder = get_decoder(tsyntax)
    except NotImplementedError:
        reason = f"unsupported transfer syntax {tsyntax.name} ({tsyntax}): pydicom has no decoder for it"
        raise AngiogramReadError(path, reason) from None
    if not decoder.is_available:
        hint = INSTALL_HINT.get(str(tsyntax), ", ".join(decoder.missing_dependencies) or "a decoder plugin")
        reason = f"cannot decode {tsyntax.name} ({tsyntax}): no decoder plugin installed; install {hint}"
        raise AngiogramReadError(path, reason)
    first = FASTEST_PLUGIN.get(tsyntax, "") if plugin is None else plugin
    return decoder, (first if first in decoder.available_plugins else "")


def _pydicom_frames(path, image: DicomImage, indices: Sequence[int], plugin: str | None) -> list[np.ndarray]:
    """decode_frames' stored values through pydicom's decoder and plugins, with the decoded shapes checked."""
    ds, (rows, cols, *_, frames, tsyntax) = image.ds, image.header
    decoder, first = _decoder(path, tsyntax, plugin)
    index = None
    with warnings.catch_warnings(), quiet_pydicom():
        warnings.simplefilter("ignore")
        try:
            pixels = ds[PIXEL_DATA]
            data = pixels.value
            options = dict(as_pixel_options(ds), pixel_keyword="PixelData", pixel_vr=pixels.VR)
            arrays = None
            if frames > 1 and len(indices) == frames and list(indices) == list(range(frames)):
                try:
                    arrays = list(decoder.as_array(data, decoding_plugin=first, **options)[0])
                except Exception:
                    pass
            if arrays is None:
                arrays = []
                for index in indices:
                    try:
                        arrays.append(decoder.as_array(data, index=index, decoding_plugin=first, **options)[0])
                    except Exception:
                        if not first:
                            raise
                        arrays.append(decoder.as_array(data, index=index, **options)[0])
        except Exception as exc:
            failed = indices[0] if index is None else index
            raise AngiogramReadError(path, _decode_reason(tsyntax, decoder, failed, exc)) from None
    for i, arr in zip(indices, arrays):
        if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] == 3)):
            raise AngiogramReadError(path, f"decoded frame {i} has unexpected shape {tuple(arr.shape)}")
        if arr.shape[:2] != (rows, cols):
            raise AngiogramReadError(path, f"decoded frame {i} is {arr.shape[:2]}, header says {rows} x {cols}")
    return arrays


_MODULE_OF = {"pylibjpeg-libjpeg": "libjpeg", "pylibjpeg-openjpeg": "openjpeg", "pylibjpeg-rle": "rle",
              "python-gdcm": "gdcm", "pillow": "PIL"}


def _missing_packages(hint: str) -> str:
    """The packages of an INSTALL_HINT entry ("a or b") that are not installed, joined by " or "; "" if none."""
    names = [part.split(" (")[0].strip() for part in hint.split(" or ") if part.strip()]
    return " or ".join(n for n in names if importlib.util.find_spec(_MODULE_OF.get(n, n)) is None)


def _decode_reason(tsyntax: UID, decoder, index: int, exc: Exception) -> str:
    detail = first_line(exc)
    if isinstance(exc, RuntimeError) and "all available plugins" in str(exc):
        lines = [ln.strip() for ln in str(exc).splitlines()[1:] if ln.strip()]
        detail = "; ".join(lines)[:400]
        hint = _missing_packages(INSTALL_HINT.get(str(tsyntax), ""))
        missing = ", ".join(decoder.missing_dependencies)
        if str(tsyntax) in INSTALL_HINT:
            extra = (f"; installing {hint} may help" if hint else
                     "; every decoder for it is installed, so the stream is most likely corrupt")
        else:
            extra = f"; missing plugins: {missing}" if missing else ""
        return (f"cannot decode frame {index} of {tsyntax.name} ({tsyntax}) pixel data with the installed plugins "
                f"({', '.join(decoder.available_plugins)}): {detail}{extra}")
    return f"cannot decode frame {index} of {tsyntax.name} pixel data ({detail[:400]})"


def read_image_file(path, frame) -> tuple[np.ndarray, dict]:
    """Reads a PNG/JPEG/TIFF/BMP/GIF page as (H, W) luminance; returns (array, info)."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            pages = int(getattr(img, "n_frames", 1))
            if frame is not None:
                if not 0 <= int(frame) < pages:
                    raise AngiogramReadError(path, f"frame {frame} out of range: the image has {pages} pages")
                img.seek(int(frame))
            mode = img.mode
            if mode not in ("L", "I", "I;16", "I;16B", "I;16L", "F", "1"):
                img = img.convert("L")
            arr = np.asarray(img)
    except AngiogramReadError:
        raise
    except Exception as exc:
        raise AngiogramReadError(path, f"not a readable image file ({first_line(exc)})") from None
    if arr.ndim != 2:
        raise AngiogramReadError(path, f"image has unexpected shape {tuple(arr.shape)}")
    return arr, {"num_frames": pages, "photometric_interpretation": mode}

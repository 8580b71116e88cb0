"""Reading, validating and decoding one angiogram file (DICOM or PNG/JPEG/TIFF) into numpy frames.

Every failure is raised as `AngiogramReadError(path, reason)`; see docs/bad_input.md for the reasons.
"""

from __future__ import annotations

import logging
from io import BytesIO
import warnings
from contextlib import contextmanager
from math import ceil
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.encaps import parse_basic_offsets, parse_fragments
from pydicom.pixels import get_decoder, pixel_array
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGBaseline8Bit

from .errors import AngiogramReadError

PYDICOM_LOGGERS = (logging.getLogger("pydicom"), logging.getLogger("pydicom.pixels.decoders.base"))


@contextmanager
def quiet_pydicom():
    """Silences pydicom's logger (its plugin tracebacks and warnings) while our own reasons are built."""
    was = [log.disabled for log in PYDICOM_LOGGERS]
    for log in PYDICOM_LOGGERS:
        log.disabled = True
    try:
        yield
    finally:
        for log, state in zip(PYDICOM_LOGGERS, was):
            log.disabled = state

IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*", b"BM", b"GIF8")
GREY = ("MONOCHROME1", "MONOCHROME2")
COLOUR = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_RCT", "YBR_ICT")
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
MAX_FRAME_BYTES = 1 << 30
PREFERRED_PLUGIN = {JPEGBaseline8Bit: "pillow"}
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


def is_image_file(head: bytes) -> bool:
    """True when the first bytes of a file are a PNG, JPEG, TIFF, BMP or GIF signature."""
    return head.startswith(IMAGE_MAGIC)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip()


def read_dataset(path, stop_before_pixels: bool = False) -> Dataset:
    """Parses a DICOM file (with or without the 128-byte preamble and file meta) into a pydicom Dataset.

    Raises AngiogramReadError when the bytes are not a DICOM image header: unreadable, empty (pydicom 3 returns an
    empty dataset with only a warning for some truncated files), or lacking Rows/Columns.
    """
    with warnings.catch_warnings(record=True) as caught, quiet_pydicom():
        warnings.simplefilter("always")
        try:
            ds = pydicom.dcmread(path, force=True, stop_before_pixels=stop_before_pixels)
        except Exception as exc:
            raise AngiogramReadError(path, f"not a readable DICOM file ({_first_line(exc)})") from None
    if len(ds) == 0:
        detail = f" (pydicom: {str(caught[0].message).splitlines()[0]})" if caught else ""
        raise AngiogramReadError(path, f"truncated or not a DICOM file: no data elements could be read{detail}")
    try:
        rows, cols = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
    except Exception:
        rows = cols = 0
    if rows <= 0 or cols <= 0:
        if "SOPClassUID" in ds or ds.file_meta.get("MediaStorageSOPClassUID"):
            raise AngiogramReadError(path, "not a DICOM image: no valid Rows/Columns")
        raise AngiogramReadError(path, "not a DICOM file or a supported image (no DICOM header, no PNG/JPEG/TIFF signature)")
    _set_transfer_syntax(path, ds)
    return ds


def _set_transfer_syntax(path, ds: Dataset) -> None:
    meta = ds.file_meta
    if meta.get("TransferSyntaxUID"):
        return
    implicit, little = ds.original_encoding
    if implicit is None:
        implicit, little = True, True
    meta.TransferSyntaxUID = (
        ImplicitVRLittleEndian if implicit and little else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
    )


def number_of_frames(path, ds: Dataset) -> int:
    """Declared NumberOfFrames (1 when absent); AngiogramReadError when it is not a positive integer."""
    value = ds.get("NumberOfFrames")
    if value in (None, ""):
        return 1
    try:
        frames = int(value)
    except Exception:
        raise AngiogramReadError(path, f"invalid NumberOfFrames {str(value)[:32]!r}") from None
    if frames < 1:
        raise AngiogramReadError(path, f"invalid NumberOfFrames {frames}")
    return frames


def check_header(path, ds: Dataset) -> int:
    """Checks the image-pixel header fields that need no pixel data; returns the number of frames."""
    pi = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    if pi not in GREY + COLOUR:
        raise AngiogramReadError(
            path, f"unsupported photometric interpretation {pi or 'missing'!r} (supported: {', '.join(GREY + COLOUR)})"
        )
    try:
        bits = int(ds.BitsAllocated)
        spp = int(ds.get("SamplesPerPixel", 1))
    except Exception:
        raise AngiogramReadError(path, "missing or invalid BitsAllocated/SamplesPerPixel") from None
    if bits not in (1, 8, 16, 32, 64) or spp not in (1, 3):
        raise AngiogramReadError(path, f"unsupported BitsAllocated {bits} / SamplesPerPixel {spp}")
    return number_of_frames(path, ds)


def check_pixel_data(path, ds: Dataset) -> int:
    """Checks that PixelData exists and holds the declared frames; returns the number of frames.

    Native data must hold Rows*Columns*SamplesPerPixel*BitsAllocated/8 bytes per declared frame (no less, and not a
    whole extra frame more); encapsulated data must hold one Basic Offset Table entry, or at least one fragment, per
    declared frame.
    """
    frames = check_header(path, ds)
    if "PixelData" not in ds:
        raise AngiogramReadError(path, "no pixel data: the (7FE0,0010) Pixel Data element is missing")
    rows, cols, spp, bits = int(ds.Rows), int(ds.Columns), int(ds.get("SamplesPerPixel", 1)), int(ds.BitsAllocated)
    tsyntax = UID(ds.file_meta.TransferSyntaxUID)
    subsampled = not tsyntax.is_encapsulated and str(ds.PhotometricInterpretation).strip() == "YBR_FULL_422"
    frame_bytes = ceil(rows * cols * (2 if subsampled else spp) * bits / 8)
    if frame_bytes > MAX_FRAME_BYTES:
        raise AngiogramReadError(path, f"frame of {rows} x {cols} x {spp} x {bits} bits is too large to decode")
    data = ds.PixelData
    if not isinstance(data, (bytes, bytearray)) or len(data) == 0:
        raise AngiogramReadError(path, "no pixel data: the Pixel Data element is empty")
    if not tsyntax.is_encapsulated:
        expected = frame_bytes * frames
        held = len(data) // frame_bytes
        if len(data) < expected:
            if frames > 1 and held >= 1:
                raise AngiogramReadError(
                    path, f"NumberOfFrames is {frames} but the pixel data holds only {held} whole frames "
                    f"({len(data)} of {expected} bytes)")
            raise AngiogramReadError(
                path, f"pixel data shorter than declared: {len(data)} bytes, expected {expected} "
                f"(Rows {rows} x Columns {cols} x SamplesPerPixel {spp} x frames {frames} x BitsAllocated {bits} / 8)")
        if held > frames:
            raise AngiogramReadError(
                path, f"NumberOfFrames is {frames} but the pixel data holds {held} frames ({len(data)} bytes)")
        return frames
    try:
        buf = BytesIO(data)
        offsets = parse_basic_offsets(buf)
        fragments = parse_fragments(buf)[0]
    except Exception as exc:
        raise AngiogramReadError(path, f"malformed encapsulated pixel data ({_first_line(exc)})") from None
    if "ExtendedOffsetTable" in ds:
        offsets = ds.ExtendedOffsetTable
        counted, source = len(offsets) // 8, "Extended Offset Table entries"
    elif offsets:
        counted, source = len(offsets), "Basic Offset Table entries"
    else:
        counted, source = fragments, "fragments"
    if fragments < 1:
        raise AngiogramReadError(path, "no pixel data: the encapsulated pixel data holds no fragments")
    if (source == "fragments" and counted < frames) or (source != "fragments" and counted != frames):
        raise AngiogramReadError(path, f"NumberOfFrames is {frames} but the encapsulated pixel data holds {counted} {source}")
    return frames


def decode_frame(path, ds: Dataset, index: int, plugin: str | None = None) -> np.ndarray:
    """Decodes frame `index` of `ds` only; returns the stored values (Rows, Columns) or (Rows, Columns, 3).

    `plugin=None` prefers Pillow for JPEG Baseline (about 4x faster than pylibjpeg on 8-bit frames) and falls back
    to pydicom's plugin order; "" means pydicom's order only.
    """
    tsyntax = UID(ds.file_meta.TransferSyntaxUID)
    try:
        decoder = get_decoder(tsyntax)
    except NotImplementedError:
        raise AngiogramReadError(path, f"unsupported transfer syntax {tsyntax.name} ({tsyntax}): pydicom has no decoder for it") from None
    if not decoder.is_available:
        hint = INSTALL_HINT.get(str(tsyntax), ", ".join(decoder.missing_dependencies) or "a decoder plugin")
        raise AngiogramReadError(path, f"cannot decode {tsyntax.name} ({tsyntax}): no decoder plugin installed; install {hint}")
    first = PREFERRED_PLUGIN.get(tsyntax, "") if plugin is None else plugin
    if first and first not in decoder.available_plugins:
        first = ""
    with warnings.catch_warnings(), quiet_pydicom():
        warnings.simplefilter("ignore")
        try:
            try:
                arr = pixel_array(ds, index=index, decoding_plugin=first)
            except Exception:
                if not first:
                    raise
                arr = pixel_array(ds, index=index)
        except Exception as exc:
            raise AngiogramReadError(path, _decode_reason(tsyntax, decoder, index, exc)) from None
    if arr.ndim == 3 and arr.shape[-1] == 3:
        return arr
    if arr.ndim != 2:
        raise AngiogramReadError(path, f"decoded frame {index} has unexpected shape {tuple(arr.shape)}")
    return arr


def _decode_reason(tsyntax: UID, decoder, index: int, exc: Exception) -> str:
    detail = _first_line(exc)
    if isinstance(exc, RuntimeError) and "all available plugins" in str(exc):
        lines = [ln.strip() for ln in str(exc).splitlines()[1:] if ln.strip()]
        detail = "; ".join(lines)[:400]
        hint = INSTALL_HINT.get(str(tsyntax))
        missing = ", ".join(decoder.missing_dependencies)
        extra = f"; install {hint}" if hint else (f"; missing plugins: {missing}" if missing else "")
        return (f"cannot decode frame {index} of {tsyntax.name} ({tsyntax}) pixel data with the installed plugins "
                f"({', '.join(decoder.available_plugins)}): {detail}{extra}")
    return f"cannot decode frame {index} of {tsyntax.name} pixel data ({detail[:400]})"


def normalise(path, arr: np.ndarray, invert: bool, index) -> np.ndarray:
    """Min-max scales one frame to [0, 1] float32, flipped when `invert`; (R, C[, 3]) -> (R, C).

    Colour frames become luminance (ITU-R 601: 0.299 R + 0.587 G + 0.114 B) first. A constant frame is rejected.
    """
    if arr.ndim == 3:
        arr = arr.astype(np.float32) @ LUMA
    mn, mx = arr.min(), arr.max()
    if not mx > mn:
        where = "" if index is None else f" (frame {index})"
        raise AngiogramReadError(path, f"constant image{where}: every pixel is {mn}")
    out = arr.astype(np.float32)
    if invert:
        np.subtract(np.float32(mx), out, out=out)
    else:
        out -= np.float32(mn)
    out /= np.float32(float(mx) - float(mn))
    return out


def lut_inverts(ds: Dataset) -> bool:
    """Whether the Modality LUT followed by display mapping reverses the stored values.

    Min-max normalisation makes a linear Modality LUT (RescaleSlope/Intercept) a no-op except for its sign, so the
    slope's sign and MONOCHROME1 are combined into one flip. A non-linear Modality LUT Sequence is applied in full by
    `modality_lut`.
    """
    try:
        slope = float(ds.get("RescaleSlope", 1) or 1)
    except Exception:
        slope = 1.0
    m1 = str(ds.get("PhotometricInterpretation", "")).strip().upper() == "MONOCHROME1"
    return (slope < 0) != m1


def modality_lut(ds: Dataset, arr: np.ndarray) -> np.ndarray:
    """Applies a Modality LUT Sequence when present (values -> LUT output); otherwise returns `arr` unchanged."""
    if "ModalityLUTSequence" not in ds:
        return arr
    from pydicom.pixels import apply_modality_lut

    return apply_modality_lut(arr, ds)


def pixel_spacing(ds: Dataset):
    """(row, column) spacing in mm from ImagerPixelSpacing, else PixelSpacing, else None."""
    for key in ("ImagerPixelSpacing", "PixelSpacing"):
        value = ds.get(key)
        if value is None:
            continue
        try:
            row, col = float(value[0]), float(value[1])
        except Exception:
            continue
        if row > 0 and col > 0 and np.isfinite(row) and np.isfinite(col):
            return (row, col)
    return None


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
        raise AngiogramReadError(path, f"not a readable image file ({_first_line(exc)})") from None
    if arr.ndim != 2:
        raise AngiogramReadError(path, f"image has unexpected shape {tuple(arr.shape)}")
    return arr, {"num_frames": pages, "photometric_interpretation": mode}


def image_pages(path) -> int:
    """Number of pages of a PNG/JPEG/TIFF (header only)."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return int(getattr(img, "n_frames", 1))
    except Exception as exc:
        raise AngiogramReadError(path, f"not a readable image file ({_first_line(exc)})") from None


def file_head(path, size: int = 132) -> bytes:
    """The first `size` bytes of a file; AngiogramReadError if it cannot be opened."""
    try:
        with open(path, "rb") as f:
            return f.read(size)
    except Exception as exc:
        raise AngiogramReadError(path, f"cannot open file ({_first_line(exc)})") from None


def is_image_path(path) -> bool:
    """True for files that are sniffed as PNG/JPEG/TIFF/BMP/GIF rather than DICOM."""
    head = file_head(path)
    return head[128:132] != b"DICM" and is_image_file(head)

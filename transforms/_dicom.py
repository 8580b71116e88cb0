"""Reading, validating and decoding one angiogram file (DICOM or PNG/JPEG/TIFF) into numpy frames.

Every failure is raised as `AngiogramReadError(path, reason)`; see docs/bad_input.md for the reasons.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
import time
import warnings
from collections import OrderedDict
from contextlib import contextmanager
from io import BytesIO
from math import ceil
from typing import NamedTuple, Sequence

import numpy as np
import pydicom
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.encaps import parse_basic_offsets, parse_fragments
from pydicom.pixels import apply_modality_lut, get_decoder
from pydicom.pixels.utils import as_pixel_options
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
WHOLE_FILE_BYTES = 32 << 20
NO_SPACING = (float("nan"), float("nan"))
PREFERRED_PLUGIN = {JPEGBaseline8Bit: "pillow"}
TAGS = {
    keyword: tag_for_keyword(keyword)
    for keyword in (
        "MediaStorageSOPClassUID", "TransferSyntaxUID", "SOPClassUID", "SamplesPerPixel", "PhotometricInterpretation",
        "NumberOfFrames", "Rows", "Columns", "ImagerPixelSpacing", "PixelSpacing", "BitsAllocated", "RescaleSlope",
        "ModalityLUTSequence", "ExtendedOffsetTable", "PixelData", "PixelRepresentation",
        "BitsStored",
    )
}
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


def element_value(ds: Dataset, keyword: str, default=None):
    """`ds.get(keyword, default)` for a keyword of TAGS, looked up by tag (about 4 us less a call).

    A single explicit-VR US value still in its raw bytes is read from them (about 5 us less); any other element is
    converted by pydicom on first access, as for attribute access.
    """
    tag = TAGS[keyword]
    elem = ds.get_item(tag)
    if elem is None:
        return default
    if elem.VR == "US" and isinstance(elem, RawDataElement) and elem.length == 2:
        return int.from_bytes(elem.value, "little" if elem.is_little_endian else "big")
    return ds[tag].value


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip()


@contextmanager
def read_errors(path):
    """Lets AngiogramReadError through and turns any other exception raised inside into one naming ``path``."""
    try:
        yield
    except AngiogramReadError:
        raise
    except Exception as exc:
        raise AngiogramReadError(path, f"unreadable input ({_first_line(exc)[:300]})") from None


def read_dataset(path, stop_before_pixels: bool = False) -> Dataset:
    """Parses a DICOM file (with or without the 128-byte preamble and file meta) into a pydicom Dataset.

    A file of at most WHOLE_FILE_BYTES is read in one call and parsed from memory (pydicom's many small reads are
    then memory copies, not buffered file reads).

    Raises AngiogramReadError when the bytes are not a DICOM image header: unreadable, empty (pydicom 3 returns an
    empty dataset with only a warning for some truncated files), or lacking Rows/Columns.
    """
    with warnings.catch_warnings(record=True) as caught, quiet_pydicom():
        warnings.simplefilter("always")
        try:
            with open(path, "rb") as f:
                source = f
                if not stop_before_pixels and os.fstat(f.fileno()).st_size <= WHOLE_FILE_BYTES:
                    source = BytesIO(f.read())
                    source.name = f.name
                ds = pydicom.dcmread(source, force=True, stop_before_pixels=stop_before_pixels)
        except Exception as exc:
            raise AngiogramReadError(path, f"not a readable DICOM file ({_first_line(exc)})") from None
    if len(ds) == 0:
        detail = f" (pydicom: {str(caught[0].message).splitlines()[0]})" if caught else ""
        raise AngiogramReadError(path, f"truncated or not a DICOM file: no data elements could be read{detail}")
    try:
        rows, cols = int(element_value(ds, "Rows") or 0), int(element_value(ds, "Columns") or 0)
    except Exception:
        rows = cols = 0
    if rows <= 0 or cols <= 0:
        if TAGS["SOPClassUID"] in ds or element_value(ds.file_meta, "MediaStorageSOPClassUID"):
            raise AngiogramReadError(path, "not a DICOM image: no valid Rows/Columns")
        raise AngiogramReadError(path, "not a DICOM file or a supported image (no DICOM header, no PNG/JPEG/TIFF signature)")
    _set_transfer_syntax(path, ds)
    return ds


def _set_transfer_syntax(path, ds: Dataset) -> None:
    meta = ds.file_meta
    if element_value(meta, "TransferSyntaxUID"):
        return
    implicit, little = ds.original_encoding
    if implicit is None:
        implicit, little = True, True
    meta.TransferSyntaxUID = (
        ImplicitVRLittleEndian if implicit and little else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
    )


def number_of_frames(path, ds: Dataset) -> int:
    """Declared NumberOfFrames (1 when absent); AngiogramReadError when it is not a positive integer."""
    value = element_value(ds, "NumberOfFrames")
    if value in (None, ""):
        return 1
    try:
        frames = int(value)
    except Exception:
        raise AngiogramReadError(path, f"invalid NumberOfFrames {str(value)[:32]!r}") from None
    if frames < 1:
        raise AngiogramReadError(path, f"invalid NumberOfFrames {frames}")
    return frames


class Header(NamedTuple):
    """The image-pixel header values the checks and the decoder need, each read once from the dataset."""

    rows: int
    columns: int
    samples: int
    bits: int
    photometric: str  # as stored, stripped
    frames: int
    tsyntax: UID


def check_header(path, ds: Dataset) -> Header:
    """Checks the image-pixel header fields that need no pixel data; returns their values."""
    stored = str(element_value(ds, "PhotometricInterpretation", "")).strip()
    pi = stored.upper()
    if pi not in GREY + COLOUR:
        raise AngiogramReadError(
            path, f"unsupported photometric interpretation {pi or 'missing'!r} (supported: {', '.join(GREY + COLOUR)})"
        )
    try:
        bits = int(element_value(ds, "BitsAllocated"))
        spp = int(element_value(ds, "SamplesPerPixel", 1))
    except Exception:
        raise AngiogramReadError(path, "missing or invalid BitsAllocated/SamplesPerPixel") from None
    if bits not in (1, 8, 16, 32, 64) or spp not in (1, 3):
        raise AngiogramReadError(path, f"unsupported BitsAllocated {bits} / SamplesPerPixel {spp}")
    tsyntax = UID(element_value(ds.file_meta, "TransferSyntaxUID"))
    if not tsyntax.is_transfer_syntax:
        raise AngiogramReadError(path, f"unsupported transfer syntax {tsyntax}: not a transfer syntax UID")
    rows, columns = int(element_value(ds, "Rows")), int(element_value(ds, "Columns"))
    return Header(rows, columns, spp, bits, stored, number_of_frames(path, ds), tsyntax)


def check_pixel_data(path, ds: Dataset, header: Header) -> None:
    """Checks that PixelData exists and holds the declared frames.

    Native data must hold Rows*Columns*SamplesPerPixel*BitsAllocated/8 bytes per declared frame (no less, and not a
    whole extra frame more); encapsulated data must hold one Basic Offset Table entry, or at least one fragment, per
    declared frame.
    """
    if TAGS["PixelData"] not in ds:
        raise AngiogramReadError(path, "no pixel data: the (7FE0,0010) Pixel Data element is missing")
    rows, cols, spp, bits, pi, frames, tsyntax = header
    subsampled = not tsyntax.is_encapsulated and pi == "YBR_FULL_422"
    frame_bytes = ceil(rows * cols * (2 if subsampled else spp) * bits / 8)
    if frame_bytes > MAX_FRAME_BYTES:
        raise AngiogramReadError(path, f"frame of {rows} x {cols} x {spp} x {bits} bits is too large to decode")
    data = element_value(ds, "PixelData")
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
        return
    try:
        buf = BytesIO(data)
        offsets = parse_basic_offsets(buf)
        fragments = parse_fragments(buf)[0]
    except Exception as exc:
        raise AngiogramReadError(path, f"malformed encapsulated pixel data ({_first_line(exc)})") from None
    if TAGS["ExtendedOffsetTable"] in ds:
        offsets = element_value(ds, "ExtendedOffsetTable")
        counted, source = len(offsets) // 8, "Extended Offset Table entries"
    elif offsets:
        counted, source = len(offsets), "Basic Offset Table entries"
    else:
        counted, source = fragments, "fragments"
    if fragments < 1:
        raise AngiogramReadError(path, "no pixel data: the encapsulated pixel data holds no fragments")
    if (source == "fragments" and counted < frames) or (source != "fragments" and counted != frames):
        raise AngiogramReadError(path, f"NumberOfFrames is {frames} but the encapsulated pixel data holds {counted} {source}")


class DicomImage(NamedTuple):
    """A parsed DICOM file whose header and pixel data passed the checks, with the values read once from it."""

    ds: Dataset
    header: Header
    invert: bool
    has_modality_lut: bool
    info: dict


def describe(ds: Dataset, header: Header) -> dict:
    """The header part of the loader's meta: pixel_spacing ((nan, nan) when unknown), UIDs, modality, rows, ..."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "num_frames": header.frames,
            "pixel_spacing": pixel_spacing(ds) or NO_SPACING,
            "sop_instance_uid": ascii_value(ds, 0x00080018),
            "series_instance_uid": ascii_value(ds, 0x0020000E),
            "study_instance_uid": ascii_value(ds, 0x0020000D),
            "sop_class_uid": ascii_value(ds, 0x00080016),
            "modality": ascii_value(ds, 0x00080060),
            "photometric_interpretation": ascii_value(ds, 0x00280004),
            "rows": header.rows,
            "columns": header.columns,
        }


def ascii_value(ds: Dataset, tag: int) -> str:
    """A UI or CS value as text ("" when absent), read from the raw bytes when pydicom has not converted it yet.

    Both VRs are plain ASCII, so this skips pydicom's per-value conversion and validation (about 30 us a UID).
    """
    elem = ds.get_item(tag)
    value = None if elem is None else elem.value
    if isinstance(value, (bytes, bytearray)):
        return value.decode("ascii", "replace").strip("\0 ")
    return "" if value is None else str(value)


def _load_checked(path) -> DicomImage:
    ds = read_dataset(path)
    header = check_header(path, ds)
    check_pixel_data(path, ds, header)
    invert = lut_inverts(ds, header.photometric)
    return DicomImage(ds, header, invert, TAGS["ModalityLUTSequence"] in ds, describe(ds, header))


CACHE_FILES = 4
CACHE_BYTES = 256 << 20
CACHE_MIN_AGE_S = 2.0
_cache: OrderedDict = OrderedDict()
_cache_lock = threading.Lock()


def open_dicom(path) -> DicomImage:
    """Reads and checks one DICOM file (read_dataset + check_header + check_pixel_data).

    Multi-frame files are kept in a small per-process LRU (CACHE_FILES files, CACHE_BYTES in all) keyed by path,
    inode, size and mtime, so that loading a cine frame by frame parses and checks it once. A file modified less than
    CACHE_MIN_AGE_S ago is not cached (file times are coarse: a rewrite within one tick could keep its mtime).
    DataLoader workers each hold their own cache.
    """
    try:
        st = os.stat(path)
    except Exception as exc:
        raise AngiogramReadError(path, f"cannot open file ({_first_line(exc)})") from None
    key = (os.fspath(path), st.st_ino, st.st_size, st.st_mtime_ns)
    with _cache_lock:
        image = _cache.get(key)
        if image is not None:
            _cache.move_to_end(key)
            return image
    image = _load_checked(path)
    if image.header.frames > 1 and time.time() - st.st_mtime > CACHE_MIN_AGE_S:
        with _cache_lock:
            _cache[key] = image
            while len(_cache) > CACHE_FILES or sum(k[2] for k in _cache) > CACHE_BYTES:
                _cache.popitem(last=False)
    return image


def clear_cache() -> None:
    """Empties open_dicom's cache of parsed multi-frame files."""
    with _cache_lock:
        _cache.clear()


def _decoder(path, tsyntax: UID, plugin: str | None):
    try:
        decoder = get_decoder(tsyntax)
    except NotImplementedError:
        raise AngiogramReadError(path, f"unsupported transfer syntax {tsyntax.name} ({tsyntax}): pydicom has no decoder for it") from None
    if not decoder.is_available:
        hint = INSTALL_HINT.get(str(tsyntax), ", ".join(decoder.missing_dependencies) or "a decoder plugin")
        raise AngiogramReadError(path, f"cannot decode {tsyntax.name} ({tsyntax}): no decoder plugin installed; install {hint}")
    first = PREFERRED_PLUGIN.get(tsyntax, "") if plugin is None else plugin
    return decoder, (first if first in decoder.available_plugins else "")


def native_frames(image: DicomImage, indices: Sequence[int]) -> list[np.ndarray] | None:
    """Frames `indices` of little-endian native greyscale pixel data as (Rows, Columns) arrays.

    The same values as pydicom's native decoder (unused high bits cleared, or sign-extended when signed), without its
    per-call option parsing; views of the stored bytes when BitsStored = BitsAllocated. None when the data are not of
    that kind (big endian, 1-bit, colour, odd header values), so that pydicom decodes them.
    """
    ds, (rows, cols, spp, bits, _, _, tsyntax) = image.ds, image.header
    if tsyntax.is_encapsulated or not tsyntax.is_little_endian or spp != 1 or bits not in (8, 16, 32, 64):
        return None
    try:
        signed = int(element_value(ds, "PixelRepresentation"))
        stored = int(element_value(ds, "BitsStored"))
    except Exception:
        return None
    if signed not in (0, 1) or not 0 < stored <= bits:
        return None
    dtype = np.dtype(f"<{'i' if signed else 'u'}{bits // 8}")
    data, pixels, shift = element_value(ds, "PixelData"), rows * cols, bits - stored
    arrays = [np.frombuffer(data, dtype, count=pixels, offset=i * pixels * dtype.itemsize).reshape(rows, cols)
              for i in indices]
    return [(arr << shift) >> shift for arr in arrays] if shift else arrays


def decode_frames(path, image: DicomImage, indices: Sequence[int], plugin: str | None = None) -> list[np.ndarray]:
    """Decodes frames `indices` of a checked file; returns one array per frame, (Rows, Columns) or (Rows, Columns, 3).

    Values are as stored, or the Modality LUT Sequence output when the file has one. All frames of a multi-frame
    file are decoded in one pass; a single index decodes only that frame. `plugin=None` prefers Pillow for JPEG
    Baseline (about 4x faster than pylibjpeg on 8-bit frames); "" means pydicom's plugin order. A frame that the
    preferred plugin fails on is decoded again with pydicom's order.
    """
    arrays = native_frames(image, indices)
    if arrays is None:
        arrays = _pydicom_frames(path, image, indices, plugin)
    if image.has_modality_lut:
        arrays = [apply_modality_lut(arr, image.ds) for arr in arrays]
    return arrays


def _pydicom_frames(path, image: DicomImage, indices: Sequence[int], plugin: str | None) -> list[np.ndarray]:
    """decode_frames' stored values through pydicom's decoder and plugins, with the decoded shapes checked."""
    ds, (rows, cols, *_, frames, tsyntax) = image.ds, image.header
    decoder, first = _decoder(path, tsyntax, plugin)
    index = None
    with warnings.catch_warnings(), quiet_pydicom():
        warnings.simplefilter("ignore")
        try:
            pixels = ds[TAGS["PixelData"]]
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
            raise AngiogramReadError(path, _decode_reason(tsyntax, decoder, indices[0] if index is None else index, exc)) from None
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
    detail = _first_line(exc)
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
        # offsets from min (max) are exact in the stored type and in float32: taken while transposing, then one
        # float32 division straight into `out`
        offsets = np.subtract(mx, arr.T, order="C") if invert else np.subtract(arr.T, mn, order="C")
        return np.divide(offsets, scale, out=out, dtype=np.float32)
    out[...] = np.ascontiguousarray(arr.T)  # transposing the narrow stored type first is up to 1.6x faster
    if invert:
        np.subtract(np.float32(mx), out, out=out)
    else:
        out -= np.float32(mn)
    out /= scale
    return out


def lut_inverts(ds: Dataset, photometric: str) -> bool:
    """Whether the Modality LUT followed by display mapping reverses the stored values.

    Min-max normalisation makes a linear Modality LUT (RescaleSlope/Intercept) a no-op except for its sign, so the
    slope's sign and MONOCHROME1 are combined into one flip. A non-linear Modality LUT Sequence is applied in full by
    `decode_frames`.
    """
    try:
        slope = float(element_value(ds, "RescaleSlope", 1) or 1)
    except Exception:
        slope = 1.0
    return (slope < 0) != (photometric.upper() == "MONOCHROME1")


def pixel_spacing(ds: Dataset):
    """(row, column) spacing in mm from ImagerPixelSpacing, else PixelSpacing, else None."""
    for key in ("ImagerPixelSpacing", "PixelSpacing"):
        value = element_value(ds, key)
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

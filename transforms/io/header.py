"""The DICOM header of one angiogram: the image-pixel fields checked once and gathered into a `DicomImage`.

Layer 2 of the read path (files -> header): nothing here decodes pixels or calls the layers above.
"""

from __future__ import annotations

import re
import warnings
from io import BytesIO
from math import ceil
from typing import NamedTuple

import numpy as np
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.encaps import parse_basic_offsets, parse_fragments
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGBaseline8Bit

from ..errors import AngiogramReadError, first_line

GREY = ("MONOCHROME1", "MONOCHROME2")
COLOUR = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_RCT", "YBR_ICT")
MAX_FRAME_BYTES = 1 << 30
NO_SPACING = (float("nan"), float("nan"))
TAGS = {
    keyword: tag_for_keyword(keyword)
    for keyword in (
        "MediaStorageSOPClassUID", "TransferSyntaxUID", "SOPClassUID", "SamplesPerPixel", "PhotometricInterpretation",
        "NumberOfFrames", "Rows", "Columns", "ImagerPixelSpacing", "PixelSpacing", "BitsAllocated", "RescaleSlope",
        "ModalityLUTSequence", "ExtendedOffsetTable", "PixelData", "PixelRepresentation",
        "BitsStored",
    )
}


PLAIN_CS = re.compile(rb"[A-Z0-9_ ]*")
META_TAGS = {"sop_instance_uid": 0x00080018, "series_instance_uid": 0x0020000E, "study_instance_uid": 0x0020000D,
             "sop_class_uid": 0x00080016, "modality": 0x00080060}
"""The UIDs and modality that `describe` copies into the loader's meta, read as text (`ascii_value`)."""


def element_value(ds: Dataset, keyword: str, default=None):
    """`ds.get(keyword, default)` for a keyword of TAGS, looked up by tag (about 4 us less a call).

    Raw values that pydicom would convert to the same value are read from their bytes (5-10 us less each): a single
    explicit-VR US value, explicit-VR OB/OW bytes (kept as they are) and a CS value of A-Z, 0-9, "_" and spaces
    (trailing spaces stripped); any other element is converted by pydicom on first access.
    """
    tag = TAGS[keyword]
    elem = ds.get_item(tag)
    if elem is None:
        return default
    if isinstance(elem, RawDataElement) and elem.value is not None:
        if elem.VR == "US" and elem.length == 2:
            return int.from_bytes(elem.value, "little" if elem.is_little_endian else "big")
        if elem.VR in ("OB", "OW"):
            return elem.value
        if elem.VR == "CS" and PLAIN_CS.fullmatch(elem.value):
            return elem.value.decode("ascii").rstrip(" ")
    return ds[tag].value


class Header(NamedTuple):
    """The image-pixel header values the checks and the decoder need, each read once from the dataset."""

    rows: int
    columns: int
    samples: int
    bits: int
    photometric: str  # as stored, stripped
    frames: int
    tsyntax: UID


class DicomImage(NamedTuple):
    """A parsed DICOM file whose header and pixel data passed the checks, with the values read once from it.

    `native` is (dtype, shift) when the pixel data are little-endian native greyscale that numpy reads directly
    (values are `(stored << shift) >> shift`), else None: pydicom's decoder is used. `jpeg8` is True for 8-bit
    greyscale JPEG Baseline that Pillow alone decodes to pydicom's values (see `is_jpeg8`). `pixels` is the
    PixelData value (None for a header read without it, `files.encoded_frame`).
    """

    ds: Dataset
    header: Header
    invert: bool
    has_modality_lut: bool
    info: dict
    native: tuple[np.dtype, int] | None
    jpeg8: bool = False
    pixels: bytes | None = None


def inspect_dataset(path, ds: Dataset, fragments: tuple[list[int], int] | None = None) -> DicomImage:
    """Checks a parsed file's header and pixel data (`check_header`, `check_pixel_data` with `fragments`); returns
    what decoding needs.

    Raises:
        AngiogramReadError naming the first problem found.
    """
    header = check_header(path, ds)
    pixels = check_pixel_data(path, ds, header, fragments)
    invert = lut_inverts(ds, header.photometric)
    info = describe(ds, header)
    lut = TAGS["ModalityLUTSequence"] in ds
    return DicomImage(ds, header, invert, lut, info, native_layout(ds, header), not lut and is_jpeg8(ds, header),
                      pixels)


def check_header(path, ds: Dataset) -> Header:
    """Checks the image-pixel header fields that need no pixel data; returns their values.

    A file lacking a transfer syntax gets the one it was parsed with (implicit little endian when unknown).
    """
    rows, columns = _check_image_size(path, ds)
    transfer_syntax = _set_transfer_syntax(ds)
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
    tsyntax = UID(transfer_syntax)
    if not tsyntax.is_transfer_syntax:
        raise AngiogramReadError(path, f"unsupported transfer syntax {tsyntax}: not a transfer syntax UID")
    return Header(rows, columns, spp, bits, stored, number_of_frames(path, ds), tsyntax)


def _check_image_size(path, ds: Dataset) -> tuple[int, int]:
    """(Rows, Columns), both positive; AngiogramReadError naming what the file is when they are not."""
    try:
        rows, cols = int(element_value(ds, "Rows") or 0), int(element_value(ds, "Columns") or 0)
    except Exception:
        rows = cols = 0
    if rows <= 0 or cols <= 0:
        if TAGS["SOPClassUID"] in ds or element_value(ds.file_meta, "MediaStorageSOPClassUID"):
            raise AngiogramReadError(path, "not a DICOM image: no valid Rows/Columns")
        raise AngiogramReadError(
            path, "not a DICOM file or a supported image (no DICOM header, no PNG/JPEG/TIFF signature)"
        )
    return rows, cols


def _set_transfer_syntax(ds: Dataset):
    """The file meta's TransferSyntaxUID value, set first to the encoding the file was parsed with when missing."""
    meta = ds.file_meta
    found = element_value(meta, "TransferSyntaxUID")
    if found:
        return found
    implicit, little = ds.original_encoding
    if implicit is None:
        implicit, little = True, True
    parsed = (
        ImplicitVRLittleEndian if implicit and little else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
    )
    meta.TransferSyntaxUID = parsed
    return parsed


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


def check_pixel_data(path, ds: Dataset, header: Header, fragments: tuple[list[int], int] | None = None) -> bytes | None:
    """Checks that PixelData exists and holds the declared frames; returns its value (None with `fragments`).

    Native data must hold Rows*Columns*SamplesPerPixel*BitsAllocated/8 bytes per declared frame (no less, and not a
    whole extra frame more); encapsulated data must hold one Basic Offset Table entry, or at least one fragment, per
    declared frame. `fragments` (Basic Offset Table, number of fragments) of encapsulated data read from the file
    instead of from a parsed PixelData element (`files.encoded_frame`) skip the element's own checks.
    """
    rows, cols, spp, bits, pi, frames, tsyntax = header
    if fragments is None and TAGS["PixelData"] not in ds:
        raise AngiogramReadError(path, "no pixel data: the (7FE0,0010) Pixel Data element is missing")
    subsampled = not tsyntax.is_encapsulated and pi == "YBR_FULL_422"
    frame_bytes = ceil(rows * cols * (2 if subsampled else spp) * bits / 8)
    if frame_bytes > MAX_FRAME_BYTES:
        raise AngiogramReadError(path, f"frame of {rows} x {cols} x {spp} x {bits} bits is too large to decode")
    data = None if fragments is not None else element_value(ds, "PixelData")
    if fragments is None and (not isinstance(data, (bytes, bytearray)) or len(data) == 0):
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
        return data
    if fragments is None:
        try:
            buf = BytesIO(data)
            fragments = parse_basic_offsets(buf), parse_fragments(buf)[0]
        except Exception as exc:
            raise AngiogramReadError(path, f"malformed encapsulated pixel data ({first_line(exc)})") from None
    offsets, count = fragments
    if TAGS["ExtendedOffsetTable"] in ds:
        offsets = element_value(ds, "ExtendedOffsetTable")
        counted, source = len(offsets) // 8, "Extended Offset Table entries"
    elif offsets:
        counted, source = len(offsets), "Basic Offset Table entries"
    else:
        counted, source = count, "fragments"
    if count < 1:
        raise AngiogramReadError(path, "no pixel data: the encapsulated pixel data holds no fragments")
    if (source == "fragments" and counted < frames) or (source != "fragments" and counted != frames):
        raise AngiogramReadError(
            path, f"NumberOfFrames is {frames} but the encapsulated pixel data holds {counted} {source}"
        )
    return data


def native_layout(ds: Dataset, header: Header) -> tuple[np.dtype, int] | None:
    """(dtype, shift) of little-endian native greyscale pixel data that numpy can read directly, else None.

    None for big endian, 1-bit, colour or odd PixelRepresentation/BitsStored values, so that pydicom decodes them.
    """
    rows, cols, spp, bits, _, _, tsyntax = header
    if tsyntax.is_encapsulated or not tsyntax.is_little_endian or spp != 1 or bits not in (8, 16, 32, 64):
        return None
    try:
        signed = int(element_value(ds, "PixelRepresentation"))
        stored = int(element_value(ds, "BitsStored"))
    except Exception:
        return None
    if signed not in (0, 1) or not 0 < stored <= bits:
        return None
    return np.dtype(f"<{'i' if signed else 'u'}{bits // 8}"), bits - stored


def is_jpeg8(ds: Dataset, header: Header) -> bool:
    """True for 8-bit unsigned greyscale JPEG Baseline pixel data that pydicom would pass to Pillow unchanged:
    BitsStored 8, PixelRepresentation 0, Rows and Columns below 65536 and no Extended Offset Table."""
    rows, cols, spp, bits, _, _, tsyntax = header
    return (tsyntax == JPEGBaseline8Bit and spp == 1 and bits == 8 and rows < 1 << 16 and cols < 1 << 16
            and TAGS["ExtendedOffsetTable"] not in ds and element_value(ds, "BitsStored") == 8
            and element_value(ds, "PixelRepresentation") == 0)


def describe(ds: Dataset, header: Header) -> dict:
    """The header part of the loader's meta: pixel_spacing ((nan, nan) when unknown), UIDs, modality, rows, ..."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "num_frames": header.frames,
            "pixel_spacing": pixel_spacing(ds) or NO_SPACING,
            **{key: ascii_value(ds, tag) for key, tag in META_TAGS.items()},
            "photometric_interpretation": str(element_value(ds, "PhotometricInterpretation", "")),
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


def lut_inverts(ds: Dataset, photometric: str) -> bool:
    """Whether the Modality LUT followed by display mapping reverses the stored values.

    Min-max normalisation makes a linear Modality LUT (RescaleSlope/Intercept) a no-op except for its sign, so the
    slope's sign and MONOCHROME1 are combined into one flip. A non-linear Modality LUT Sequence is applied in full
    when decoding.
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

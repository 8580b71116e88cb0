"""Sniffing and opening one angiogram file: PNG/JPEG/TIFF or DICOM, parsed and checked once (with a small cache).

Layer 1 of the read path: `open_angiogram` sniffs the file, parses a DICOM file with pydicom and hands it to
`header.inspect_dataset` for its checks. Nothing here decodes pixel data.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from collections import OrderedDict
from io import BytesIO

import pydicom
from pydicom.dataset import Dataset
from pydicom.encaps import get_frame, parse_basic_offsets
from pydicom.uid import JPEGBaseline8Bit

from ..errors import AngiogramReadError, first_line, quiet_pydicom
from .header import META_TAGS, TAGS, DicomImage, check_header, inspect_dataset

IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*", b"BM", b"GIF8")
WHOLE_FILE_BYTES = 32 << 20
CACHE_FILES = 4
CACHE_BYTES = 256 << 20
CACHE_MIN_AGE_S = 2.0
ENCAPSULATED_PIXEL_DATA = b"\xe0\x7f\x10\x00OB\x00\x00\xff\xff\xff\xff"  # explicit VR little endian, undefined length
JPEG_BASELINE_UID = JPEGBaseline8Bit.encode("ascii")  # the one syntax `encoded_frame` serves (`DicomImage.jpeg8`)
ITEM, SEQUENCE_DELIMITER = b"\xfe\xff\x00\xe0", b"\xfe\xff\xdd\xe0"
HEAD_BYTES = (1 << 14, 1 << 20)  # the first bytes parsed for the header, then more when it is longer
HEADER_TAGS = [*TAGS.values(), *META_TAGS.values()]  # what the checks and `describe` read
_cache: OrderedDict = OrderedDict()
_cache_lock = threading.Lock()


def is_image_file(head: bytes) -> bool:
    """True when the first 132 bytes of a file are sniffed as PNG/JPEG/TIFF/BMP/GIF: they start with one of those
    signatures and hold no DICOM preamble marker ("DICM" at byte 128)."""
    return head[128:132] != b"DICM" and head.startswith(IMAGE_MAGIC)


def file_head(path, size: int = 132) -> bytes:
    """The first `size` bytes of a file; AngiogramReadError if it cannot be opened."""
    try:
        with open(path, "rb") as f:
            return f.read(size)
    except Exception as exc:
        raise AngiogramReadError(path, f"cannot open file ({first_line(exc)})") from None


def is_image_path(path) -> bool:
    """True for files that are sniffed as PNG/JPEG/TIFF/BMP/GIF rather than DICOM."""
    return is_image_file(file_head(path))


def open_angiogram(path) -> DicomImage | None:
    """The checked DICOM file at `path` (see `open_dicom`), or None when it is sniffed as PNG/JPEG/TIFF/BMP/GIF
    (`is_image_path`, from the bytes `open_dicom` reads)."""
    return open_dicom(path, images=True)


def count_frames(path) -> int:
    """Number of frames of one file, from its header only (pixel data is neither read nor decoded)."""
    if is_image_path(path):
        return image_pages(path)
    return check_header(path, read_dataset(path, stop_before_pixels=True)).frames


def image_pages(path) -> int:
    """Number of pages of a PNG/JPEG/TIFF (header only)."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return int(getattr(img, "n_frames", 1))
    except Exception as exc:
        raise AngiogramReadError(path, f"not a readable image file ({first_line(exc)})") from None


def read_dataset(path, stop_before_pixels: bool = False, images: bool = False) -> Dataset | None:
    """Parses a DICOM file (with or without the 128-byte preamble and file meta) into a pydicom Dataset.

    A file of at most WHOLE_FILE_BYTES is read in one call and parsed from memory (pydicom's many small reads are
    then memory copies, not buffered file reads). Rows/Columns and the transfer syntax are checked by
    `header.check_header`. With `images`, None when the first bytes are sniffed as PNG/JPEG/TIFF/BMP/GIF
    (`is_image_file`, in the same read).

    Raises AngiogramReadError when the file cannot be opened, or its bytes are unreadable or empty (pydicom 3
    returns an empty dataset with only a warning for some truncated files).
    """
    try:
        f = open(path, "rb")
    except Exception as exc:
        raise AngiogramReadError(path, f"cannot open file ({first_line(exc)})") from None
    with f, warnings.catch_warnings(record=True) as caught, quiet_pydicom():
        warnings.simplefilter("always")
        try:
            if images:
                if is_image_file(f.read(132)):
                    return None
                f.seek(0)
            source = f
            if not stop_before_pixels and os.fstat(f.fileno()).st_size <= WHOLE_FILE_BYTES:
                source = BytesIO(f.read())
                source.name = f.name  # named in pydicom's warnings, which reasons quote
            ds = pydicom.dcmread(source, force=True, stop_before_pixels=stop_before_pixels)
        except Exception as exc:
            raise AngiogramReadError(path, f"not a readable DICOM file ({first_line(exc)})") from None
    if len(ds) == 0:
        detail = f" (pydicom: {str(caught[0].message).splitlines()[0]})" if caught else ""
        raise AngiogramReadError(path, f"truncated or not a DICOM file: no data elements could be read{detail}")
    return ds


def open_dicom(path, images: bool = False) -> DicomImage | None:
    """Reads and checks one DICOM file (read_dataset + header.inspect_dataset); with `images`, None for a file
    sniffed as PNG/JPEG/TIFF/BMP/GIF (`read_dataset`).

    Multi-frame files are kept in a small per-process LRU (CACHE_FILES files, CACHE_BYTES in all) keyed by path,
    inode, size and mtime, so that loading a cine frame by frame parses and checks it once. A file modified less than
    CACHE_MIN_AGE_S ago is not cached (file times are coarse: a rewrite within one tick could keep its mtime).
    DataLoader workers each hold their own cache.
    """
    try:
        st = os.stat(path)
    except Exception as exc:
        raise AngiogramReadError(path, f"cannot open file ({first_line(exc)})") from None
    key = (os.fspath(path), st.st_ino, st.st_size, st.st_mtime_ns)
    image = _cached(key)
    if image is None:
        ds = read_dataset(path, images=images)
        if ds is None:
            return None
        image = inspect_dataset(path, ds)
        _keep(key, image, image.header.frames, st)
    return image


def encoded_frame(path, index: int) -> tuple[DicomImage, bytes] | None:
    """The checked header and the encoded bytes of frame `index` of an encapsulated file, read without the rest of
    its pixel data (as `pydicom.pixels.pixel_array(path, index=...)` reads one frame); None when `open_dicom` has
    the file cached or the file is not a plain case, so that the caller goes through `open_dicom`.

    Plain: a DICOM file with preamble, explicit VR little endian, whose header ends in its first HEAD_BYTES[-1]
    bytes and passes `header.inspect_dataset`, whose (7FE0,0010) element has undefined length and holds a Basic
    Offset Table item (empty or not), at least one fragment and the sequence delimiter that ends the file, that
    Pillow may decode alone (`DicomImage.jpeg8`) and where `index` is a frame. Parsing the whole file then gives
    the same header, checks and frame: its Pixel Data value ends where pydicom's item by item scan
    (`_pixel_data_items`) ends. Anything else (truncated or odd files, bad headers, invalid indices) is left to
    `open_dicom`, whose errors are the loader's. One difference is kept on purpose: with a Basic Offset Table, the
    fragments of other frames than the last one and `index` are not read (as pydicom's one-frame read does not read
    them), so a broken fragment elsewhere in the file fails only its own frame here, where `open_dicom` fails the
    whole file; the data list check (`check_angiogram_file`) parses every file whole and reports it.
    The header of a multi-frame file is cached next to `open_dicom`'s entries (same rules), so that a cine read
    frame by frame is parsed once.

    Returns:
        (image, frame bytes) where `image.ds` holds the header elements the checks and the meta read, no PixelData.
    """
    try:
        st = os.stat(path)
        key = (os.fspath(path), st.st_ino, st.st_size, st.st_mtime_ns)
        if _cached(key, touch=False) is not None:
            return None
        with open(path, "rb", buffering=0) as f:
            found = _cached(key + ("header",))
            if found is None:
                found = _encapsulated_header(path, f, st.st_size)
                if found is None:
                    return None
                _keep(key + ("header",), found, found[0].header.frames, st)
            image, start = found
            if not (image.jpeg8 and 0 <= index < image.header.frames):
                return None
            f.seek(start)
            with warnings.catch_warnings(), quiet_pydicom():
                warnings.simplefilter("ignore")
                return image, get_frame(f, index, number_of_frames=image.header.frames)
    except Exception:
        return None


def _encapsulated_header(path, f, size: int) -> tuple[DicomImage, int] | None:
    """(checked header, file offset of the Pixel Data value) of a plain file (see `encoded_frame`), else None.

    A file whose head (its file meta) does not name the JPEG Baseline transfer syntax is not parsed at all: only
    those can take the one-frame route, and the others (native data, other codecs) are then parsed once, by
    `open_dicom`, instead of twice."""
    for chunk in HEAD_BYTES:
        head = _read_at(f, 0, chunk)
        if head[128:132] != b"DICM" or JPEG_BASELINE_UID not in head[: HEAD_BYTES[0]]:
            return None
        buf = BytesIO(head)
        try:
            with warnings.catch_warnings(), quiet_pydicom():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(buf, force=True, stop_before_pixels=True, specific_tags=HEADER_TAGS)
        except Exception:
            continue
        at = buf.tell()
        if head[at:at + 12] == ENCAPSULATED_PIXEL_DATA:
            break
    else:
        return None
    if len(ds) == 0 or ds.original_encoding != (False, True):
        return None
    found = _pixel_data_items(f, at + 12, size)
    return None if found is None else (inspect_dataset(path, ds, found), at + 12)


def _pixel_data_items(f, start: int, size: int) -> tuple[list[int], int] | None:
    """(Basic Offset Table, number of fragments) of the encapsulated value at `start`, walked item by item as pydicom
    reads it (`pydicom.fileutil.read_undefined_length_value`), when the sequence delimiter that ends it also ends
    the file; else None.

    A non-empty table (first entry 0, ascending) names where each frame starts: the walk then begins at the last
    frame, so that a frame costs a few reads, not one per fragment of the file (the number of fragments is then a
    lower bound, table entries - 1 + those walked, which is all `header.check_pixel_data` needs of it there)."""
    item = _read_at(f, start, 8)
    length = int.from_bytes(item[4:], "little")
    if start + 8 + length + 8 > size:
        return None
    offsets = parse_basic_offsets(item + _read_at(f, start + 8, length))
    pos, count = start + 8 + length, 0
    if offsets:
        if offsets[0] != 0 or any(b <= a for a, b in zip(offsets, offsets[1:])):
            return None
        pos, count = pos + offsets[-1], len(offsets) - 1
    while pos + 8 <= size:
        item = _read_at(f, pos, 8)
        if item[:4] == SEQUENCE_DELIMITER:
            return (offsets, count) if pos + 8 == size and count else None
        if item[:4] != ITEM:
            return None
        pos, count = pos + 8 + int.from_bytes(item[4:], "little"), count + 1
    return None


def _read_at(f, pos: int, size: int) -> bytes:
    """Up to `size` bytes of the open file `f` from offset `pos` (one system call where os.pread exists)."""
    if hasattr(os, "pread"):
        return os.pread(f.fileno(), size, pos)
    f.seek(pos)
    return f.read(size)


def _cached(key: tuple, touch: bool = True):
    with _cache_lock:
        found = _cache.get(key)
        if found is not None and touch:
            _cache.move_to_end(key)
        return found


def _keep(key: tuple, value, frames: int, st: os.stat_result) -> None:
    """Caches what `open_dicom` or `encoded_frame` parsed of a multi-frame file; evicts the least recently used."""
    if frames > 1 and time.time() - st.st_mtime > CACHE_MIN_AGE_S:
        with _cache_lock:
            _cache[key] = value
            while len(_cache) > CACHE_FILES or sum(k[2] for k in _cache) > CACHE_BYTES:
                _cache.popitem(last=False)


def clear_cache() -> None:
    """Empties the cache of parsed multi-frame files (`open_dicom`'s and `encoded_frame`'s)."""
    with _cache_lock:
        _cache.clear()

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

from ..errors import AngiogramReadError, first_line, quiet_pydicom
from .header import DicomImage, check_header, inspect_dataset

IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*", b"BM", b"GIF8")
WHOLE_FILE_BYTES = 32 << 20
CACHE_FILES = 4
CACHE_BYTES = 256 << 20
CACHE_MIN_AGE_S = 2.0
_cache: OrderedDict = OrderedDict()
_cache_lock = threading.Lock()


def is_image_file(head: bytes) -> bool:
    """True when the first bytes of a file are a PNG, JPEG, TIFF, BMP or GIF signature."""
    return head.startswith(IMAGE_MAGIC)


def file_head(path, size: int = 132) -> bytes:
    """The first `size` bytes of a file; AngiogramReadError if it cannot be opened."""
    try:
        with open(path, "rb") as f:
            return f.read(size)
    except Exception as exc:
        raise AngiogramReadError(path, f"cannot open file ({first_line(exc)})") from None


def is_image_path(path) -> bool:
    """True for files that are sniffed as PNG/JPEG/TIFF/BMP/GIF rather than DICOM."""
    head = file_head(path)
    return head[128:132] != b"DICM" and is_image_file(head)


def open_angiogram(path) -> DicomImage | None:
    """The checked DICOM file at `path` (see `open_dicom`), or None when it is sniffed as PNG/JPEG/TIFF/BMP/GIF."""
    return None if is_image_path(path) else open_dicom(path)


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


def read_dataset(path, stop_before_pixels: bool = False) -> Dataset:
    """Parses a DICOM file (with or without the 128-byte preamble and file meta) into a pydicom Dataset.

    A file of at most WHOLE_FILE_BYTES is read in one call and parsed from memory (pydicom's many small reads are
    then memory copies, not buffered file reads). Rows/Columns and the transfer syntax are checked by
    `header.check_header`.

    Raises AngiogramReadError when the bytes are unreadable or empty (pydicom 3 returns an empty dataset with only
    a warning for some truncated files).
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
            raise AngiogramReadError(path, f"not a readable DICOM file ({first_line(exc)})") from None
    if len(ds) == 0:
        detail = f" (pydicom: {str(caught[0].message).splitlines()[0]})" if caught else ""
        raise AngiogramReadError(path, f"truncated or not a DICOM file: no data elements could be read{detail}")
    return ds


def open_dicom(path) -> DicomImage:
    """Reads and checks one DICOM file (read_dataset + header.inspect_dataset).

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
    with _cache_lock:
        image = _cache.get(key)
        if image is not None:
            _cache.move_to_end(key)
            return image
    image = inspect_dataset(path, read_dataset(path))
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

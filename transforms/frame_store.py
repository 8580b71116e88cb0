"""Compact rows of pretraining frames (image, pseudo-mask), held in RAM or in files shared on a machine.

One row holds the deterministic outputs of one frame at working size (W, H):
    image        uint16, round(x * 65535) of the [0, 1] image (16-bit; the DICOM stored values are 8-16 bits);
    vessel_mask  bits (numpy.packbits of the flattened {0, 1} mask).
That is 2.125 bytes per pixel instead of 12 for the three float32 maps (image, vesselness, mask) the bundle's
``CacheDataset`` kept before: 136 KiB per frame at 256 x 256. The vesselness is not stored: it is needed only to
make the pseudo-mask, inside the deterministic transforms (the soft guidance comes from the segmentor, not from it).

On disk the fields are two flat files plus a state file (one byte per row: 0 pending, 1 written, 2 bad) and an
index (``index.json``: row of each frame key). Rows are read with ``os.pread`` into a fresh buffer: the only shared
copy is the kernel's page cache, so no rank's resident memory grows with the archive (pages of an ``mmap`` would be
counted in the RSS of every rank that touched them). Writers use ``os.pwrite`` on disjoint rows.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

__all__ = ["FIELDS", "DiskRows", "RamRows", "decode_row", "encode_row", "row_bytes"]

FIELDS = ("image", "vessel_mask")
STATE_PENDING, STATE_DONE, STATE_BAD = 0, 1, 2
_FILES = {"image": "image.u16", "vessel_mask": "vessel_mask.bits"}


def _field_bytes(shape) -> dict[str, int]:
    pixels = int(np.prod(shape))
    return {"image": 2 * pixels, "vessel_mask": -(-pixels // 8)}


def row_bytes(shape) -> int:
    """Bytes of one stored frame of spatial shape (W, H)."""
    return sum(_field_bytes(shape).values())


def encode_row(image, mask) -> dict[str, bytes]:
    """(W, H) float image in [0, 1], (W, H) {0, 1} mask -> the two compact byte strings."""
    image = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
    return {
        "image": np.rint(image * 65535.0).astype(np.uint16).tobytes(),
        "vessel_mask": np.packbits(np.asarray(mask).reshape(-1) > 0.5).tobytes(),
    }


def decode_row(raw: dict[str, bytes | np.ndarray], shape) -> dict[str, np.ndarray]:
    """The two stored fields of one row -> {field: (1, W, H) float32}; the image in [0, 1], the mask in {0, 1}."""
    pixels = int(np.prod(shape))
    image = np.frombuffer(raw["image"], dtype=np.uint16).astype(np.float32) * np.float32(1.0 / 65535.0)
    mask = np.unpackbits(np.frombuffer(raw["vessel_mask"], dtype=np.uint8), count=pixels).astype(np.float32)
    return {k: v.reshape(1, *shape) for k, v in zip(FIELDS, (image, mask))}


class RamRows:
    """Rows in process memory: one preallocated byte array per field, (rows, bytes per row)."""

    def __init__(self, shape, rows: int):
        self.shape = tuple(shape)
        self.sizes = _field_bytes(shape)
        self.data = {k: np.zeros((rows, n), dtype=np.uint8) for k, n in self.sizes.items()}
        self.state = np.zeros(rows, dtype=np.uint8)

    def write(self, row: int, raw: dict[str, bytes]) -> None:
        for k in FIELDS:
            self.data[k][row] = np.frombuffer(raw[k], dtype=np.uint8)
        self.state[row] = STATE_DONE

    def read(self, row: int) -> dict[str, np.ndarray]:
        return decode_row({k: self.data[k][row] for k in FIELDS}, self.shape)

    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.data.values()) + self.state.nbytes


class DiskRows:
    """Rows in flat files under ``directory`` (see the module docstring); several processes may open it at once.

    ``index.json``: {"shape": [W, H], "rows": {key: row}}. A frame key names the file, its size, its mtime and the
    frame, so a changed file gets new rows; rows nobody refers to are left in place (delete the folder to compact).
    """

    def __init__(self, directory, shape):
        self.dir = Path(directory)
        self.shape = tuple(int(s) for s in shape)
        self.sizes = _field_bytes(self.shape)
        self.index = self._load_index()
        self._fds: dict[str, int] = {}

    def _load_index(self) -> dict:
        path = self.dir / "index.json"
        if path.is_file():
            index = json.loads(path.read_text())
            if tuple(index["shape"]) == self.shape:
                return index
        return {"shape": list(self.shape), "rows": {}}

    def reserve(self, keys) -> None:
        """Gives every new key a row, grows the files (sparse) and writes the index. Call from one process."""
        self.dir.mkdir(parents=True, exist_ok=True)
        rows = self.index["rows"]
        for key in keys:
            if key not in rows:
                rows[key] = len(rows)
        n = len(rows)
        for field, name in _FILES.items():
            with open(self.dir / name, "ab") as f:
                if f.tell() < n * self.sizes[field]:
                    f.truncate(n * self.sizes[field])
        with open(self.dir / "state.u8", "ab") as f:
            if f.tell() < n:
                f.truncate(n)
        tmp = self.dir / f"index.json.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(self.index))
        os.replace(tmp, self.dir / "index.json")

    def reload(self) -> None:
        self.index = self._load_index()

    def row_of(self, key: str) -> int:
        return self.index["rows"][key]

    def _fd(self, name: str, write: bool = False) -> int:
        tag = name + ("+w" if write else "")
        if tag not in self._fds:
            self._fds[tag] = os.open(self.dir / name, os.O_RDWR if write else os.O_RDONLY)
        return self._fds[tag]

    def states(self) -> np.ndarray:
        return np.fromfile(self.dir / "state.u8", dtype=np.uint8)

    def write(self, row: int, raw: dict[str, bytes] | None) -> None:
        """Writes one row (None marks it bad), data first, then its state byte."""
        if raw is not None:
            for field, name in _FILES.items():
                os.pwrite(self._fd(name, True), raw[field], row * self.sizes[field])
        os.pwrite(self._fd("state.u8", True), bytes([STATE_DONE if raw is not None else STATE_BAD]), row)

    def read(self, row: int) -> dict[str, np.ndarray]:
        raw = {f: os.pread(self._fd(name), self.sizes[f], row * self.sizes[f]) for f, name in _FILES.items()}
        return decode_row(raw, self.shape)

    def nbytes(self) -> int:
        return sum((self.dir / n).stat().st_size for n in (*_FILES.values(), "state.u8"))

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def __getstate__(self):
        return {**self.__dict__, "_fds": {}}

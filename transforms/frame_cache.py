"""A dataset of cached deterministic pretraining outputs (load -> resize -> vesselness -> pseudo-mask), stored
compactly.

Replaces ``CacheDataset`` over the deterministic transforms: ``FrameCacheDataset(datalist, Compose([...]),
spatial_size=(256, 256), mode="disk", cache_dir=...)[i]`` -> {"image", "vessel_mask"}, each a (1, W, H)
float32 tensor, as the ``EnsureTyped``/``SelectItemsd`` tail of the deterministic transforms gives them (the
vesselness is computed there only to make the pseudo-mask, and is not stored).

Work is split, not repeated. Each rank computes the frames ``pending[i::n]`` (i its index among the n ranks of its
machine, ``pending`` the frames not in the store yet) and shares them: in "disk" mode through the machine's store
(every rank then reads the same files), in "ram" mode by an all-gather to every rank. Splitting rather than letting
rank 0 build while the others wait makes the build n times shorter on n ranks; the price is one barrier.

The disk store lives in ``cache_dir/<fingerprint>-<host>``; the fingerprint covers the parameters of every
deterministic transform and the working size, and each frame is keyed by its file's path, size and mtime, so a rerun
reuses every unchanged frame and recomputes only changed or new ones. A frame whose file fails to load is left out
(one warning per file) and its file is added once to the ``rejected`` list of the datalist manifest; the run goes on.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import types
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from . import ranks
from .errors import AngiogramReadError
from .frame_store import FIELDS, STATE_DONE, STATE_PENDING, DiskRows, RamRows, encode_row

__all__ = ["FrameCacheDataset", "frame_key", "transform_fingerprint"]

logger = logging.getLogger("transforms.frame_cache")
FORMAT_VERSION = 2
MODES = ("ram", "disk")


def _describe(obj, depth: int = 0):
    """A JSON-able description of a transform's public parameters (nested transforms included)."""
    if isinstance(obj, (str, int, float, bool, type(None))):
        return obj
    if isinstance(obj, (list, tuple, set, frozenset, range)):
        items = [_describe(x, depth + 1) for x in obj]
        return sorted(items, key=repr) if isinstance(obj, (set, frozenset)) else items
    if isinstance(obj, dict):
        return {str(k): _describe(v, depth + 1) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (np.ndarray, np.generic, torch.Tensor)):
        return np.asarray(obj).tolist()
    if isinstance(obj, (type, types.FunctionType, types.BuiltinFunctionType, types.MethodType)):
        return f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', repr(obj))}"
    name = f"{type(obj).__module__}.{type(obj).__qualname__}"
    if depth > 8 or not hasattr(obj, "__dict__") or isinstance(obj, logging.Logger):
        return name if not isinstance(obj, (torch.dtype, np.dtype)) else str(obj)
    public = {k: v for k, v in vars(obj).items() if not k.startswith("_")}
    return {"type": name, **{k: _describe(v, depth + 1) for k, v in public.items()}}


def transform_fingerprint(transform, spatial_size) -> str:
    """sha256 hex of the deterministic transforms' parameters, the working size and the store format."""
    text = json.dumps([FORMAT_VERSION, list(spatial_size), _describe(transform)], sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def frame_key(entry: dict) -> str:
    """'path|size|mtime_ns|frame' of a data list entry; a missing file gives size and mtime -1."""
    path = os.path.abspath(entry["image"])
    try:
        st = os.stat(path)
        size, mtime = st.st_size, st.st_mtime_ns
    except OSError:
        size = mtime = -1
    return f"{path}|{size}|{mtime}|{entry.get('frame')}"


def _read_error(err: BaseException | None) -> AngiogramReadError | None:
    """The AngiogramReadError behind `err` (Compose wraps a transform's error in a RuntimeError), or None."""
    while err is not None and not isinstance(err, AngiogramReadError):
        err = err.__cause__ or err.__context__
    return err


@contextmanager
def _locked(directory: Path):
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class FrameCacheDataset(Dataset):
    """Cached deterministic outputs of a pretraining data list; item i -> {field: (1, W, H) float32 tensor}.

    Args:
        data: data list, [{"image": path, "frame": int | None}, ...].
        transform: the deterministic transforms (a callable on one entry) giving "image" and "vessel_mask",
            each (1, W, H) (other outputs are not stored).
        spatial_size: (W, H) of those outputs (the working size).
        mode: "ram" (rows in this process) or "disk" (rows in ``cache_dir``, shared by the ranks of a machine and
            reused by later runs).
        cache_dir: folder of the disk stores (mode "disk" only).
        manifest_path: datalist manifest that receives the files rejected while caching (rank 0 writes it).
        workers: threads computing frames in each process (vesselness and decoding release the GIL).
        progress: log the build's progress about every 10%.

    Attributes:
        computed: data list indices whose outputs this process computed (for counters and tests).
        nbytes: bytes of the stored rows (RAM in "ram" mode, file size in "disk" mode).
    """

    def __init__(self, data, transform, spatial_size, mode: str = "ram", cache_dir=None, manifest_path=None,
                 workers: int = 1, progress: bool = True):
        if mode not in MODES:
            raise ValueError(f"cache mode must be one of {MODES}, got {mode!r}")
        if mode == "disk" and not cache_dir:
            raise ValueError("cache mode 'disk' needs a cache_dir")
        self.data, self.transform = list(data), transform
        self.shape = tuple(int(s) for s in spatial_size)
        self.progress, self.workers = progress, int(workers)
        self.computed: list[int] = []
        self.rejected: dict[int, str] = {}
        keys = [frame_key(e) for e in self.data]
        rows = self._build_disk(keys, Path(cache_dir)) if mode == "disk" else self._build_ram()
        self.rows = [r for i, r in enumerate(rows) if i not in self.rejected]
        self.nbytes = self.store.nbytes()
        self._report(manifest_path)

    def _compute(self, index: int):
        """Encoded row of entry `index`, or None (reason kept in self.rejected) when its file fails to load."""
        try:
            out = self.transform(dict(self.data[index]))
        except Exception as err:
            cause = _read_error(err)
            if cause is None:
                raise
            self.rejected[index] = cause.reason
            return None
        arrays = [np.asarray(torch.as_tensor(out[k]).detach().cpu()) for k in FIELDS]
        if any(a.shape != (1, *self.shape) for a in arrays):
            raise ValueError(f"cached outputs must be (1, {self.shape[0]}, {self.shape[1]}), got "
                             f"{[a.shape for a in arrays]} for {self.data[index]['image']}")
        self.computed.append(index)
        return encode_row(*(a[0] for a in arrays))

    def _run(self, todo, write) -> None:
        step = max(1, len(todo) // 10)
        with ThreadPoolExecutor(max(1, self.workers)) as pool:
            rows = pool.map(self._compute, todo) if self.workers > 1 else map(self._compute, todo)
            for n, (index, raw) in enumerate(zip(todo, rows), 1):
                write(index, raw)
                if self.progress and (n % step == 0 or n == len(todo)):
                    logger.info("frame cache: %d/%d frames computed by this rank", n, len(todo))

    def _build_ram(self) -> list[int]:
        rank, world = ranks.rank_world()
        self.store = RamRows(self.shape, len(self.data))
        mine = {}

        def write(index, raw):
            if raw is not None:
                self.store.write(index, raw)
                if world > 1:
                    mine[index] = raw

        self._run(range(rank, len(self.data), world), write)
        if world > 1:
            shared = [None] * world
            torch.distributed.all_gather_object(shared, (mine, self.rejected))
            mine.clear()
            for rows, rejected in shared:
                self.rejected.update(rejected)
                for index, raw in rows.items():
                    self.store.write(index, raw)
        return list(range(len(self.data)))

    def _build_disk(self, keys, cache_dir: Path) -> list[int]:
        index_in_group, group_size, host = ranks.machine_group()
        directory = cache_dir / f"{transform_fingerprint(self.transform, self.shape)[:16]}-{host}"
        store = DiskRows(directory, self.shape)
        if index_in_group == 0:
            with _locked(directory):
                store.reload()
                store.reserve(keys)
        ranks.barrier()
        store.reload()
        rows = [store.row_of(k) for k in keys]
        state = store.states()
        first = {}
        for i, r in enumerate(rows):
            if state[r] == STATE_PENDING:
                first.setdefault(r, i)
        todo = sorted(first.values())[index_in_group::group_size]
        ranks.barrier()  # the split holds only if every rank read the states before any row was written
        bad_log = directory / "rejected.jsonl"

        def write(index, raw):
            store.write(rows[index], raw)
            if raw is None:
                with open(bad_log, "a") as f:
                    f.write(json.dumps({"key": keys[index], "reason": self.rejected[index]}) + "\n")

        self._run(todo, write)
        ranks.barrier()
        state = store.states()
        reasons = {}
        if bad_log.is_file():
            reasons = {r["key"]: r["reason"] for r in map(json.loads, bad_log.read_text().splitlines())}
        for i, r in enumerate(rows):
            if state[r] != STATE_DONE:
                self.rejected[i] = reasons.get(keys[i], "not cached: the cache build did not finish")
        self.store = store
        logger.info("frame cache %s: %d frames, %d computed by this rank, %d rejected", directory, len(keys),
                    len(self.computed), len(self.rejected))
        return rows

    def _report(self, manifest_path) -> None:
        by_file = defaultdict(list)
        for index, reason in sorted(self.rejected.items()):
            by_file[self.data[index]["image"]].append((self.data[index].get("frame"), reason))
        rank = ranks.rank_world()[0]
        for path, frames in by_file.items():
            logger.warning("rejected %s while caching (%d frame(s)): %s", path, len(frames), frames[0][1])
        if not by_file or rank != 0 or manifest_path is None or not Path(manifest_path).is_file():
            return
        manifest = json.loads(Path(manifest_path).read_text())
        manifest["rejected"].extend({"image": p, "reason": f[0][1], "stage": "cache", "frames": [x for x, _ in f]}
                                    for p, f in by_file.items())
        manifest["counts"]["rejected_files"] = len(manifest["rejected"])
        manifest["counts"]["cached_entries"] = len(self.rows)
        Path(manifest_path).write_text(json.dumps(manifest, indent=1))

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {k: torch.from_numpy(v) for k, v in self.store.read(self.rows[index]).items()}

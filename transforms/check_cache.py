"""The per-file part of the datalist check, run in parallel over files and remembered for unchanged files.

A file's result (frame count, usable frames, selected frames, or the reason it was rejected) is stored under
'path|size|mtime_ns|decode|policy' in a JSON file, so a rerun over an unchanged archive only lists and stats the files.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from .errors import AngiogramReadError

__all__ = ["CheckCache", "check_files", "check_one"]

_MIN_FILES_PER_WORKER = 32  # below this a pool costs more (forking a process that imported torch) than it saves


def check_one(path, decode: str, frame_policy) -> dict:
    """{"frames", "usable_frames", "selected"} of one file, or {"reason"} when it cannot be used."""
    from .dataset_check import inspect_angiogram_file
    from .frame_policy import select_archive_frames

    try:
        info = inspect_angiogram_file(path, decode)
        selected = select_archive_frames(path, info["frames"], frame_policy)
    except AngiogramReadError as err:
        return {"reason": err.reason}
    return {"frames": info["frames"], "usable_frames": info["usable_frames"], "selected": selected}


def _check_star(args):
    return check_one(*args)


class CheckCache:
    """Results of earlier checks, in ``<folder>/datalist_check-<hash of the roots>.json``; folder None keeps none."""

    def __init__(self, folder, roots):
        self.path = None
        self.results: dict[str, dict] = {}
        if folder:
            tag = hashlib.sha256(json.dumps(sorted(str(Path(r).resolve()) for r in roots)).encode()).hexdigest()[:16]
            self.path = Path(folder) / f"datalist_check-{tag}.json"
            if self.path.is_file():
                try:
                    self.results = json.loads(self.path.read_text())
                except ValueError:
                    self.results = {}
        self._loaded = set(self.results)

    @staticmethod
    def key(path, decode: str, frame_policy) -> str:
        try:
            st = os.stat(path)
        except OSError:
            return ""
        return f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}|{decode}|{json.dumps(frame_policy)}"

    def save(self, keys) -> None:
        """Keeps the results of `keys` only (files no longer listed are forgotten) and writes them atomically;
        nothing is written when that changes nothing."""
        if self.path is None or set(keys) == self._loaded:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = {k: self.results[k] for k in keys if k in self.results}
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(kept))
        os.replace(tmp, self.path)


def check_files(paths, decode: str, frame_policy, workers: int = 1, cache: CheckCache | None = None) -> list[dict]:
    """check_one for every path, in order; reused from `cache` where the file is unchanged, else in `workers`
    processes (forked, when there are at least 32 files per process; else in this process). Returns one result dict
    per path."""
    cache = cache or CheckCache(None, [])
    keys = [CheckCache.key(p, decode, frame_policy) for p in paths]
    todo = [i for i, k in enumerate(keys) if not k or k not in cache.results]
    args = [(str(paths[i]), decode, frame_policy) for i in todo]
    if workers > 1 and len(todo) >= _MIN_FILES_PER_WORKER * workers:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(min(workers, len(todo)), mp_context=context) as pool:
            fresh = list(pool.map(_check_star, args, chunksize=max(1, len(todo) // (8 * workers))))
    else:
        fresh = [check_one(*a) for a in args]
    results = {k: cache.results[k] for k in keys if k in cache.results}
    for i, result in zip(todo, fresh):
        if keys[i]:
            cache.results[keys[i]] = result
        results[keys[i] or str(paths[i])] = result
    cache.save([k for k in keys if k])
    return [results[k or str(p)] for k, p in zip(keys, paths)]

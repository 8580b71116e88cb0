"""Memory for large loader outputs (whole cines), kept when they are freed and handed to the next one.

glibc maps every block above its largest adaptive mmap threshold (32 MiB on 64-bit Linux) fresh from the kernel and
unmaps it on free, so the kernel maps and zeroes each whole-cine output (96 frames of 512 x 512 float32: 100 MB)
again as it is written, at a cost in system time that varies from call to call and is highest when two threads
fault at once (`benchmarks/dicom_loading.py` times the cine with fresh and with reused memory). Smaller outputs stay
glibc's, which keeps and reuses them itself.

An output taken here is an ndarray over a block of memory. Every view, tensor and MetaTensor made from it keeps one
owner object alive (the ctypes array its data live in); when the last of them is freed, a finalizer returns the
block to the free list, which keeps at most `limit()` bytes (oldest dropped first), and the next output that fits
the block (at most twice its size) is written there instead of into fresh pages. So memory is reused only once
nothing can reach it, and a process keeps at most `limit()` bytes of freed outputs (`set_limit(0)`: none). A forked
child (a DataLoader worker) starts with an empty free list.
"""

from __future__ import annotations

import ctypes
import math
import os
import threading
import weakref
from collections import deque

import numpy as np

RECYCLED_FROM = 32 << 20
_DEFAULT_LIMIT = 256 << 20
# Reentrant: the garbage collector may run a finalizer (`_give_back`) inside a locked section of the same thread.
# Every section iterates over a snapshot of _FREE, which such a finalizer may change.
_LOCK = threading.RLock()
_FREE: deque = deque()
_limit = _DEFAULT_LIMIT


class _Block:
    """A freed block (uint8 array) in the free list, which finds and removes it by identity."""

    __slots__ = ("array",)

    def __init__(self, array: np.ndarray):
        self.array = array


def empty_float32(shape: tuple[int, ...]) -> np.ndarray:
    """An uninitialised C-contiguous float32 array of `shape`, e.g. (N, W, H) frames; in a freed block of this module
    when it needs at least RECYCLED_FROM bytes and fits the limit, from numpy otherwise."""
    nbytes = 4 * math.prod(shape)
    if nbytes < RECYCLED_FROM or nbytes > _limit:
        return np.empty(shape, np.float32)
    block = _take(nbytes)
    if block is None:
        block = np.empty(nbytes, np.uint8)
    owner = (ctypes.c_char * nbytes).from_buffer(block)
    weakref.finalize(owner, _give_back, block).atexit = False
    return np.frombuffer(owner, np.float32).reshape(shape)


def limit() -> int:
    """Bytes of freed outputs a process keeps at most (256 MiB unless `set_limit` changed it)."""
    return _limit


def set_limit(nbytes: int) -> None:
    """Keeps at most `nbytes` of freed outputs from now on (0: none; the blocks kept now beyond it are dropped)."""
    global _limit
    if nbytes < 0:
        raise ValueError(f"the limit is a number of bytes >= 0, got {nbytes}")
    with _LOCK:
        _limit = int(nbytes)
        _trim()


def clear() -> None:
    """Drops every freed block kept (outputs in use are not affected); the next large output is fresh memory."""
    with _LOCK:
        _FREE.clear()


def kept_bytes() -> int:
    """Bytes of freed blocks kept now."""
    with _LOCK:
        return sum(b.array.nbytes for b in list(_FREE))


def _take(nbytes: int) -> np.ndarray | None:
    """The smallest kept block of nbytes to 2 * nbytes bytes, removed from the free list; None when none fits."""
    with _LOCK:
        fits = [b for b in list(_FREE) if nbytes <= b.array.nbytes <= 2 * nbytes]
        if not fits:
            return None
        best = min(fits, key=lambda b: b.array.nbytes)
        try:
            _FREE.remove(best)
        except ValueError:  # dropped meanwhile by a finalizer's `_trim`
            return None
        return best.array


def _give_back(block: np.ndarray) -> None:
    with _LOCK:
        _FREE.append(_Block(block))
        _trim()


def _trim() -> None:
    while _FREE and kept_bytes() > _limit:
        try:
            _FREE.popleft()
        except IndexError:
            break


def _reset_in_child() -> None:
    global _LOCK
    _LOCK = threading.RLock()
    _FREE.clear()


os.register_at_fork(after_in_child=_reset_in_child)

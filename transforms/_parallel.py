"""Independent pieces of CPU work spread over torch's threads, one piece per thread at a time.

Torch parallelises each operation over its intra-op threads and joins them at the end of every operation. For
thousands of short operations (the Hessian engine's per-image passes) on cores shared with other processes, each join
waits for the slowest thread, and one thread descheduled by the OS stalls them all: on a 2-core machine at load 5,
Frangi (512², sigmas 1-5) took 0.5-0.7 s per image with two intra-op threads, 0.12-0.15 s with one, 0.08-0.09 s as
here (same process, alternating). Here each worker thread runs its own pieces with one intra-op thread, and the
pieces are handed out as workers free up, so a slowed worker delays only its own piece.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch

_LOCK = threading.Lock()
_ACTIVE = [0, 0]  # calls in progress, torch's thread count before the first of them


def run_pieces(fn: Callable[[int], None], n: int, device: torch.device) -> None:
    """Calls ``fn(i)`` for i in range(n): serially on a non-CPU device, with one torch thread, or for a single
    piece; otherwise on min(n, torch threads) worker threads with one intra-op thread each (grad mode of the caller
    kept). Each worker takes the next piece as it frees up, from an order that interleaves `workers` blocks of
    consecutive pieces (0, n/2, 1, n/2 + 1, ... for two), so that each worker mostly runs a block of its own: pieces
    that write to one output then write to distant parts of it (a 96-frame cine normalised on two threads took 16-17
    ms this way, 17-24 ms in plain order, when workers wrote to the same fresh huge pages). When pieces raise, no
    worker starts another piece and the error of the lowest piece that raised is raised. torch's thread count is
    restored when the last concurrent call ends."""
    threads = torch.get_num_threads()
    workers = min(n, threads)
    if device.type != "cpu" or workers <= 1:
        for i in range(n):
            fn(i)
        return
    grad = torch.is_grad_enabled()
    size = -(-n // workers)
    order = [b * size + j for j in range(size) for b in range(workers) if b * size + j < n]
    positions = itertools.count()  # next() on it is atomic under the GIL
    errors: dict = {}

    def worker() -> None:
        torch.set_num_threads(1)
        with torch.set_grad_enabled(grad):
            while (position := next(positions)) < n and not errors:
                i = order[position]
                try:
                    fn(i)
                except BaseException as exc:
                    errors[i] = exc
                    return

    with _LOCK:
        if _ACTIVE[0] == 0:
            _ACTIVE[1] = threads
        _ACTIVE[0] += 1
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for future in [pool.submit(worker) for _ in range(workers)]:
                future.result()
    finally:
        with _LOCK:
            _ACTIVE[0] -= 1
            if _ACTIVE[0] == 0:
                torch.set_num_threads(_ACTIVE[1])
    if errors:
        raise errors[min(errors)]

"""transforms.io.memory: large loader outputs reuse freed memory, and only once nothing can reach it."""

import gc
import pickle
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from transforms.io import LoadAngiogram, files, memory

CINE = Path(__file__).resolve().parents[1] / "sample_data" / "xa_cine" / "XA_coronary_cine_96frames_jpeg_baseline.dcm"


@pytest.fixture(autouse=True)
def empty_pool():
    limit = memory.limit()
    memory.clear()
    yield
    memory.set_limit(limit)
    memory.clear()


@pytest.fixture
def small_blocks(monkeypatch):
    """Outputs of 4 KiB and more go through the pool, so that small arrays exercise it."""
    monkeypatch.setattr(memory, "RECYCLED_FROM", 4096)


def test_a_freed_cine_output_is_reused_only_when_no_view_of_it_is_left():
    load = LoadAngiogram()
    files.clear_cache()
    first = load(CINE)
    assert first.numel() * 4 >= memory.RECYCLED_FROM
    reference = first.clone()
    address = first.data_ptr()
    frame, array = first[3], first.numpy()[5]
    del first
    gc.collect()
    assert memory.kept_bytes() == 0
    second = load(CINE)
    assert second.data_ptr() != address
    assert torch.equal(frame, reference[3]) and np.array_equal(array, reference[5].numpy())
    del frame, array
    gc.collect()
    assert memory.kept_bytes() == reference.numel() * 4
    third = load(CINE)
    assert third.data_ptr() == address
    assert torch.equal(third, reference) and torch.equal(second, reference)
    copy = pickle.loads(pickle.dumps(third))
    del third
    assert torch.equal(copy, reference) and copy.meta["frame_index"] == -1


def test_nothing_is_kept_with_limit_zero_and_small_outputs_are_numpys():
    memory.set_limit(0)
    out = memory.empty_float32((96, 512, 512))
    assert out.base is None and out.dtype == np.float32 and out.flags.c_contiguous
    del out
    assert memory.kept_bytes() == 0
    memory.set_limit(256 << 20)
    assert memory.empty_float32((1, 300, 300)).base is None
    with pytest.raises(ValueError, match="bytes >= 0"):
        memory.set_limit(-1)


def test_best_fit_within_twice_the_size_and_the_limit_drops_the_oldest(small_blocks):
    a, b = memory.empty_float32((4, 1024)), memory.empty_float32((2, 1024))
    big, small = a.ctypes.data, b.ctypes.data
    del a, b
    assert memory.kept_bytes() == 6 * 4096
    c = memory.empty_float32((2, 1024))
    assert c.ctypes.data == small and c.shape == (2, 1024)
    d = memory.empty_float32((1, 1024))
    assert d.ctypes.data != big
    e = memory.empty_float32((3, 1024))
    assert e.ctypes.data == big and e.shape == (3, 1024)
    del c, d, e
    assert memory.kept_bytes() == (2 + 1 + 4) * 4096
    memory.set_limit(5 * 4096)
    assert memory.kept_bytes() == (1 + 4) * 4096
    memory.set_limit(4 * 4096)
    assert memory.kept_bytes() == 4 * 4096
    assert memory.empty_float32((4, 1024)).ctypes.data == big


def test_outputs_in_use_never_share_memory_across_threads(small_blocks):
    failures = []

    def work(value: float) -> None:
        for _ in range(300):
            out = memory.empty_float32((2, 1024))
            out.fill(value)
            view = out[1]
            del out
            if not np.all(view == value):
                failures.append(value)

    threads = [threading.Thread(target=work, args=(float(i),)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures


def test_a_finalizer_run_by_the_garbage_collector_inside_a_locked_section_does_not_deadlock(small_blocks):
    holder = {"output": memory.empty_float32((2, 1024))}
    holder["self"] = holder  # a cycle: only the garbage collector frees it
    del holder
    done = threading.Event()

    def collect_while_locked() -> None:
        with memory._LOCK:
            gc.collect()
        done.set()

    thread = threading.Thread(target=collect_while_locked, daemon=True)
    thread.start()
    thread.join(30)
    assert done.is_set() and memory.kept_bytes() == 2 * 4096

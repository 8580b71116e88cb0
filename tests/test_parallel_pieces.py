"""transforms._parallel.run_pieces: every piece once, one intra-op thread per worker, grad mode and torch's thread
count kept (also after an error), pieces handed out in interleaved blocks."""

import threading

import pytest
import torch

from transforms._parallel import run_pieces


def test_pieces_run_once_each_on_workers_with_one_thread(two_threads):
    seen, lock = [], threading.Lock()

    def piece(i):
        with lock:
            seen.append((i, torch.get_num_threads(), torch.is_grad_enabled(), threading.get_ident()))

    with torch.no_grad():
        run_pieces(piece, 6, torch.device("cpu"))
    assert sorted(s[0] for s in seen) == list(range(6))
    assert {s[1] for s in seen} == {1} and {s[2] for s in seen} == {False}
    assert threading.get_ident() not in {s[3] for s in seen}
    assert torch.get_num_threads() == 2


def test_single_piece_or_one_thread_runs_in_the_caller(two_threads):
    idents = []
    run_pieces(lambda i: idents.append(threading.get_ident()), 1, torch.device("cpu"))
    torch.set_num_threads(1)
    run_pieces(lambda i: idents.append(threading.get_ident()), 3, torch.device("cpu"))
    assert set(idents) == {threading.get_ident()} and torch.get_num_threads() == 1


def test_an_error_in_a_piece_propagates_and_restores_the_threads(two_threads):
    def piece(i):
        if i == 2:
            raise ValueError("piece 2")

    with pytest.raises(ValueError, match="piece 2"):
        run_pieces(piece, 4, torch.device("cpu"))
    assert torch.get_num_threads() == 2


def test_after_an_error_no_worker_starts_another_piece(two_threads):
    started, lock = [], threading.Lock()

    def piece(i):
        with lock:
            started.append(i)
        raise ValueError(f"piece {i}")

    with pytest.raises(ValueError, match="piece 0"):
        run_pieces(piece, 6, torch.device("cpu"))
    assert 0 in started and len(started) <= 2 and torch.get_num_threads() == 2


def test_the_two_workers_start_at_the_two_ends_of_a_block_order(two_threads):
    firsts, lock, local = [], threading.Lock(), threading.local()
    gate = threading.Barrier(2)

    def piece(i):
        if not getattr(local, "started", False):
            local.started = True
            with lock:
                firsts.append(i)
            gate.wait(timeout=10)  # each worker holds its first piece until the other has taken one

    run_pieces(piece, 6, torch.device("cpu"))
    assert sorted(firsts) == [0, 3]

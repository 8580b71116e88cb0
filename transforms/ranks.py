"""Where this process stands in a torch.distributed job: rank, machine-local group, barrier, work done once.

Without an initialised process group every helper behaves as a single process (rank 0 of 1).
"""

from __future__ import annotations

import socket

import torch.distributed as dist

__all__ = ["barrier", "build_datalist_once", "machine_group", "rank0_result", "rank_world"]


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank_world() -> tuple[int, int]:
    """(global rank, world size); (0, 1) without a process group."""
    return (dist.get_rank(), dist.get_world_size()) if _active() else (0, 1)


def machine_group() -> tuple[int, int, str]:
    """(index of this rank among the ranks of its machine, number of ranks on the machine, host name).

    Machines are told apart by host name, so two torchrun "nodes" started on one machine are one machine here.
    """
    host = socket.gethostname()
    if not _active():
        return 0, 1, host
    hosts = [None] * dist.get_world_size()
    dist.all_gather_object(hosts, host)
    same = [r for r, h in enumerate(hosts) if h == host]
    return same.index(dist.get_rank()), len(same), host


def barrier() -> None:
    if _active():
        dist.barrier()


def rank0_result(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` run on rank 0 only; every rank returns rank 0's result (or raises its exception)."""
    if not _active():
        return fn(*args, **kwargs)
    box = [None]
    if dist.get_rank() == 0:
        try:
            box[0] = ("ok", fn(*args, **kwargs))
        except Exception as err:  # noqa: BLE001 - re-raised on every rank below
            box[0] = ("error", err)
    dist.broadcast_object_list(box, src=0)
    status, value = box[0]
    if status == "error":
        raise value
    return value


def build_datalist_once(**kwargs) -> list[dict]:
    """:func:`transforms.dataset_check.build_datalist` run by rank 0 alone, its data list sent to every rank."""
    from .dataset_check import build_datalist

    return rank0_result(build_datalist, **kwargs)

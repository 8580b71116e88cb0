"""Helper run by tests/test_frame_cache.py under torchrun (gloo): builds a FrameCacheDataset whose vesselness calls
are counted, then draws one DistributedSampler epoch. Usage: frame_cache_ranks.py DATALIST_JSON OUT_DIR MODE CACHE_DIR
[LAG]: with LAG seconds, rank 1 reads the disk store's row states that much later than rank 0 (a loaded machine).

Writes OUT_DIR/calls-<rank>.txt (one "path|frame" line per vesselness computed by that rank) and
OUT_DIR/rank-<rank>.json
({"computed": [...], "seen": [(path, frame), ...], "len": n}).
"""

import json
import sys
import time
from pathlib import Path

import torch.distributed as dist
from monai.data import DistributedSampler
from monai.transforms import Compose, EnsureTyped, Resized, SelectItemsd

from transforms import FrangiVesselnessd, LoadAngiogramd, VesselPseudoMaskd
from transforms.frame_cache import FrameCacheDataset
from transforms.frame_store import DiskRows

KEYS = ["image", "vessel_mask"]


class CountedVesselness:
    """FrangiVesselnessd that appends "path|frame" to `log` at each call."""

    def __init__(self, log: Path):
        self.inner = FrangiVesselnessd("image", sigmas=[1, 2])
        self._log = log

    def __call__(self, d):
        with open(self._log, "a") as f:
            f.write(f"{d['image'].meta['filename_or_obj']}|{d['frame']}\n")
        return self.inner(d)


def lag_states(seconds: float) -> None:
    """Delays each ``DiskRows.states`` call of this process by ``seconds``."""
    states = DiskRows.states

    def late(self):
        time.sleep(seconds)
        return states(self)

    DiskRows.states = late


def main(datalist_json, out_dir, mode, cache_dir, lag="0"):
    dist.init_process_group("gloo")
    rank, out = dist.get_rank(), Path(out_dir)
    if rank == 1 and float(lag) > 0:
        lag_states(float(lag))
    data = json.loads(Path(datalist_json).read_text())
    transform = Compose([
        LoadAngiogramd("image"), Resized("image", (32, 32), mode="area"), CountedVesselness(out / f"calls-{rank}.txt"),
        VesselPseudoMaskd("vesselness", border=2), EnsureTyped(KEYS, track_meta=False), SelectItemsd(KEYS),
    ])
    ds = FrameCacheDataset(data, transform, (32, 32), mode=mode, cache_dir=cache_dir, progress=False)
    sampler = DistributedSampler(ds, shuffle=True, even_divisible=True)
    sampler.set_epoch(0)
    entries = [data[i] for i in range(len(data)) if i not in ds.rejected]
    seen = [(entries[i]["image"], entries[i]["frame"]) for i in sampler]
    record = {"computed": ds.computed, "seen": seen, "len": len(ds)}
    (out / f"rank-{rank}.json").write_text(json.dumps(record))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:6])

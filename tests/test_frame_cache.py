"""FrameCacheDataset: compact rows, disk reuse and invalidation, bad files, and the work split over 2 gloo ranks."""

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.transforms import Compose, EnsureTyped, Resized, SelectItemsd

import transforms.frame_cache as frame_cache
from transforms import FrangiVesselnessd, LoadAngiogramd, VesselPseudoMaskd
from transforms.frame_cache import FrameCacheDataset, transform_fingerprint
from transforms.frame_store import decode_row, encode_row, row_bytes

REPO = Path(__file__).resolve().parents[1]
DCA = sorted((REPO / "sample_data" / "dca" / "images").glob("*.dcm"))
CINE = REPO / "sample_data" / "xa_cine" / "XA_coronary_cine_96frames_jpeg_baseline.dcm"
KEYS = ["image", "vessel_mask"]
SIZE = (32, 32)


class Counting:
    """Counts the calls of a dictionary transform (the counter is private, so it is not part of the fingerprint)."""

    def __init__(self, inner):
        self.inner, self._calls = inner, []

    def __call__(self, d):
        self._calls.append((str(d["image"].meta["filename_or_obj"]), d["frame"]))
        return self.inner(d)


def pipeline(sigmas=(1, 2), keys=KEYS):
    vesselness = Counting(FrangiVesselnessd("image", sigmas=list(sigmas)))
    return vesselness, Compose([
        LoadAngiogramd("image"), Resized("image", SIZE, mode="area"), vesselness,
        VesselPseudoMaskd("vesselness", border=2), EnsureTyped(keys, track_meta=False), SelectItemsd(keys),
    ])


def copies(tmp_path, n=3):
    root = tmp_path / "data"
    root.mkdir()
    for p in DCA[:n]:
        (root / p.name).write_bytes(p.read_bytes())
    return [{"image": str(p), "frame": None} for p in sorted(root.iterdir())]


def test_row_encoding_is_compact_and_close():
    rng = np.random.default_rng(0)
    image, mask = rng.random((256, 256)), rng.random((256, 256)) > 0.9
    raw = encode_row(image, mask)
    assert set(raw) == {"image", "vessel_mask"}
    assert sum(len(v) for v in raw.values()) == row_bytes((256, 256)) == 256 * 256 * 17 // 8
    assert row_bytes((256, 256)) <= 3 * 4 * 256 * 256 / 4, "must be under a quarter of three float32 maps"
    out = decode_row(raw, (256, 256))
    assert set(out) == {"image", "vessel_mask"}
    assert np.abs(out["image"][0] - image).max() <= 0.5 / 65535 + 1e-7
    assert np.array_equal(out["vessel_mask"][0], mask.astype(np.float32))


@pytest.mark.parametrize("mode", ["ram", "disk"])
def test_items_match_the_transforms(tmp_path, mode):
    data = copies(tmp_path)
    _, transform = pipeline(keys=["image", "vesselness", "vessel_mask"])
    ds = FrameCacheDataset(data, transform, SIZE, mode=mode, cache_dir=tmp_path / "cache", workers=2)
    assert len(ds) == 3 and sorted(ds.computed) == [0, 1, 2]
    for i, entry in enumerate(data):
        ref, item = transform(dict(entry)), ds[i]
        assert set(item) == set(KEYS), "only the image and the pseudo-mask are stored, not the vesselness"
        for k in KEYS:
            assert item[k].dtype == torch.float32 and item[k].shape == (1, *SIZE)
        assert torch.allclose(item["image"], ref["image"], atol=1e-5)
        assert torch.equal(item["vessel_mask"], ref["vessel_mask"])


def test_disk_cache_is_reused_and_invalidated(tmp_path):
    data, cache = copies(tmp_path), tmp_path / "cache"
    counter, transform = pipeline()
    first = FrameCacheDataset(data, transform, SIZE, mode="disk", cache_dir=cache)
    assert len(counter._calls) == 3
    again = FrameCacheDataset(data, pipeline()[1], SIZE, mode="disk", cache_dir=cache)
    assert again.computed == [] and len(again) == 3
    assert all(torch.equal(first[i][k], again[i][k]) for i in range(3) for k in KEYS)

    changed = Path(data[1]["image"])
    st = changed.stat()
    os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    counter, transform = pipeline()
    touched = FrameCacheDataset(data, transform, SIZE, mode="disk", cache_dir=cache)
    assert touched.computed == [1] and counter._calls == [(str(changed), 0)]

    counter, transform = pipeline(sigmas=(1, 3))
    assert transform_fingerprint(transform, SIZE) != transform_fingerprint(pipeline()[1], SIZE)
    other = FrameCacheDataset(data, transform, SIZE, mode="disk", cache_dir=cache)
    assert sorted(other.computed) == [0, 1, 2] and len(counter._calls) == 3
    assert len([d for d in cache.iterdir() if d.is_dir()]) == 2


def test_store_of_an_older_layout_is_not_read(tmp_path, monkeypatch):
    """A disk store written with another row layout (format version 1 stored an fp16 vesselness too) lives in
    another folder: the frames are computed again, not read through the new layout."""
    data, cache = copies(tmp_path), tmp_path / "cache"
    monkeypatch.setattr(frame_cache, "FORMAT_VERSION", frame_cache.FORMAT_VERSION - 1)
    FrameCacheDataset(data, pipeline()[1], SIZE, mode="disk", cache_dir=cache)
    monkeypatch.undo()
    counter, transform = pipeline()
    current = FrameCacheDataset(data, transform, SIZE, mode="disk", cache_dir=cache)
    assert sorted(current.computed) == [0, 1, 2] and len(counter._calls) == 3
    assert len([d for d in cache.iterdir() if d.is_dir()]) == 2


@pytest.mark.parametrize("mode", ["ram", "disk"])
def test_bad_file_gives_one_manifest_line_and_the_rest_is_cached(tmp_path, mode):
    data = copies(tmp_path, 2)
    bad = tmp_path / "data" / "truncated.dcm"
    bad.write_bytes(DCA[2].read_bytes()[:2000])
    data += [{"image": str(bad), "frame": None}]
    manifest = tmp_path / "datalist_manifest.json"
    manifest.write_text(json.dumps({"accepted": [], "rejected": [], "counts": {"rejected_files": 0}}))
    ds = FrameCacheDataset(data, pipeline()[1], SIZE, mode=mode, cache_dir=tmp_path / "cache",
                           manifest_path=manifest)
    assert len(ds) == 2 and list(ds.rejected) == [2]
    m = json.loads(manifest.read_text())
    assert [r["image"] for r in m["rejected"]] == [str(bad)] and m["rejected"][0]["stage"] == "cache"
    assert m["counts"]["rejected_files"] == 1 and m["counts"]["cached_entries"] == 2
    assert torch.isfinite(ds[1]["image"]).all()


@pytest.mark.parametrize("mode, lag", [("disk", 0), ("ram", 0), ("disk", 2)])
def test_two_gloo_ranks_compute_each_vesselness_once(tmp_path, mode, lag):
    """2 ranks on one machine: every frame's vesselness is computed by exactly one rank, both ranks share the work,
    and over an epoch the DistributedSampler gives each rank its share of every cached frame. With a lag, rank 1
    reads the disk store's row states 2 s after rank 0 (as on a loaded machine): rank 0 must not have written rows
    by then, or the two ranks split different lists (a frame computed twice, another never: it was then rejected)."""
    data = [{"image": str(p), "frame": None} for p in DCA[:12]] + [{"image": str(CINE), "frame": f}
                                                                  for f in range(0, 96, 8)]
    datalist = tmp_path / "datalist.json"
    datalist.write_text(json.dumps(data))
    out = tmp_path / "out"
    out.mkdir()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(REPO / "tests" / "frame_cache_ranks.py"), str(datalist), str(out), mode, str(tmp_path / "cache"),
           str(lag)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=240, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-6000:]
    calls = [line for r in (0, 1) for line in (out / f"calls-{r}.txt").read_text().splitlines()]
    expected = {f"{d['image']}|{0 if d['frame'] is None else d['frame']}" for d in data}
    assert Counter(calls) == Counter(expected), "each frame's vesselness must be computed exactly once"
    records = [json.loads((out / f"rank-{r}.json").read_text()) for r in (0, 1)]
    assert sorted(len(r["computed"]) for r in records) == [len(data) // 2, len(data) - len(data) // 2]
    assert all(r["len"] == len(data) for r in records)
    seen = [tuple(s) for r in records for s in r["seen"]]
    assert len(records[0]["seen"]) == len(records[1]["seen"]) == len(data) // 2
    assert set(seen) == {(d["image"], d["frame"]) for d in data}

"""Datalist check: parallel over files, results reused for unchanged files; archive frame policies."""

import json
import os
import shutil
from pathlib import Path

import pytest

from transforms import check_cache
from transforms.dataset_check import build_datalist
from transforms.frame_policy import parse_frame_policy, select_archive_frames

REPO = Path(__file__).resolve().parents[1]
DCA = sorted((REPO / "sample_data" / "dca" / "images").glob("*.dcm"))
CINE = REPO / "sample_data" / "xa_cine" / "XA_coronary_cine_96frames_jpeg_baseline.dcm"


@pytest.fixture
def archive(tmp_path):
    root = tmp_path / "archive"
    root.mkdir()
    for p in DCA[:4]:
        shutil.copy(p, root)
    shutil.copy(CINE, root / "cine.dcm")
    (root / "broken.dcm").write_bytes(DCA[0].read_bytes()[:1500])
    return root


@pytest.fixture
def counted(monkeypatch):
    calls = []
    original = check_cache.check_one

    def counting(path, decode, frame_policy):
        calls.append(Path(path).name)
        return original(path, decode, frame_policy)

    monkeypatch.setattr(check_cache, "check_one", counting)
    return calls


def test_rerun_reuses_results_of_unchanged_files(archive, tmp_path, counted):
    cache = tmp_path / "cache"
    first = build_datalist(archive, manifest_path=tmp_path / "m1.json", check_cache_dir=cache)
    assert len(counted) == 6 and len(first) == 4 + 96
    counted.clear()
    again = build_datalist(archive, manifest_path=tmp_path / "m2.json", check_cache_dir=cache)
    assert counted == [] and again == first
    m1, m2 = (json.loads((tmp_path / n).read_text()) for n in ("m1.json", "m2.json"))
    assert m1["rejected"] == m2["rejected"] and [r["image"] for r in m2["rejected"]] == [str(archive / "broken.dcm")]

    st = (archive / "1.dcm").stat()
    os.utime(archive / "1.dcm", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    (archive / "broken.dcm").unlink()
    shutil.copy(DCA[5], archive / "new.dcm")
    assert len(build_datalist(archive, check_cache_dir=cache)) == 4 + 96 + 1
    assert sorted(counted) == ["1.dcm", "new.dcm"]
    counted.clear()
    build_datalist(archive, check_cache_dir=cache)
    assert counted == [], "the new and the changed file's results must have been kept"
    build_datalist(archive, frame_policy="every:8", check_cache_dir=cache)
    assert len(counted) == 6, "another frame policy is another check"


def test_parallel_check_gives_the_same_datalist(archive, tmp_path, monkeypatch):
    monkeypatch.setattr(check_cache, "_MIN_FILES_PER_WORKER", 1)
    serial = build_datalist(archive, frame_policy="max_frames:5", manifest_path=tmp_path / "a.json")
    parallel = build_datalist(archive, frame_policy="max_frames:5", workers=2, manifest_path=tmp_path / "b.json")
    assert parallel == serial
    a, b = (json.loads((tmp_path / n).read_text()) for n in ("a.json", "b.json"))
    assert a == b and b["frame_policy"] == "max_frames:5"


def test_archive_frame_policies():
    assert select_archive_frames(CINE, 96, "every:8") == list(range(0, 96, 8))
    assert select_archive_frames(CINE, 96, {"every": 40}) == [0, 40, 80]
    assert select_archive_frames(CINE, 96, "max_frames:4") == [0, 32, 63, 95]
    assert select_archive_frames(CINE, 3, {"max_frames": 4}) == [0, 1, 2]
    assert select_archive_frames(DCA[0], 1, "every:4") == [None]
    assert select_archive_frames(CINE, 96, "all") == list(range(96))
    assert select_archive_frames(CINE, 96, -1) == [95]
    assert parse_frame_policy("max_contrast") == "max_contrast"
    for bad in ("every:0", "every:x", {"each": 2}, "first", {"every": 2, "max_frames": 3}):
        with pytest.raises(ValueError):
            parse_frame_policy(bad)

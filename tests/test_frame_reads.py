"""The shortcuts of one frame read from its own bytes (`files.encoded_frame`) and of frames decoded and normalised on
torch's threads give what the general, serial route gives: values, meta and reasons."""

import os
import time
from io import BytesIO
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from PIL import Image
from pydicom.encaps import encapsulate, generate_frames, get_frame

from transforms.dataset_check import check_angiogram_file
from transforms.errors import AngiogramReadError
from transforms.io import decode, files, read_angiogram

from conftest import read_outcome

ROOT = Path(__file__).resolve().parents[1] / "sample_data"
CINE = ROOT / "xa_cine" / "XA_coronary_cine_96frames_jpeg_baseline.dcm"


def general(monkeypatch, fn):
    """`fn()` with the one-frame shortcut switched off: the whole file parsed and checked (`files.open_dicom`)."""
    with monkeypatch.context() as m:
        m.setattr(files, "encoded_frame", lambda *a: None)
        return read_outcome(fn)


def same(a, b) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return a[0].dtype == b[0].dtype and np.array_equal(a[0], b[0]) and a[1].keys() == b[1].keys() and all(
        a[1][k] == b[1][k] or a[1][k] != a[1][k] for k in a[1])


def aged(path: Path) -> Path:
    """`path` with its mtime an hour back, so that the parse cache keeps it."""
    hour_ago = time.time() - 3600
    os.utime(path, (hour_ago, hour_ago))
    return path


def read_bytes() -> int:
    with open("/proc/self/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("rchar"))


@pytest.mark.parametrize("frame", [0, 37, 95])
def test_one_frame_is_read_from_its_bytes_alone(monkeypatch, frame):
    files.clear_cache()
    monkeypatch.setattr(files, "read_dataset", lambda *a, **k: pytest.fail("the whole file was parsed"))
    found = files.encoded_frame(CINE, frame)
    assert found is not None and found[0].pixels is None
    assert found[1] == get_frame(pydicom.dcmread(CINE).PixelData, frame, number_of_frames=96)
    ours = read_outcome(lambda: read_angiogram(CINE, frame))
    monkeypatch.undo()
    assert same(ours, general(monkeypatch, lambda: read_angiogram(CINE, frame)))


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="counts bytes read through /proc/self/io")
def test_one_frame_read_reads_a_small_part_of_the_file():
    files.clear_cache()
    before = read_bytes()
    assert files.encoded_frame(CINE, 50) is not None
    assert read_bytes() - before < CINE.stat().st_size // 10


def test_the_header_of_a_cine_is_parsed_once(monkeypatch, tmp_path):
    path = tmp_path / "cine.dcm"
    path.write_bytes(CINE.read_bytes())
    aged(path)
    files.clear_cache()
    parses = []
    real = pydicom.dcmread
    monkeypatch.setattr(files.pydicom, "dcmread", lambda *a, **k: parses.append(1) or real(*a, **k))
    for frame in (3, 4, 90):
        read_angiogram(path, frame)
    assert len(parses) == 1


def cut(data: bytes, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return aged(path)


def test_odd_files_take_the_general_route_with_its_reasons(monkeypatch, tmp_path):
    data = CINE.read_bytes()
    ds = pydicom.dcmread(CINE)
    frames = list(generate_frames(ds.PixelData, number_of_frames=96))
    ds.NumberOfFrames = 120
    ds.save_as(tmp_path / "more_frames.dcm")
    no_pixels = pydicom.dcmread(CINE, stop_before_pixels=True)
    no_pixels.save_as(tmp_path / "no_pixels.dcm")
    ds = pydicom.dcmread(CINE)
    ds.PixelData = pydicom.encaps.encapsulate(frames[:4], has_bot=False)
    ds.NumberOfFrames = 4
    ds.save_as(tmp_path / "no_bot.dcm")
    ds = pydicom.dcmread(CINE)
    ds.ImageComments = "x" * 40000
    ds.save_as(tmp_path / "long_header.dcm")
    at = data.index(b"\xe0\x7f\x10\x00OB") + 16
    huge_table = data[:at] + b"\xff\xff\xff\xff" + data[at + 4:]
    paths = [cut(huge_table, tmp_path, "huge_offset_table.dcm"), cut(data[: len(data) // 2], tmp_path, "half.dcm"),
             cut(data[:-4], tmp_path, "no_delimiter_length.dcm"),
             cut(data + b"\0" * 16, tmp_path, "trailing.dcm"), aged(tmp_path / "more_frames.dcm"),
             aged(tmp_path / "no_pixels.dcm"), aged(tmp_path / "no_bot.dcm"), aged(tmp_path / "long_header.dcm")]
    for path in paths:
        for frame in (0, 2, 95, 119, -1):
            ours = read_outcome(lambda p=path, f=frame: read_angiogram(p, f))
            assert same(ours, general(monkeypatch, lambda p=path, f=frame: read_angiogram(p, f))), (path.name, frame)
    files.clear_cache()
    assert all(files.encoded_frame(paths[k], 0) is None for k in (0, 1, 3))
    assert files.encoded_frame(paths[6], 2) is not None and files.encoded_frame(paths[7], 2) is not None


def test_a_broken_fragment_fails_its_own_frame_and_the_file_check(monkeypatch, tmp_path):
    data = CINE.read_bytes()
    ds = pydicom.dcmread(CINE, stop_before_pixels=True)
    offsets = pydicom.encaps.parse_basic_offsets(BytesIO(pydicom.dcmread(CINE).PixelData))
    first = data.index(b"\xe0\x7f\x10\x00OB") + 12 + 8 + 4 * len(offsets)
    at = first + offsets[40]
    assert data[at:at + 4] == files.ITEM and ds.NumberOfFrames == 96
    path = cut(data[:at] + b"\0\0\0\0" + data[at + 4:], tmp_path, "broken_fragment.dcm")
    files.clear_cache()
    assert files.encoded_frame(path, 40) is None
    reason = general(monkeypatch, lambda: read_angiogram(path, 40))
    assert isinstance(reason, str) and read_outcome(lambda: read_angiogram(path, 40)) == reason
    assert np.array_equal(read_angiogram(path, 2)[0], read_angiogram(CINE, 2)[0])
    whole_file = general(monkeypatch, lambda: read_angiogram(path, 2))
    assert isinstance(whole_file, str) and check_angiogram_file(path) == [whole_file]


def test_a_frame_read_costs_the_same_few_reads_wherever_the_frame_is(monkeypatch):
    reads = []
    real = files._read_at
    monkeypatch.setattr(files, "_read_at", lambda *a: reads.append(1) or real(*a))
    counts = []
    for frame in (0, 50, 95):
        files.clear_cache()
        reads.clear()
        assert files.encoded_frame(CINE, frame) is not None
        counts.append(len(reads))
    assert counts[0] == counts[1] == counts[2] < 10


def serially(fn):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return read_outcome(fn)
    finally:
        torch.set_num_threads(threads)


def test_threaded_decode_and_normalise_equal_serial(two_threads, monkeypatch):
    pieces = []
    real = decode._pillow_frames
    monkeypatch.setattr(decode, "_pillow_frames", lambda *a: pieces.append(1) or real(*a))
    threaded = read_outcome(lambda: read_angiogram(CINE))
    assert pieces and serially(lambda: read_angiogram(CINE)) is not None
    assert same(threaded, serially(lambda: read_angiogram(CINE)))
    assert same(read_outcome(lambda: read_angiogram(CINE, None, "")), serially(lambda: read_angiogram(CINE, None, "")))


def test_frames_handed_over_on_threads_report_the_first_failing_frame(two_threads, tmp_path):
    image = files.open_angiogram(CINE)
    handed = []

    def fn(k, arr):
        handed.append(k)
        if k in (2, 40):
            raise AngiogramReadError("x", f"frame {k} fails")

    with pytest.raises(AngiogramReadError, match=r"frame 2 fails"):
        decode.each_frame(CINE, image, range(96), None, fn)
    assert sorted(handed) == list(range(96))  # every frame decoded: a decoding error anywhere comes first
    constant = BytesIO()
    Image.fromarray(np.full((512, 512), 40, np.uint8)).save(constant, "JPEG")
    good = [get_frame(pydicom.dcmread(CINE).PixelData, k, number_of_frames=96) for k in range(4)]
    ds = pydicom.dcmread(CINE)
    ds.PixelData = encapsulate([good[0], good[1], constant.getvalue(), good[2], constant.getvalue(), good[3]],
                               has_bot=True)
    ds.NumberOfFrames = 6
    ds.save_as(tmp_path / "constant.dcm")
    threaded = read_outcome(lambda: read_angiogram(tmp_path / "constant.dcm"))
    assert threaded == "constant image (frame 2): every pixel is 40"
    assert serially(lambda: read_angiogram(tmp_path / "constant.dcm")) == threaded

"""Every bad-input class -> its reason and AngiogramReadError; manifest; strict mode; the run goes on."""

import json
import logging
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate, generate_frames
from pydicom.pixels import pixel_array
from pydicom.uid import MPEG4HP41, ExplicitVRLittleEndian, JPEG2000Lossless, RLELossless

from transforms.dataset_check import build_datalist, check_angiogram_file
from transforms.errors import AngiogramReadError
from transforms.io import LoadAngiogram, decode

ROOT = Path(__file__).resolve().parents[1] / "sample_data"
CINE = ROOT / "xa_cine" / "XA_coronary_cine_96frames_jpeg_baseline.dcm"
DCA = sorted((ROOT / "dca" / "images").glob("*.dcm"))
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "dicom"


def four_frames(tmp_path, name="four.dcm", **changes):
    ds = pydicom.dcmread(CINE)
    arr = np.stack([pixel_array(ds, index=i, decoding_plugin="pillow") for i in range(4)])
    ds.PixelData = arr.tobytes()
    ds["PixelData"].VR = "OB"
    ds.NumberOfFrames = 4
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    for key, value in changes.items():
        setattr(ds, key, value)
    ds.save_as(tmp_path / name, enforce_file_format=True)
    return tmp_path / name


def bad_files(tmp_path):
    """{name: (path, reason fragment)} of bad inputs derived from the sample cine and DCA images."""
    out = {}
    base = four_frames(tmp_path)
    ds = pydicom.dcmread(base)

    ds.NumberOfFrames = 6
    ds.save_as(tmp_path / "nframes.dcm")
    out["frames_mismatch"] = (tmp_path / "nframes.dcm", "NumberOfFrames is 6 but the pixel data holds only 4")

    one = pydicom.dcmread(DCA[0])
    one.PixelData = one.PixelData[: len(one.PixelData) // 2]
    one.save_as(tmp_path / "short.dcm")
    out["short"] = (tmp_path / "short.dcm", "pixel data shorter than declared")

    ds = pydicom.dcmread(base)
    del ds.PixelData
    ds.save_as(tmp_path / "nopix.dcm")
    out["no_pixel_data"] = (tmp_path / "nopix.dcm", "no pixel data")

    data = CINE.read_bytes()
    (tmp_path / "truncated.dcm").write_bytes(data[: len(data) // 2])
    out["truncated"] = (tmp_path / "truncated.dcm", "truncated or not a DICOM file")

    (tmp_path / "notes.dcm").write_text("this is not an image\n" * 20)
    out["not_dicom"] = (tmp_path / "notes.dcm", "not a DICOM file or a supported image")

    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50)
    out["broken_png"] = (tmp_path / "broken.png", "not a readable image file")

    ds = pydicom.dcmread(base)
    ds.PhotometricInterpretation = "PALETTE COLOR"
    ds.save_as(tmp_path / "palette.dcm")
    out["palette"] = (tmp_path / "palette.dcm", "unsupported photometric interpretation 'PALETTE COLOR'")

    const = pydicom.dcmread(DCA[0])
    const.PixelData = bytes(len(const.PixelData))
    const.save_as(tmp_path / "constant.dcm")
    out["constant"] = (tmp_path / "constant.dcm", "constant image")

    cine = pydicom.dcmread(CINE)
    cine.file_meta.TransferSyntaxUID = MPEG4HP41
    cine.save_as(tmp_path / "mpeg.dcm")
    out["unsupported_ts"] = (tmp_path / "mpeg.dcm", "unsupported transfer syntax")

    cine = pydicom.dcmread(CINE)
    cine.PixelData = cine.PixelData[:600] + b"\x00" * 64
    cine.save_as(tmp_path / "garbled.dcm")
    out["garbled_jpeg"] = (tmp_path / "garbled.dcm", "")
    return out


def test_each_bad_input_gives_its_reason(tmp_path):
    for name, (path, fragment) in bad_files(tmp_path).items():
        reasons = check_angiogram_file(path)
        assert len(reasons) == 1 and fragment in reasons[0], (name, reasons)
        with pytest.raises(AngiogramReadError) as info:
            LoadAngiogram()(path, 0)
        assert info.value.path == str(path) and str(path) in str(info.value)


def test_missing_codec_names_the_package(tmp_path, monkeypatch):
    path = tmp_path / "j2k.dcm"
    ds = pydicom.dcmread(four_frames(tmp_path))
    ds.compress(JPEG2000Lossless)
    ds.save_as(path)
    assert check_angiogram_file(path) == []
    decoder = decode.get_decoder(JPEG2000Lossless)
    monkeypatch.setattr(decoder, "_available", {})
    reasons = check_angiogram_file(path)
    assert "no decoder plugin installed" in reasons[0] and "pylibjpeg-openjpeg" in reasons[0]


def test_broken_stream_names_a_codec_only_when_it_is_missing(tmp_path, monkeypatch):
    ds = pydicom.dcmread(four_frames(tmp_path))
    ds.compress(JPEG2000Lossless)
    frames = list(generate_frames(ds.PixelData, number_of_frames=4))
    ds.PixelData = encapsulate([frames[0][:40] + bytes(len(frames[0]) - 40)] + frames[1:])
    ds.save_as(tmp_path / "broken_j2k.dcm")
    [reason] = check_angiogram_file(tmp_path / "broken_j2k.dcm")
    assert "cannot decode frame 0" in reason and "stream is most likely corrupt" in reason
    assert "pylibjpeg-openjpeg" not in reason and "install " not in reason
    real = decode.importlib.util.find_spec
    monkeypatch.setattr(decode.importlib.util, "find_spec", lambda n: None if n == "openjpeg" else real(n))
    [reason] = check_angiogram_file(tmp_path / "broken_j2k.dcm")
    assert "installing pylibjpeg-openjpeg may help" in reason


def test_valid_variants_are_accepted(tmp_path):
    base = four_frames(tmp_path)
    rle = pydicom.dcmread(base)
    rle.compress(RLELossless)
    rle.save_as(tmp_path / "rle.dcm")
    no_meta = pydicom.dcmread(DCA[0])
    del no_meta.file_meta
    no_meta.preamble = None
    no_meta.save_as(tmp_path / "nometa.dcm", implicit_vr=True, little_endian=True, enforce_file_format=False)
    assert (tmp_path / "nometa.dcm").read_bytes()[128:132] != b"DICM"
    for path in (base, tmp_path / "rle.dcm", tmp_path / "nometa.dcm"):
        assert check_angiogram_file(path) == [], path
    np.testing.assert_array_equal(LoadAngiogram()(tmp_path / "nometa.dcm").numpy(), LoadAngiogram()(DCA[0]).numpy())
    np.testing.assert_array_equal(LoadAngiogram()(tmp_path / "rle.dcm", 2).numpy(), LoadAngiogram()(base, 2).numpy())


@pytest.mark.parametrize(
    "name, fragment",
    [
        ("rtplan_truncated.dcm", "not a DICOM image"),
        ("no_meta.dcm", "not a DICOM file"),
        ("MR_truncated.dcm", "pixel data shorter than declared"),
        ("MR_small_RLE.dcm", None),
        ("MR_small_jpeg_ls_lossless.dcm", None),
        ("MR_small_jp2klossless.dcm", None),
        ("JPEG2000.dcm", None),
        ("MR_small_bigendian.dcm", None),
        ("SC_rgb_small_odd.dcm", None),
        ("SC_ybr_full_422_uncompressed.dcm", None),
    ],
)
def test_pydicom_test_files(name, fragment):
    path = get_testdata_file(name)
    assert path is not None
    reasons = check_angiogram_file(path)
    if fragment is None:
        assert reasons == []
        img = LoadAngiogram()(path)
        assert img.ndim == 3 and float(img.min()) == 0.0 and float(img.max()) == 1.0
    else:
        assert len(reasons) == 1 and fragment in reasons[0]


def test_build_datalist_manifest_and_continues(tmp_path, caplog):
    data = tmp_path / "data"
    (data / "nested").mkdir(parents=True)
    bad = bad_files(data / "nested")
    (data / "good.dcm").write_bytes(DCA[0].read_bytes())
    (data / "nested" / "LICENSE").write_text("text")
    with caplog.at_level(logging.WARNING, logger="transforms.dataset_check"):
        datalist = build_datalist(data, manifest_path=tmp_path / "run")
    accepted = {d["image"] for d in datalist}
    assert str(data / "good.dcm") in accepted and str(data / "nested" / "four.dcm") in accepted
    assert sum(d["image"].endswith("four.dcm") for d in datalist) == 4
    manifest = json.loads((tmp_path / "run" / "datalist_manifest.json").read_text())
    rejected = {r["image"]: r["reason"] for r in manifest["rejected"]}
    assert set(rejected) == {str(p) for p, _ in bad.values()}
    for path, fragment in bad.values():
        assert fragment in rejected[str(path)]
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("rejected ")]
    assert len(lines) == len(bad)
    assert manifest["counts"]["entries"] == len(datalist)


def test_strict_mode_raises_after_checking(tmp_path):
    bad = bad_files(tmp_path)
    (tmp_path / "good.dcm").write_bytes(DCA[0].read_bytes())
    with pytest.raises(AngiogramReadError) as info:
        build_datalist(tmp_path, strict=True, manifest_path=tmp_path / "m.json")
    assert f"and {len(bad) - 1} more rejected files" in info.value.reason
    assert json.loads((tmp_path / "m.json").read_text())["counts"]["rejected_files"] == len(bad)


def test_labels_and_empty_root(tmp_path):
    datalist = build_datalist(ROOT / "dca" / "images", label_root=ROOT / "dca" / "labels", frame_policy="max_contrast")
    assert len(datalist) == len(DCA)
    assert all(Path(d["label"]).stem == Path(d["image"]).stem for d in datalist)
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(AngiogramReadError, match="no usable angiograms"):
        build_datalist(tmp_path)


def test_constant_frames_dropped_with_decode_all(tmp_path):
    ds = pydicom.dcmread(four_frames(tmp_path))
    arr = np.frombuffer(ds.PixelData, np.uint8).reshape(4, 512, 512).copy()
    arr[1] = 7
    ds.PixelData = arr.tobytes()
    ds.save_as(tmp_path / "four.dcm")
    assert [d["frame"] for d in build_datalist(tmp_path, decode="all")] == [0, 2, 3]
    assert [d["frame"] for d in build_datalist(tmp_path)] == [0, 1, 2, 3]
    with pytest.raises(AngiogramReadError, match="constant image"):
        LoadAngiogram()(tmp_path / "four.dcm", 1)


SHARED_CASES = {
    "odd_derived/XA_NumberOfFrames_mismatch.dcm": "NumberOfFrames is 6",
    "odd_derived/XA_no_pixeldata.dcm": "no pixel data",
    "odd_derived/XA_truncated_50pct.dcm": "truncated",
    "xa_real/XA1_nema_wg04/JPLY/XA1_JPLY": "python-gdcm",
    "odd_derived/XA_4frames_J2K_lossless.dcm": None,
    "odd_derived/XA_4frames_RLE.dcm": None,
    "odd_derived/XA_4frames_MONOCHROME1.dcm": None,
    "odd_derived/XA_single_frame_no_NumberOfFrames.dcm": None,
    "other_modalities/CR_MONOCHROME1_jpeg.dcm": None,
    "other_modalities/CR_MONOCHROME1_j2k_lossy.dcm": None,
    "other_modalities/RF_fluoro_frame.dcm": None,
}


@pytest.mark.skipif(not SHARED.is_dir(), reason="extra check: ../shared/data is not in a fresh clone")
@pytest.mark.parametrize("rel, fragment", sorted(SHARED_CASES.items()))
def test_shared_must_classify_files(rel, fragment):
    reasons = check_angiogram_file(SHARED / rel)
    assert reasons == [] if fragment is None else (len(reasons) == 1 and fragment in reasons[0]), reasons

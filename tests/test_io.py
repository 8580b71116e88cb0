"""LoadAngiogram / LoadAngiogramd / list_angiogram_frames on the embedded sample data (no ../shared needed)."""

from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from monai.data import DataLoader, Dataset, MetaTensor
from PIL import Image
from pydicom.pixels import pixel_array
from pydicom.uid import ExplicitVRLittleEndian

from transforms.io import LoadAngiogram, LoadAngiogramd, decode, files, list_angiogram_frames, normalise

ROOT = Path(__file__).resolve().parents[1] / "sample_data"
CINE = ROOT / "xa_cine" / "XA_coronary_cine_96frames_jpeg_baseline.dcm"
DCA = sorted((ROOT / "dca" / "images").glob("*.dcm"))


def expected(stored: np.ndarray) -> np.ndarray:
    a = stored.astype(np.float64)
    return ((a - a.min()) / (a.max() - a.min())).T


def native_copy(path, out, frames=None, **changes):
    """Writes frames (all when None) of `path` as explicit VR little endian; `changes` set header fields."""
    ds = pydicom.dcmread(path)
    n = int(ds.get("NumberOfFrames", 1))
    idx = range(n) if frames is None else frames
    arr = np.stack([pixel_array(ds, index=i, decoding_plugin="pillow") for i in idx])
    transform = changes.pop("pixels", None)
    if transform is not None:
        arr = transform(arr)
    ds.PixelData = arr.astype(np.uint8).tobytes()
    ds["PixelData"].VR = "OB"
    ds.NumberOfFrames = len(idx)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    for key, value in changes.items():
        setattr(ds, key, value)
    ds.save_as(out, enforce_file_format=True)
    return out


def test_single_frame_dicom_matches_pydicom():
    img = LoadAngiogram()(DCA[0])
    ref = pydicom.dcmread(DCA[0]).pixel_array
    assert img.shape == (1, ref.shape[1], ref.shape[0]) and img.dtype == torch.float32
    np.testing.assert_allclose(img[0].numpy(), expected(ref), atol=1e-6)
    assert float(img.min()) == 0.0 and float(img.max()) == 1.0
    meta = img.meta
    assert meta["modality"] == "XA" and meta["photometric_interpretation"] == "MONOCHROME2"
    assert meta["rows"] == ref.shape[0] and meta["num_frames"] == 1 and meta["frame_index"] == 0
    assert meta["sop_instance_uid"] == pydicom.dcmread(DCA[0]).SOPInstanceUID
    assert np.isnan(meta["pixel_spacing"][0])


@pytest.mark.parametrize("signed", [0, 1])
@pytest.mark.parametrize("bits", [(8, 8), (16, 12), (16, 16), (32, 20)])
@pytest.mark.parametrize("syntax", ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.2"])
def test_native_frames_equal_pydicoms_decoder(tmp_path, signed, bits, syntax):
    """Native data read by our own path (little endian) or by pydicom (big endian) equals pydicom's pixel_array,
    including unused high bits that hold garbage (pydicom clears or sign-extends them)."""
    allocated, stored = bits
    rng = np.random.default_rng(allocated + stored + signed)
    dtype = np.dtype(f"{'i' if signed else 'u'}{allocated // 8}")
    arr = rng.integers(0, 2 ** min(allocated, 31) - 1, size=(3, 40, 30), dtype=np.int64).astype(dtype)
    ds = pydicom.dcmread(DCA[0])
    ds.update({"BitsAllocated": allocated, "BitsStored": stored, "HighBit": stored - 1,
               "PixelRepresentation": signed, "NumberOfFrames": 3, "Rows": 40, "Columns": 30})
    little = syntax != "1.2.840.10008.1.2.2"
    ds.PixelData = arr.astype(dtype.newbyteorder("<" if little else ">")).tobytes()
    ds["PixelData"].VR = "OB" if allocated == 8 else "OW"
    ds.file_meta.TransferSyntaxUID = syntax
    path = tmp_path / "native.dcm"
    pydicom.filewriter.dcmwrite(path, ds, implicit_vr=syntax == "1.2.840.10008.1.2", little_endian=little,
                                force_encoding=True)
    ref = pydicom.dcmread(path).pixel_array
    image = files.open_dicom(path)
    assert (decode.native_frames(image, [0]) is not None) == little
    for index in range(3):
        np.testing.assert_array_equal(decode.decode_frames(path, image, [index])[0], ref[index])
        np.testing.assert_allclose(LoadAngiogram()(path, index)[0].numpy(), expected(ref[index]), atol=1e-6)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("invert", [False, True])
def test_normalise_of_unsigned_frames_equals_the_float32_formula(dtype, invert):
    stored = pydicom.dcmread(DCA[3]).pixel_array[:, :250].astype(dtype) * (257 if dtype == np.uint16 else 1)
    ours = normalise.normalise("x.dcm", stored, invert, None)
    f = stored.astype(np.float32).T
    reference = ((f.max() - f) if invert else (f - f.min())) / np.float32(f.max() - f.min())
    assert ours.dtype == np.float32 and ours.shape == (250, 300) and ours.flags.c_contiguous
    np.testing.assert_array_equal(ours, reference)


def test_loaded_tensor_is_contiguous_and_owns_its_affines(tmp_path):
    path = native_copy(DCA[0], tmp_path / "sp.dcm", ImagerPixelSpacing=[0.3, 0.2])
    img = LoadAngiogram()(path)
    assert img.is_contiguous() and img.affine.dtype == torch.float64
    assert torch.equal(img.meta["original_affine"], img.affine)
    assert img.meta["original_affine"].data_ptr() != img.affine.data_ptr()


def test_loaded_tensor_is_the_metatensor_monai_builds(tmp_path):
    """LoadAngiogram builds its MetaTensor with MetaTensor.__torch_function__ off: the object must be the one MONAI's
    constructor builds with dispatch on (meta, affine, spatial_ndim, operations, batch flag), and behave as one."""
    path = native_copy(DCA[0], tmp_path / "sp.dcm", ImagerPixelSpacing=[0.3, 0.2])
    img = LoadAngiogram()(path)
    meta = {k: v for k, v in img.meta.items() if k != "affine"}
    built = MetaTensor(img.as_tensor().clone(), affine=img.affine.clone(), meta=meta, spatial_ndim=3)
    assert type(img) is MetaTensor and img.__dict__.keys() == built.__dict__.keys()
    assert img.spatial_ndim == built.spatial_ndim and img.is_batch is built.is_batch is False
    assert img.applied_operations == built.applied_operations == [] and img.pending_operations == []
    assert img.meta.keys() == built.meta.keys() and torch.equal(img.affine, built.affine)
    assert img.pixdim.tolist() == pytest.approx([0.2, 0.3, 1.0])
    flipped = img.flip(1)
    assert type(flipped) is MetaTensor and flipped.meta["filename_or_obj"] == str(path)


@pytest.mark.parametrize("index", [0, 37, 95])
def test_cine_frame_matches_pydicom_frame(index):
    img = LoadAngiogram()(CINE, index)
    same_codec = pixel_array(str(CINE), index=index, decoding_plugin="pillow")
    np.testing.assert_allclose(img[0].numpy(), expected(same_codec), atol=1e-6)
    default_codec = pixel_array(str(CINE), index=index)
    np.testing.assert_allclose(img[0].numpy(), expected(default_codec), atol=1.5 / np.ptp(default_codec))
    assert img.meta["frame_index"] == index and img.meta["num_frames"] == 96


def test_all_frames_in_one_call(tmp_path):
    path = native_copy(CINE, tmp_path / "four.dcm", frames=[0, 1, 2, 3])
    stack = LoadAngiogram()(path)
    assert stack.shape == (4, 512, 512) and stack.meta["frame_index"] == -1
    for i in range(4):
        assert torch.equal(stack[i], LoadAngiogram()(path, i)[0])


def test_monochrome1_copy_loads_equal_to_original(tmp_path):
    m2 = native_copy(CINE, tmp_path / "m2.dcm", frames=[3, 60])
    m1 = native_copy(CINE, tmp_path / "m1.dcm", frames=[3, 60], pixels=lambda a: 255 - a,
                     PhotometricInterpretation="MONOCHROME1")
    for i in range(2):
        a, b = LoadAngiogram()(m2, i), LoadAngiogram()(m1, i)
        assert b.meta["photometric_interpretation"] == "MONOCHROME1"
        assert torch.equal(a, b)
    raw_m1 = pydicom.dcmread(m1).pixel_array[0]
    assert not np.allclose(expected(raw_m1), LoadAngiogram()(m1, 0)[0].numpy())


def test_negative_rescale_slope_flips_like_monochrome1(tmp_path):
    m2 = native_copy(CINE, tmp_path / "m2.dcm", frames=[5])
    neg = native_copy(CINE, tmp_path / "neg.dcm", frames=[5], pixels=lambda a: 255 - a, RescaleSlope=-1,
                      RescaleIntercept=255)
    assert torch.equal(LoadAngiogram()(m2), LoadAngiogram()(neg))


def test_rgb_dicom_and_png_become_luminance(tmp_path):
    grey = pydicom.dcmread(DCA[1]).pixel_array
    rgb = np.stack([grey, np.roll(grey, 3, 0), grey // 2], -1).astype(np.uint8)
    ds = pydicom.dcmread(DCA[1])
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.PixelData = rgb.tobytes()
    ds.save_as(tmp_path / "rgb.dcm", enforce_file_format=True)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    from_dicom = LoadAngiogram()(tmp_path / "rgb.dcm")[0].numpy()
    from_png = LoadAngiogram()(tmp_path / "rgb.png")[0].numpy()
    luma = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    np.testing.assert_allclose(from_dicom, expected(luma), atol=1e-5)
    np.testing.assert_allclose(from_png, expected(luma), atol=1.5 / np.ptp(luma))


def test_png_matches_monai_pil_reader(tmp_path):
    from monai.transforms import LoadImage

    grey = pydicom.dcmread(DCA[2]).pixel_array
    Image.fromarray(grey).save(tmp_path / "x.png")
    ours = LoadAngiogram()(tmp_path / "x.png")
    monai = LoadImage(image_only=True, reader="PILReader", ensure_channel_first=True)(tmp_path / "x.png")
    assert ours.shape == monai.shape
    reference = (monai - monai.min()).numpy() / float(monai.max() - monai.min())
    np.testing.assert_allclose(ours.numpy(), reference, atol=1e-6)


def test_pixel_spacing_prefers_imager_pixel_spacing(tmp_path):
    path = native_copy(DCA[0], tmp_path / "sp.dcm", ImagerPixelSpacing=[0.3, 0.2], PixelSpacing=[0.5, 0.5])
    img = LoadAngiogram()(path)
    assert tuple(img.meta["pixel_spacing"]) == (0.3, 0.2)
    assert img.affine[0, 0] == 0.2 and img.affine[1, 1] == 0.3
    only_ps = native_copy(DCA[0], tmp_path / "ps.dcm", PixelSpacing=[0.5, 0.25])
    assert tuple(LoadAngiogram()(only_ps).meta["pixel_spacing"]) == (0.5, 0.25)


def test_frame_policy_all_reads_headers_only(monkeypatch):
    calls = []
    monkeypatch.setattr(decode, "decode_frames",
                        lambda *a, **k: calls.append(a) or (_ for _ in ()).throw(AssertionError))
    monkeypatch.setattr(decode, "get_decoder", lambda *a, **k: calls.append(a))
    datalist = list_angiogram_frames(ROOT)
    cine = [d for d in datalist if d["image"].endswith(CINE.name)]
    assert [d["frame"] for d in cine] == list(range(96))
    assert [d["frame"] for d in datalist if d["image"].endswith(".dcm") and "dca" in d["image"]] == [None] * len(DCA)
    assert calls == []


def test_frame_policy_int_and_max_contrast():
    assert list_angiogram_frames(CINE, frame_policy=10) == [{"image": str(CINE), "frame": 10}]
    assert list_angiogram_frames(CINE, frame_policy=-1) == [{"image": str(CINE), "frame": 95}]
    assert list_angiogram_frames(CINE, frame_policy=500) == []
    chosen = list_angiogram_frames(CINE, frame_policy="max_contrast")[0]["frame"]
    means = [pixel_array(str(CINE), index=i, decoding_plugin="pillow").mean() for i in range(96)]
    assert chosen == int(np.argmin(means))
    with pytest.raises(ValueError):
        list_angiogram_frames(CINE, frame_policy="best")


def test_loadangiogramd_in_dataloader():
    datalist = list_angiogram_frames(ROOT)
    datalist = [d for d in datalist if d["frame"] in (None, 0, 50)]
    ds = Dataset(datalist, transform=LoadAngiogramd(keys="image"))
    batches = list(DataLoader(ds, batch_size=2, num_workers=0))
    assert sum(len(b["frame"]) for b in batches) == len(datalist)
    for b in batches:
        assert b["image"].shape[1] == 1 and 0.0 <= float(b["image"].min()) and float(b["image"].max()) <= 1.0
    missing = LoadAngiogramd(keys=["image", "label"], allow_missing_keys=True)({"image": str(DCA[0]), "frame": None})
    assert missing["image"].shape == (1, 300, 300) and missing["frame"] == 0


def test_max_contrast_on_an_undecodable_file_is_a_read_error(tmp_path):
    """A Transfer Syntax UID that names no transfer syntax (pydicom's get_decoder raises ValueError)."""
    from transforms import AngiogramReadError
    from transforms.io import frame_means

    raw = CINE.read_bytes()
    assert raw.count(b"1.2.840.10008.1.2.4.50") == 1
    bad = tmp_path / "bad_syntax.dcm"
    bad.write_bytes(raw.replace(b"1.2.840.10008.1.2.4.50", b"1.2.840.10008.1.2.4.99"))
    with pytest.raises(AngiogramReadError, match="bad_syntax.dcm: unsupported transfer syntax .*not a transfer syntax"):
        frame_means(bad)
    with pytest.raises(AngiogramReadError, match="unsupported transfer syntax"):
        LoadAngiogram()(bad, 0)
    with pytest.raises(AngiogramReadError, match="bad_syntax.dcm"):
        list_angiogram_frames(tmp_path, frame_policy="max_contrast", strict=True)
    assert list_angiogram_frames(tmp_path, frame_policy="max_contrast") == []

"""AngiogramReader through MONAI's LoadImaged: same arrays and meta as LoadAngiogramd, MONOCHROME1 and cine included."""

from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from monai.transforms import LoadImaged
from pydicom.pixels import pixel_array
from pydicom.uid import ExplicitVRLittleEndian

from transforms import AngiogramReader, LoadAngiogramd

ROOT = Path(__file__).resolve().parents[1] / "sample_data"
CINE = ROOT / "xa_cine" / "XA_coronary_cine_96frames_jpeg_baseline.dcm"
DCA = sorted((ROOT / "dca" / "images").glob("*.dcm"))


def minmax(stored: np.ndarray) -> np.ndarray:
    a = stored.astype(np.float64)
    return ((a - a.min()) / (a.max() - a.min())).T


def cine_copy(out: Path, frames, stored=lambda a: a, **changes) -> Path:
    """Frames of the sample cine as native 8-bit pixel data, with `stored` applied to the values."""
    ds = pydicom.dcmread(CINE)
    arr = stored(np.stack([pixel_array(ds, index=i, decoding_plugin="pillow") for i in frames]))
    ds.PixelData = arr.astype(np.uint8).tobytes()
    ds["PixelData"].VR = "OB"
    ds.NumberOfFrames = len(frames)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    for key, value in changes.items():
        setattr(ds, key, value)
    ds.save_as(out, enforce_file_format=True)
    return out


def test_single_frame_equals_load_angiogramd():
    path = str(DCA[0])
    ours = LoadImaged("image", reader=AngiogramReader())({"image": path})["image"]
    peer = LoadAngiogramd("image")({"image": path})["image"]
    assert ours.shape == (1, 300, 300) and ours.dtype == torch.float32
    np.testing.assert_allclose(ours[0].numpy(), minmax(pydicom.dcmread(path).pixel_array), atol=1e-6)
    assert torch.equal(ours.as_tensor(), peer.as_tensor())
    assert torch.equal(ours.affine, peer.affine)
    for key in ("filename_or_obj", "frame_index", "num_frames", "sop_instance_uid", "modality", "rows", "columns"):
        assert ours.meta[key] == peer.meta[key], key
    assert tuple(ours.meta["spatial_shape"]) == (300, 300)


def test_monochrome1_is_inverted(tmp_path):
    m2 = cine_copy(tmp_path / "m2.dcm", [3, 60])
    m1 = cine_copy(tmp_path / "m1.dcm", [3, 60], stored=lambda a: 255 - a, PhotometricInterpretation="MONOCHROME1")
    load = LoadImaged("image", reader=AngiogramReader())
    a, b = load({"image": str(m2)})["image"], load({"image": str(m1)})["image"]
    assert b.meta["photometric_interpretation"] == "MONOCHROME1" and b.shape == (2, 512, 512)
    assert torch.equal(a.as_tensor(), b.as_tensor())
    original = pydicom.dcmread(m2).pixel_array
    for i in range(2):
        np.testing.assert_allclose(b[i].numpy(), minmax(original[i]), atol=1e-6)


@pytest.mark.parametrize("ensure_channel_first", [False, True])
def test_cine_keeps_frames_first(ensure_channel_first):
    load = LoadImaged("image", reader=AngiogramReader(), ensure_channel_first=ensure_channel_first)
    cine = load({"image": str(CINE)})["image"]
    assert cine.shape == (96, 512, 512) and cine.meta["frame_index"] == -1 and cine.meta["num_frames"] == 96
    for i in (0, 37, 95):
        np.testing.assert_allclose(cine[i].numpy(), minmax(pixel_array(str(CINE), index=i, decoding_plugin="pillow")),
                                   atol=1e-6)
    one = LoadImaged("image", reader=AngiogramReader(frame=37))({"image": str(CINE)})["image"]
    assert one.shape == (1, 512, 512) and one.meta["frame_index"] == 37
    assert torch.equal(one[0].as_tensor(), cine[37].as_tensor())


def test_unusable_file_names_the_reason(tmp_path):
    notes = tmp_path / "notes.dcm"
    notes.write_text("not an image")
    with pytest.raises(RuntimeError, match="not a DICOM file or a supported image"):
        LoadImaged("image", reader=AngiogramReader())({"image": str(notes)})

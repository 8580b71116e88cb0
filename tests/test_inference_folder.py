"""vasomim_seg inference over a folder follows the pretraining policy: a bad file gets one log line and a manifest
entry, the run goes on, and every good file gets its NIfTI, PNG and DICOM SEG."""

from __future__ import annotations

import json
from io import BytesIO

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from PIL import Image
from pydicom.encaps import encapsulate, generate_frames
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.pixels import pixel_array

from transforms.io import LoadAngiogram

from conftest import SEG_BUNDLE, TINY_NET, XA_CINE, monai_bundle, tiny_seg_net

INFERENCE = str(SEG_BUNDLE / "configs" / "inference.json")
META = str(SEG_BUNDLE / "configs" / "metadata.json")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    torch.manual_seed(0)
    net = tiny_seg_net()
    with torch.no_grad():
        net.out.weight.zero_()
        net.out.bias.fill_(-1.0)  # marks nothing, so that every overlay pixel shows the source frame
    path = tmp_path_factory.mktemp("model") / "model.pt"
    torch.save(net.state_dict(), path)
    return path


def short_cine(n: int, **changes) -> pydicom.Dataset:
    """The first ``n`` JPEG frames of the embedded cine, with header ``changes``."""
    ds = pydicom.dcmread(XA_CINE)
    frames = [f for _, f in zip(range(n), generate_frames(ds.PixelData, number_of_frames=int(ds.NumberOfFrames)))]
    ds.PixelData = encapsulate(frames, has_bot=True)
    ds.NumberOfFrames = n
    for key, value in changes.items():
        setattr(ds, key, value)
    return ds


def mixed_folder(root):
    """2 good cines (2 and 1 frames, one of them RF) and 3 bad files, all derived from the embedded cine."""
    root.mkdir()
    short_cine(2).save_as(root / "good_a.dcm")
    short_cine(1, Modality="RF", SOPInstanceUID=pydicom.uid.generate_uid()).save_as(root / "good_b.dcm")
    corrupt = short_cine(2)
    first = next(generate_frames(corrupt.PixelData, number_of_frames=2))
    corrupt.PixelData = encapsulate([first, first[:300] + bytes(len(first) - 300)], has_bot=True)
    corrupt.save_as(root / "bad_jpeg.dcm")
    nopix = short_cine(2)
    del nopix.PixelData
    nopix.save_as(root / "bad_nopixels.dcm")
    buf = BytesIO()
    short_cine(2).save_as(buf)
    (root / "bad_truncated.dcm").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return root


def infer(tmp_path, model, input_dir, check=True, out_name="out", **overrides):
    out = tmp_path / out_name
    proc = monai_bundle(["run", "--config_file", INFERENCE, "--meta_file", META], cwd=tmp_path, check=check,
                        overrides={**TINY_NET, "handlers#0#load_path": str(model), "output_dir": str(out),
                                   "input_dir": str(input_dir), **overrides})
    return out, proc.stdout + proc.stderr


def test_folder_with_bad_files_keeps_going_and_lists_them(tmp_path, tiny_model):
    folder = mixed_folder(tmp_path / "in")
    out, log = infer(tmp_path, tiny_model, folder)
    expected = {"good_a_frame000_vessels.nii.gz", "good_a_frame001_vessels.nii.gz", "good_a_frame000_overlay.png",
                "good_a_frame001_overlay.png", "good_a_vessels_seg.dcm", "good_b_vessels.nii.gz",
                "good_b_overlay.png", "good_b_vessels_seg.dcm", "inference_manifest.json"}
    assert {p.name for p in out.iterdir()} == expected
    assert int(pydicom.dcmread(out / "good_a_vessels_seg.dcm").NumberOfFrames) == 2
    manifest = json.loads((out / "inference_manifest.json").read_text())
    rejected = {r["image"].split("/")[-1]: r["reason"] for r in manifest["rejected"]}
    assert set(rejected) == {"bad_jpeg.dcm", "bad_nopixels.dcm", "bad_truncated.dcm"}
    assert "cannot decode frame 1" in rejected["bad_jpeg.dcm"] and "no pixel data" in rejected["bad_nopixels.dcm"]
    assert "truncated" in rejected["bad_truncated.dcm"]
    assert sorted(a["image"].split("/")[-1] for a in manifest["accepted"]) == ["good_a.dcm", "good_b.dcm"]
    assert manifest["seg_not_written"] == []
    for name in rejected:
        assert sum(f"rejected {folder / name}:" in line for line in log.splitlines()) == 1, name
    assert sum("good_b.dcm: Modality is RF, not XA" in line for line in log.splitlines()) == 1
    assert "segmented file 2/2" in log
    assert log.index("good_a_vessels_seg.dcm") < log.index("segmented file 2/2")

    strict_out, strict_log = infer(tmp_path, tiny_model, folder, check=False, out_name="strict", strict=True)
    assert "AngiogramReadError" in strict_log and "bad_jpeg.dcm" in strict_log
    assert not list(strict_out.glob("*_vessels*"))


def test_source_without_file_meta_gets_nifti_png_and_a_seg_reason(tmp_path, tiny_model):
    folder = tmp_path / "in"
    folder.mkdir()
    ds = short_cine(1)
    native = pixel_array(ds, index=0).tobytes()
    del ds.PixelData
    ds.add_new(0x7FE00010, "OW", native)
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, False
    write_dataset(body, ds)
    raw = folder / "raw.dcm"
    raw.write_bytes(body.getvalue())
    with pytest.raises(pydicom.errors.InvalidDicomError):
        pydicom.dcmread(raw)
    out, log = infer(tmp_path, tiny_model, folder)
    assert {p.name for p in out.iterdir()} == {"raw_vessels.nii.gz", "raw_overlay.png", "inference_manifest.json"}
    manifest = json.loads((out / "inference_manifest.json").read_text())
    assert manifest["rejected"] == []
    [entry] = manifest["seg_not_written"]
    assert entry["image"] == str(raw) and "no DICOM File Meta Information" in entry["reason"]
    assert "NIfTI masks and PNG overlays were written" in entry["reason"]
    assert sum(f"seg_not_written {raw}: DICOM SEG not written" in line for line in log.splitlines()) == 1

    frame = LoadAngiogram()(raw)[0].numpy().T
    mask = np.asarray(nib.load(out / "raw_vessels.nii.gz").dataobj).T.astype(bool)
    overlay = np.asarray(Image.open(out / "raw_overlay.png"))
    assert overlay.shape == (*frame.shape, 3) and mask.sum() < mask.size
    assert np.array_equal(overlay[~mask][:, 1], (frame[~mask] * 255).astype(np.uint8))

    _, strict_log = infer(tmp_path, tiny_model, folder, check=False, strict=True, overwrite=True)
    assert "AngiogramReadError" in strict_log and "no DICOM File Meta Information" in strict_log

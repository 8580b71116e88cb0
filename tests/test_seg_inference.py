"""vasomim_seg inference.json: DICOM (cine and single frame) in; NIfTI masks, PNG overlays and a DICOM SEG out."""

from __future__ import annotations

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from PIL import Image

from transforms import LoadAngiogramd

from conftest import SEG_BUNDLE, TINY_NET, XA_CINE, monai_bundle, tiny_seg_net

INFERENCE = str(SEG_BUNDLE / "configs" / "inference.json")
META = str(SEG_BUNDLE / "configs" / "metadata.json")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    torch.manual_seed(0)
    net = tiny_seg_net().eval()
    frame = LoadAngiogramd("image", frame_key="frame")({"image": str(XA_CINE), "frame": 0})["image"]
    x = torch.nn.functional.interpolate(torch.as_tensor(frame)[None].float(), size=(64, 64), mode="area")
    with torch.no_grad():
        net.out.bias.sub_(net(x).median())  # a random net that marks about half of a cine frame's pixels as vessel
    path = tmp_path_factory.mktemp("model") / "model.pt"
    torch.save(net.state_dict(), path)
    return path


def run_inference(tmp_path, model, **overrides):
    out = tmp_path / "out"
    monai_bundle(["run", "--config_file", INFERENCE, "--meta_file", META], cwd=tmp_path,
                 overrides={**TINY_NET, "handlers#0#load_path": str(model), "output_dir": str(out), **overrides})
    return out


def seg_frames(seg: pydicom.Dataset) -> list[tuple[str, int | None]]:
    refs = []
    for item in seg.PerFrameFunctionalGroupsSequence:
        src = item.DerivationImageSequence[0].SourceImageSequence[0]
        frame = int(src.ReferencedFrameNumber) if "ReferencedFrameNumber" in src else None
        refs.append((src.ReferencedSOPInstanceUID, frame))
    return refs


def test_cine_first_frames_give_one_multiframe_seg(tmp_path, tiny_model):
    n = 3
    out = run_inference(tmp_path, tiny_model, input_dir=str(XA_CINE), max_frames=n)
    source = pydicom.dcmread(XA_CINE, stop_before_pixels=True)
    stem = XA_CINE.name[:-4]
    seg = pydicom.dcmread(out / f"{stem}_vessels_seg.dcm")
    assert seg.SOPClassUID == pydicom.uid.SegmentationStorage and seg.SegmentationType == "BINARY"
    assert int(seg.NumberOfFrames) == n
    assert seg_frames(seg) == [(source.SOPInstanceUID, k + 1) for k in range(n)]
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == source.SeriesInstanceUID
    assert seg.StudyInstanceUID == source.StudyInstanceUID
    masks = seg.pixel_array.reshape(n, source.Rows, source.Columns)
    for k in range(n):
        nifti = np.asarray(nib.load(out / f"{stem}_frame{k:03d}_vessels.nii.gz").dataobj)
        assert nifti.shape == (source.Columns, source.Rows)
        assert np.array_equal(nifti.T, masks[k])
        overlay = Image.open(out / f"{stem}_frame{k:03d}_overlay.png")
        assert overlay.size == (source.Columns, source.Rows) and overlay.mode == "RGB"
    assert 0 < masks.sum() < masks.size


def test_chosen_cine_frames_and_a_single_frame_image(tmp_path, tiny_model, dca_dir):
    single = dca_dir / "images" / "1.dcm"
    frames = [5, 17, 40]
    datalist = [{"image": str(XA_CINE), "frame": f} for f in reversed(frames)] + [{"image": str(single), "frame": None}]
    out = run_inference(tmp_path, tiny_model, datalist=datalist)
    cine = pydicom.dcmread(XA_CINE, stop_before_pixels=True)
    seg = pydicom.dcmread(out / f"{XA_CINE.name[:-4]}_vessels_seg.dcm")
    assert seg_frames(seg) == [(cine.SOPInstanceUID, f + 1) for f in frames]
    reread = hd.seg.segread(out / f"{XA_CINE.name[:-4]}_vessels_seg.dcm")
    by_source = reread.get_pixels_by_source_frame(source_sop_instance_uid=cine.SOPInstanceUID,
                                                  source_frame_numbers=[f + 1 for f in frames])
    assert np.array_equal(by_source[..., 0], seg.pixel_array.reshape(len(frames), cine.Rows, cine.Columns))

    src1 = pydicom.dcmread(single, stop_before_pixels=True)
    seg1 = pydicom.dcmread(out / "1_vessels_seg.dcm")
    assert int(seg1.NumberOfFrames) == 1 and seg_frames(seg1) == [(src1.SOPInstanceUID, None)]
    nifti = np.asarray(nib.load(out / "1_vessels.nii.gz").dataobj)
    assert nifti.shape == (src1.Columns, src1.Rows)
    assert np.array_equal(nifti.T, seg1.pixel_array)

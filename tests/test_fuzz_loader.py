"""Mutated bytes of the real sample XA files: only AngiogramReadError may escape, or a valid (1, W, H) in [0, 1]."""

from pathlib import Path

import numpy as np
import pydicom
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from transforms.dataset_check import check_angiogram_file
from transforms.errors import AngiogramReadError
from transforms.io import LoadAngiogram, list_angiogram_frames

ROOT = Path(__file__).resolve().parents[1] / "sample_data"
CINE = ROOT / "xa_cine" / "XA_coronary_cine_96frames_jpeg_baseline.dcm"
DCA = sorted((ROOT / "dca" / "images").glob("*.dcm"))[0]


def _small_cine() -> bytes:
    """The first 3 JPEG frames of the real cine, so that each case is fast; header bytes are all kept."""
    ds = pydicom.dcmread(CINE)
    from pydicom.encaps import encapsulate, generate_frames

    frames = [f for _, f in zip(range(3), generate_frames(ds.PixelData, number_of_frames=96))]
    ds.PixelData = encapsulate(frames, has_bot=True)
    ds.NumberOfFrames = 3
    from io import BytesIO

    buf = BytesIO()
    ds.save_as(buf)
    return buf.getvalue()


SOURCES = {"cine": _small_cine(), "dca": DCA.read_bytes()}
HEADER = 1400


@st.composite
def mutated(draw):
    name = draw(st.sampled_from(sorted(SOURCES)))
    data = bytearray(SOURCES[name])
    kind = draw(st.sampled_from(["flip", "truncate", "splice", "zero"]))
    limit = draw(st.sampled_from([HEADER, len(data)]))
    if kind == "truncate":
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif kind == "splice":
        at = draw(st.integers(0, limit - 1))
        data[at:at] = draw(st.binary(min_size=1, max_size=16))
    else:
        for _ in range(draw(st.integers(1, 8))):
            at = draw(st.integers(0, limit - 1))
            data[at] = 0 if kind == "zero" else draw(st.integers(0, 255))
    return bytes(data)


@settings(max_examples=150, deadline=2000, derandomize=True, suppress_health_check=list(HealthCheck))
@given(data=mutated())
def test_mutated_bytes_only_raise_angiogram_read_error(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fuzz") / "case.dcm"
    path.write_bytes(data)
    reasons = check_angiogram_file(path)
    assert isinstance(reasons, list) and all(isinstance(r, str) and r for r in reasons)
    try:
        frames = list_angiogram_frames(path, frame_policy="max_contrast", strict=True)
        assert len(frames) == 1
    except AngiogramReadError as err:
        assert err.path == str(path) and err.reason
    try:
        img = LoadAngiogram()(path, 0)
    except AngiogramReadError as err:
        assert err.path == str(path) and err.reason
        return
    assert img.ndim == 3 and img.shape[0] == 1 and img.dtype.is_floating_point
    values = img.numpy()
    assert np.isfinite(values).all() and values.min() == 0.0 and values.max() == 1.0

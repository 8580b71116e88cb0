"""The decoding shortcuts of transforms.io.decode give what pydicom's own route gives: values, frames and reasons."""

from io import BytesIO
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image, ImageFile
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import JPEGLSLossless

from transforms.io import decode, read_angiogram

from conftest import read_outcome

ROOT = Path(__file__).resolve().parents[1] / "sample_data"
CINE = ROOT / "xa_cine" / "XA_coronary_cine_96frames_jpeg_baseline.dcm"
DCA = sorted((ROOT / "dca" / "images").glob("*.dcm"))


def jpeg_cine(path: Path, frames: list) -> Path:
    """The sample cine with its encapsulated frames replaced by `frames` (JPEG bytes)."""
    ds = pydicom.dcmread(CINE)
    ds.PixelData = encapsulate(frames, has_bot=True)
    ds.NumberOfFrames = len(frames)
    ds.save_as(path)
    return path


def cine_frames(n: int) -> list:
    return [f for _, f in zip(range(n), generate_frames(pydicom.dcmread(CINE).PixelData, number_of_frames=96))]


def through_pydicom(monkeypatch, fn):
    """`fn()` with Pillow's direct route switched off, i.e. through pydicom's decoder and its Pillow plugin."""
    with monkeypatch.context() as m:
        m.setattr(decode, "pillow_direct", lambda *a: False)
        return read_outcome(fn)


@pytest.mark.parametrize("frame", [0, 37, 95])
def test_direct_pillow_frame_equals_pydicoms_pillow_plugin(monkeypatch, frame):
    calls = []
    real = decode._pydicom_frames
    monkeypatch.setattr(decode, "_pydicom_frames", lambda *a: calls.append(a) or real(*a))
    direct, meta = read_outcome(lambda: read_angiogram(CINE, frame))
    assert calls == []
    reference, ref_meta = through_pydicom(monkeypatch, lambda: read_angiogram(CINE, frame))
    assert calls
    assert direct.dtype == reference.dtype and np.array_equal(direct, reference) and meta == ref_meta


def test_frames_pillow_cannot_read_as_pydicom_does_go_through_pydicom(tmp_path, monkeypatch):
    small, constant = BytesIO(), BytesIO()
    Image.fromarray(np.arange(256 * 256, dtype=np.uint8).reshape(256, 256)).save(small, "JPEG")
    Image.fromarray(np.full((512, 512), 40, np.uint8)).save(constant, "JPEG")
    good = cine_frames(1)[0]
    path = jpeg_cine(tmp_path / "odd.dcm", [good, small.getvalue(), good[:300], constant.getvalue()])
    for frame in (None, 0, 1, 2, 3):
        ours = read_outcome(lambda f=frame: read_angiogram(path, f))
        theirs = through_pydicom(monkeypatch, lambda f=frame: read_angiogram(path, f))
        if isinstance(theirs, str):
            assert ours == theirs
        else:
            assert np.array_equal(ours[0], theirs[0]) and ours[1] == theirs[1]
    assert read_outcome(lambda: read_angiogram(path, 3)) == "constant image (frame 3): every pixel is 40"


def test_fastest_plugin_gives_pydicoms_default_values(tmp_path):
    pytest.importorskip("jpeg_ls")
    ds = pydicom.dcmread(DCA[0])
    ds.compress(JPEGLSLossless, encoding_plugin="pyjpegls")
    ds.save_as(tmp_path / "jls.dcm")
    assert decode.FASTEST_PLUGIN[JPEGLSLossless] == "pyjpegls"
    fastest, default = (read_outcome(lambda p=p: read_angiogram(tmp_path / "jls.dcm", None, p)) for p in (None, ""))
    assert np.array_equal(fastest[0], default[0]) and fastest[1] == default[1]
    assert np.array_equal(fastest[0], read_angiogram(DCA[0])[0])


def test_pillow_decodes_into_the_returned_array_or_the_frame_is_copied_out(monkeypatch):
    src = cine_frames(1)[0]
    with Image.open(BytesIO(src)) as img:
        reference = np.array(img)
    maps = []
    real = Image.frombuffer
    monkeypatch.setattr(Image, "frombuffer", lambda *a, **k: maps.append(a[2]) or real(*a, **k))
    direct = decode.jpeg8_array(src, 512, 512)
    assert maps and direct is maps[0] and np.array_equal(direct, reference)  # Pillow wrote into the array it returns
    with monkeypatch.context() as m:  # a Pillow that gives the image new memory when it loads
        m.setattr(ImageFile.ImageFile, "load_prepare", lambda self: setattr(self, "im", Image.core.new("L", self.size)))
        copied = decode.jpeg8_array(src, 512, 512)
    assert copied is not maps[-1] and np.array_equal(copied, reference)

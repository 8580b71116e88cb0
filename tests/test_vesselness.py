"""Frangi / Sato vesselness: parity with skimage on a real angiogram (every scale exact, ``coarse_from=None``; the
coarse default is tested in test_vesselness_coarse.py), batching, autograd, MONAI transforms."""

from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from monai.data import MetaTensor
from skimage import filters
from skimage.feature import hessian_matrix
from skimage.transform import resize

from transforms.vesselness import FrangiVesselness, FrangiVesselnessd, frangi, hessian_2d, sato

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "dca" / "images" / "1.dcm"


@pytest.fixture(scope="module")
def angiogram() -> np.ndarray:
    """(rows, cols) float32 in [0, 1], vessels dark (MONOCHROME2 sample)."""
    ds = pydicom.dcmread(SAMPLE)
    assert ds.PhotometricInterpretation == "MONOCHROME2"
    return ds.pixel_array.astype(np.float32) / 255.0


@pytest.fixture(scope="module")
def small(angiogram) -> np.ndarray:
    return resize(angiogram, (120, 150), anti_aliasing=True).astype(np.float32)


def _pearson(a, b) -> float:
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def _assert_parity(ref: np.ndarray, ours: torch.Tensor):
    ours = ours.numpy()
    assert ours.shape == ref.shape
    assert _pearson(ref, ours) >= 0.999
    scale = max(float(np.abs(ref).max()), 1e-12)
    # float32 rounding can flip the sign of a near-zero eigenvalue sum at a handful of pixels
    assert np.mean(np.abs(ref - ours) > 1e-3 * scale) < 1e-3


def test_frangi_matches_skimage_full_size(angiogram):
    ref = filters.frangi(angiogram, sigmas=range(1, 6))
    assert ref.max() > 0.5
    _assert_parity(ref, frangi(torch.from_numpy(angiogram), sigmas=range(1, 6), coarse_from=None))


@pytest.mark.parametrize("black_ridges", [True, False])
def test_frangi_matches_skimage_default_sigmas(small, black_ridges):
    ref = filters.frangi(small, black_ridges=black_ridges)
    _assert_parity(ref, frangi(torch.from_numpy(small), black_ridges=black_ridges, coarse_from=None))


@pytest.mark.parametrize("black_ridges", [True, False])
def test_sato_matches_skimage(small, black_ridges):
    ref = filters.sato(small, sigmas=range(1, 5), black_ridges=black_ridges)
    _assert_parity(ref, sato(torch.from_numpy(small), sigmas=range(1, 5), black_ridges=black_ridges))


def test_frangi_explicit_gamma_and_beta(small):
    ref = filters.frangi(small, sigmas=(1.5, 3), beta=0.8, gamma=0.02)
    _assert_parity(ref, frangi(torch.from_numpy(small), sigmas=(1.5, 3), beta=0.8, gamma=0.02, coarse_from=None))


@pytest.mark.parametrize("mode,cval", [("constant", 0.3), ("nearest", 0.0), ("mirror", 0.0), ("wrap", 0.0)])
def test_boundary_modes_match_skimage(small, mode, cval):
    ref = filters.frangi(small, sigmas=(1, 3), mode=mode, cval=cval)
    _assert_parity(ref, frangi(torch.from_numpy(small), sigmas=(1, 3), mode=mode, cval=cval, coarse_from=None))


@pytest.mark.parametrize("sigma", [1.0, 2.5])
def test_hessian_matches_skimage(small, sigma):
    ref = hessian_matrix(small, sigma, mode="reflect", use_gaussian_derivatives=True)
    ours = hessian_2d(torch.from_numpy(small), sigma)
    for r, o in zip(ref, ours):
        np.testing.assert_allclose(o.numpy(), r, atol=1e-5 * np.abs(r).max(), rtol=0)


def test_black_and_white_ridges_are_mirror_images(small):
    x = torch.from_numpy(small)
    dark = frangi(x, sigmas=(1, 2, 3))
    assert dark.max() > 0.5
    _assert_parity(dark.numpy(), frangi(1 - x, sigmas=(1, 2, 3), black_ridges=False))
    assert not torch.allclose(frangi(x, sigmas=(1, 2, 3), black_ridges=False), dark, atol=1e-2)


def test_batched_equals_per_image_with_per_image_gamma(small):
    x0 = torch.from_numpy(small)
    x1 = torch.from_numpy(np.ascontiguousarray(small[::-1, ::-1]))
    batch = torch.stack([x0 * 10, x1])[:, None]  # (B, 1, H, W); image 0 has a 10x larger Hessian
    out = frangi(batch, sigmas=(1, 2, 3), chunk_size=2)
    assert out.shape == batch.shape
    # gamma = half the max Hessian norm of EACH image makes the response scale invariant per image
    torch.testing.assert_close(out[0, 0], frangi(x0, sigmas=(1, 2, 3)), atol=1e-5, rtol=0)
    torch.testing.assert_close(out[1, 0], frangi(x1, sigmas=(1, 2, 3)), atol=1e-5, rtol=0)
    torch.testing.assert_close(frangi(batch, sigmas=(1, 2, 3), chunk_size=1), out, atol=1e-6, rtol=0)


def test_gradcheck_frangi_and_sato():
    x = torch.rand(1, 1, 12, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).requires_grad_()
    assert torch.autograd.gradcheck(lambda v: frangi(v, sigmas=(1, 2)), (x,))
    assert torch.autograd.gradcheck(lambda v: sato(v, sigmas=(1, 2)), (x,))


def test_grad_path_matches_inference_path(small):
    x = torch.from_numpy(small)
    xg = x.clone().requires_grad_()
    out = frangi(xg, sigmas=(1, 2, 3))
    out.sum().backward()
    assert torch.isfinite(xg.grad).all() and xg.grad.abs().sum() > 0
    torch.testing.assert_close(out.detach(), frangi(x, sigmas=(1, 2, 3)), atol=1e-5, rtol=0)


def test_dictionary_transform_keeps_shape_meta_and_orientation(small):
    image = MetaTensor(torch.from_numpy(small.T.copy())[None], meta={"filename_or_obj": str(SAMPLE), "frame_index": 0})
    data = FrangiVesselnessd(keys="image", sigmas=range(1, 4), coarse_from=None)({"image": image, "other": 1})
    out = data["vesselness"]
    assert isinstance(out, MetaTensor) and out.dtype == torch.float32 and out.shape == image.shape
    assert out.meta["filename_or_obj"] == str(SAMPLE) and data["image"] is image and data["other"] == 1
    ref = filters.frangi(small, sigmas=range(1, 4)).T  # the (1, W, H) tensor is the (H, W) image transposed
    _assert_parity(ref, out[0].as_tensor())


def test_array_transform_sato_numpy_and_multikey(small):
    arr = np.stack([small, small[::-1].copy()])
    out = FrangiVesselness(method="sato", sigmas=(1, 2))(arr)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == arr.shape
    np.testing.assert_allclose(out[1], filters.sato(arr[1].T, sigmas=(1, 2)).T, atol=1e-5 * out.max())
    d = FrangiVesselnessd(keys=["a", "b"], output_key=["va", "vb"], sigmas=(1,), allow_missing_keys=True)({"a": arr})
    assert set(d) == {"a", "va"}
    with pytest.raises(ValueError):
        FrangiVesselness(method="hessian")
    with pytest.raises(ValueError):
        FrangiVesselnessd(keys=["a", "b"], output_key="v")

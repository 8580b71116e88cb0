"""Vesselness with coarse scales (``coarse_from``, 3 by default): exact on every other row and column, interpolated in
between, close to skimage, batched, differentiable, and passed through the MONAI transform."""

from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from skimage import filters
from skimage.transform import resize

from transforms.vesselness import COARSE_FROM, FrangiVesselness, frangi, sato

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "dca" / "images" / "1.dcm"


@pytest.fixture(scope="module")
def angiogram() -> np.ndarray:
    return pydicom.dcmread(SAMPLE).pixel_array.astype(np.float32) / 255.0


@pytest.fixture(scope="module")
def small(angiogram) -> torch.Tensor:
    """(119, 149): odd sizes, so the coarse grid ends on the last row and column."""
    return torch.from_numpy(resize(angiogram, (119, 149), anti_aliasing=True).astype(np.float32))


@pytest.mark.parametrize("mode,cval,sigmas,step", [("reflect", 0.0, (2, 3), 2), ("constant", 0.3, (2, 3), 2),
                                                   ("reflect", 0.0, (2, 4, 5), 4)])
def test_coarse_scales_are_exact_on_the_coarse_grid(small, mode, cval, sigmas, step):
    """sigmas 2 and 3 on every other pixel; 4 and 5 (twice coarse_from) on every 4th."""
    kw = {"sigmas": sigmas, "mode": mode, "cval": cval}
    exact = frangi(small, gamma=0.05, coarse_from=None, **kw)
    coarse = frangi(small, gamma=0.05, coarse_from=2, **kw)
    grid = (slice(None, None, step), slice(None, None, step))
    torch.testing.assert_close(coarse[grid], exact[grid], atol=1e-5, rtol=0)
    assert (coarse[1::2, 1::2] - exact[1::2, 1::2]).abs().max() > 1e-3
    torch.testing.assert_close(sato(small, coarse_from=2, **kw)[grid], sato(small, **kw)[grid], atol=1e-5, rtol=0)


def test_fine_scales_stay_exact_and_the_maximum_takes_both(small):
    exact_fine = frangi(small, sigmas=(1,), coarse_from=None)
    mixed = frangi(small, sigmas=(1, 2, 3), coarse_from=2)
    assert torch.all(mixed >= exact_fine - 1e-6)
    torch.testing.assert_close(frangi(small, sigmas=(1, 2, 3), coarse_from=4),
                               frangi(small, sigmas=(1, 2, 3), coarse_from=None), atol=1e-6, rtol=0)


def test_coarse_response_correlates_with_skimage(angiogram):
    ref = filters.frangi(angiogram, sigmas=range(1, 6))
    ours = frangi(torch.from_numpy(angiogram), sigmas=range(1, 6), coarse_from=2).numpy()
    assert np.corrcoef(ref.ravel(), ours.ravel())[0, 1] >= 0.999


def test_frangi_default_is_coarse_from_3_and_within_one_percent_of_skimage(angiogram):
    """Frangi's default evaluates sigmas >= 3 on the coarse grid; on the full-size angiogram, sigmas 1-5, it keeps
    r >= 0.9999 against skimage and every pixel within 1% of the maximum response. Sato stays exact by default."""
    assert COARSE_FROM == 3
    x = torch.from_numpy(angiogram)
    ours = frangi(x, sigmas=range(1, 6))
    torch.testing.assert_close(ours, frangi(x, sigmas=range(1, 6), coarse_from=3), atol=0, rtol=0)
    ref = filters.frangi(angiogram, sigmas=range(1, 6))
    assert np.corrcoef(ref.ravel(), ours.numpy().ravel())[0, 1] >= 0.9999
    assert np.abs(ref - ours.numpy()).max() <= 0.01 * np.abs(ref).max()
    assert not torch.allclose(ours, frangi(x, sigmas=range(1, 6), coarse_from=None), atol=1e-6, rtol=0)
    torch.testing.assert_close(sato(x, sigmas=(1, 3)), sato(x, sigmas=(1, 3), coarse_from=None), atol=0, rtol=0)


def test_coarse_batches_chunks_and_gradients(small):
    batch = torch.stack([small, small.flip(0, 1) * 3])[:, None]
    out = frangi(batch, sigmas=(1, 2, 3), coarse_from=2, chunk_size=2)
    torch.testing.assert_close(frangi(batch, sigmas=(1, 2, 3), coarse_from=2, chunk_size=1), out, atol=1e-6, rtol=0)
    torch.testing.assert_close(out[1, 0], frangi(small.flip(0, 1), sigmas=(1, 2, 3), coarse_from=2), atol=1e-5,
                               rtol=0)
    xg = small.clone().requires_grad_()
    grad_out = frangi(xg, sigmas=(1, 2, 3), coarse_from=2)
    grad_out.sum().backward()
    assert torch.isfinite(xg.grad).all() and xg.grad.abs().sum() > 0
    torch.testing.assert_close(grad_out.detach(), out[0, 0], atol=1e-5, rtol=0)


def test_transform_passes_coarse_from(small):
    image = small.T.contiguous()[None]  # (1, W, H)
    out = FrangiVesselness(sigmas=(1, 2, 3), coarse_from=2)(image)
    torch.testing.assert_close(out[0].T, frangi(small, sigmas=(1, 2, 3), coarse_from=2), atol=1e-6, rtol=0)
    assert not torch.allclose(out, FrangiVesselness(sigmas=(1, 2, 3), coarse_from=None)(image), atol=1e-4)

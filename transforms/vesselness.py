"""Frangi and Sato vesselness in torch, matching ``skimage.filters.frangi`` / ``skimage.filters.sato``
(skimage >= 0.20), and the MONAI transforms that apply them. The Hessians come from :mod:`transforms.hessian`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import Transform
from monai.utils.type_conversion import convert_to_dst_type, convert_to_tensor

from ._mapping import ToNewKeyd
from .hessian import Hessians, filter_images, hessian_2d, prepare_images, safe_sqrt, validate_sigmas

__all__ = ["COARSE_FROM", "frangi", "sato", "hessian_2d", "FrangiVesselness", "FrangiVesselnessd"]

_EIGEN_FLOOR = 1e-10
_CHUNK = 1
_EXP_FLOOR = -40.0  # exp(-40) ~ 4e-18: keeps exp and products of exps off the slow denormal paths on CPU
COARSE_FROM = 3.0
"""Default ``coarse_from`` of :func:`frangi`: scales from 3 px on are evaluated on a coarse grid, where the response
is smooth. Against skimage the result keeps Pearson r >= 0.9999 with every pixel within 1% of the maximum response
(``tests/test_vesselness_coarse.py``); its speed is in docs/performance.md. ``coarse_from=None`` is skimage exactly."""


def _frangi_terms(hrr, hrc, hcc, s_scale, rb_scale, scratch=None):
    """Frangi response at one scale from the Hessian, and ``s_scale`` = -1 / (4 gamma**2) per image (broadcastable;
    given as a function of ``q`` at the scale that sets gamma).

    With m2 = Hrr + Hcc and g2 = sqrt((Hrr - Hcc)**2 + 4 Hrc**2) the eigenvalues are (m2 +- g2) / 2; the one of larger
    magnitude, clipped at 1e-10 as in skimage, is (m2 + copysign(g2, m2)) / 2 (at an exact tie, m2 == +0.0, skimage's
    argsort picks the other one). ``q`` = m2**2 + g2**2 is twice the squared Hessian norm.
    With ``scratch`` (a buffer like ``hrr``), works in place without autograd and overwrites its inputs.
    """
    if scratch is None:
        m2 = hrr + hcc
        g2sq = torch.square(hrr - hcc) + 4 * torch.square(hrc)
        q = torch.square(m2) + g2sq
        s_scale = s_scale(q) if callable(s_scale) else s_scale
        sg = torch.copysign(safe_sqrt(g2sq), m2)
        lam2 = torch.clamp_min(m2 + sg, 2 * _EIGEN_FLOOR)
        e_r = torch.exp(torch.clamp_min(torch.square((m2 - sg) / lam2) * rb_scale, _EXP_FLOOR))
        return e_r * (1 - torch.exp(torch.clamp_min(q * s_scale, _EXP_FLOOR))), s_scale
    m2 = torch.add(hrr, hcc, out=scratch)
    g2 = hrr.sub_(hcc).square_().addcmul_(hrc, hrc, value=4)
    q = torch.addcmul(g2, m2, m2, out=hcc)
    s_scale = s_scale(q) if callable(s_scale) else s_scale
    e_s = q.mul_(s_scale).clamp_min_(_EXP_FLOOR).exp_()
    sg = torch.copysign(g2.sqrt_(), m2, out=g2)
    lam2 = torch.add(m2, sg, out=hrc).clamp_min_(2 * _EIGEN_FLOOR)
    e_r = sg.sub_(m2).div_(lam2).square_().mul_(rb_scale).clamp_min_(_EXP_FLOOR).exp_()
    return e_r.sub_(e_s.mul_(e_r)), s_scale


def _coarse(sigmas: list[float], coarse_from: float | None) -> dict[float, int]:
    """{sigma: grid step}: 2 from coarse_from on, 4 from twice coarse_from on."""
    if coarse_from is None:
        return {}
    return {s: 2 if s < 2 * coarse_from else 4 for s in sigmas if s >= coarse_from}


def frangi(
    x,
    sigmas: Iterable[float] = range(1, 10, 2),
    alpha: float = 0.5,
    beta: float = 0.5,
    gamma: float | None = None,
    black_ridges: bool = True,
    mode: str = "reflect",
    cval: float = 0.0,
    chunk_size: int = _CHUNK,
    coarse_from: float | None = COARSE_FROM,
) -> torch.Tensor:
    """Frangi vesselness, the same formula as ``skimage.filters.frangi`` for 2D images, batched and differentiable.

    Args:
        x: torch tensor (H, W), (C, H, W), (B, C, H, W) or any (..., H, W); every trailing (H, W) slice is one image.
            Float32/float64 are kept, other dtypes become float32. The device of ``x`` is used.
        sigmas: Hessian scales (pixels). The response is the pixel-wise maximum over scales.
        alpha: plate-like sensitivity; unused in 2D (kept for skimage's signature).
        beta: blob-like sensitivity.
        gamma: structure sensitivity. None: half the maximum Hessian Frobenius norm of each image at the FIRST
            sigma (skimage's rule, applied per image in a batch; 1 where that norm is 0).
        black_ridges: True detects dark vessels on a bright background.
        mode, cval: boundary handling, as in ``scipy.ndimage`` ("reflect", "constant", "nearest", "mirror", "wrap").
        chunk_size: images filtered together (memory and cache use only; results do not depend on it).
        coarse_from: the scale from which on the Hessian is evaluated at every other row and column only (every 4th
            from twice that scale on), exact there, and the response is interpolated bilinearly in between: an
            approximation at a fraction of the work at those scales (default :data:`COARSE_FROM`, 3 px; see
            docs/performance.md for its speed and its correlation with skimage). None: every scale exact at every
            pixel, as skimage. With the first sigma coarse, gamma comes from the coarse grid.

    Returns:
        tensor of the same shape as ``x``, values in [0, 1].
    """
    sigmas = validate_sigmas(sigmas)
    images, shape = prepare_images(x, black_ridges)
    rb_scale = -1.0 / (2 * beta**2)

    def response(hess: Hessians, grad: bool) -> torch.Tensor:
        def scale(q: torch.Tensor) -> torch.Tensor:
            if gamma is None:
                q_max = hess.image_max(q)
                four_gamma_sq = torch.where(q_max == 0, torch.full_like(q_max, 4.0), q_max / 2)
            else:
                four_gamma_sq = torch.full((hess.shape[0],), 4 * float(gamma) ** 2, dtype=q.dtype, device=q.device)
            return hess.per_image(-1.0 / four_gamma_sq)

        out, s_scale = {}, scale
        for sigma in sigmas:
            h, step = hess(sigma), hess.step(sigma)
            if grad:
                vals, s_scale = _frangi_terms(*h, s_scale, rb_scale)
                out[step] = torch.maximum(out[step], vals) if step in out else vals
            else:
                vals, s_scale = _frangi_terms(*h, s_scale, rb_scale, scratch=hess.scratch("m2", step))
                out[step] = (torch.maximum(out[step], vals, out=out[step]) if step in out
                             else hess.scratch("out", step).copy_(vals))
        return hess.combine(out)

    return filter_images(images, sigmas, mode, cval, chunk_size, response, _coarse(sigmas, coarse_from)).reshape(shape)


def sato(
    x,
    sigmas: Iterable[float] = range(1, 10, 2),
    black_ridges: bool = True,
    mode: str = "reflect",
    cval: float = 0.0,
    chunk_size: int = _CHUNK,
    coarse_from: float | None = None,
) -> torch.Tensor:
    """Sato tubeness, the same formula as ``skimage.filters.sato`` for 2D images: max over sigmas of
    ``sigma**2 * max(largest Hessian eigenvalue, 0)``; batched and differentiable.

    Args:
        x: torch tensor (..., H, W), as for :func:`frangi`.
        sigmas, black_ridges, mode, cval, chunk_size, coarse_from: as for :func:`frangi`, except that coarse_from
            defaults to None (every scale exact): the tubeness grows with sigma**2, so the coarse scales dominate
            it, and coarse_from=3 lowers r against skimage to 0.999 at 512², sigmas 1-5.

    Returns:
        tensor of the same shape as ``x``, values >= 0 (in the units of ``x`` per pixel**2, times sigma**2).
    """
    sigmas = validate_sigmas(sigmas)
    images, shape = prepare_images(x, black_ridges)

    def response(hess: Hessians, grad: bool) -> torch.Tensor:
        out = {}
        for sigma in sigmas:
            (hrr, hrc, hcc), step = hess(sigma), hess.step(sigma)
            if grad:
                g2 = safe_sqrt(torch.square(hrr - hcc) + 4 * torch.square(hrc))
                vals = torch.relu(hrr + hcc + g2) * (sigma**2 / 2)
                out[step] = torch.maximum(out[step], vals) if step in out else vals
            else:
                m2 = torch.add(hrr, hcc, out=hess.scratch("m2", step))
                vals = hrr.sub_(hcc).square_().addcmul_(hrc, hrc, value=4).sqrt_().add_(m2).relu_().mul_(sigma**2 / 2)
                out[step] = (torch.maximum(out[step], vals, out=out[step]) if step in out
                             else hess.scratch("out", step).copy_(vals))
        return hess.combine(out)

    return filter_images(images, sigmas, mode, cval, chunk_size, response, _coarse(sigmas, coarse_from)).reshape(shape)


_METHODS = {"frangi": frangi, "sato": sato}


class FrangiVesselness(Transform):
    """Vesselness of a channel-first image with :func:`frangi` or :func:`sato` (each channel filtered separately).

    Args:
        method: "frangi" (default) or "sato".
        sigmas, alpha, beta, gamma, black_ridges, mode, cval, coarse_from: see :func:`frangi` (alpha, beta, gamma:
            Frangi only; coarse_from None keeps every scale exact, as skimage).

    Input: (C, W, H) ndarray, tensor or MetaTensor in MONAI's spatial order (``pixel_array.T`` of a DICOM frame).
    The filter runs on each (H, W) = (rows, columns) image, so the result is ``skimage.filters.frangi(pixel_array).T``
    (skimage's two-pass Hessian is not exactly symmetric in the two axes near the borders).
    Output: the same type and shape, float32, with metadata kept.
    """

    backend = [torch.Tensor.__name__, np.ndarray.__name__]

    def __init__(
        self,
        method: str = "frangi",
        sigmas: Iterable[float] = range(1, 10, 2),
        alpha: float = 0.5,
        beta: float = 0.5,
        gamma: float | None = None,
        black_ridges: bool = True,
        mode: str = "reflect",
        cval: float = 0.0,
        coarse_from: float | None = COARSE_FROM,
    ):
        if method not in _METHODS:
            raise ValueError(f"method must be one of {sorted(_METHODS)}, got {method!r}")
        self.method = method
        self.sigmas = validate_sigmas(sigmas)
        common = {"sigmas": self.sigmas, "black_ridges": black_ridges, "mode": mode, "cval": cval,
                  "coarse_from": coarse_from}
        self.kwargs = {**common, "alpha": alpha, "beta": beta, "gamma": gamma} if method == "frangi" else common

    def __call__(self, img):
        """img: (C, W, H) -> (C, W, H) float32 vesselness."""
        t = convert_to_tensor(img, track_meta=False)
        if t.ndim != 3:
            raise ValueError(f"FrangiVesselness expects a channel-first 2D image (C, W, H), got shape {tuple(t.shape)}")
        with torch.no_grad():
            out = _METHODS[self.method](t.float().transpose(-1, -2), **self.kwargs).transpose(-1, -2)
        return convert_to_dst_type(out, img, dtype=torch.float32)[0]


class FrangiVesselnessd(ToNewKeyd):
    """Dictionary wrapper of :class:`FrangiVesselness` writing the response to a new key.

    Args:
        keys: image key(s), each (C, W, H).
        output_key: key (or one key per input key) that receives the (C, W, H) float32 response.
        allow_missing_keys: skip absent keys.
        other args: see :class:`FrangiVesselness`.
    """

    backend = FrangiVesselness.backend

    def __init__(
        self,
        keys: KeysCollection,
        output_key: str | Sequence[str] = "vesselness",
        method: str = "frangi",
        sigmas: Iterable[float] = range(1, 10, 2),
        alpha: float = 0.5,
        beta: float = 0.5,
        gamma: float | None = None,
        black_ridges: bool = True,
        mode: str = "reflect",
        cval: float = 0.0,
        allow_missing_keys: bool = False,
        coarse_from: float | None = COARSE_FROM,
    ):
        super().__init__(
            keys, output_key,
            FrangiVesselness(method, sigmas, alpha, beta, gamma, black_ridges, mode, cval, coarse_from),
            allow_missing_keys,
        )

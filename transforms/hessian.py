"""The Hessian engine of the vesselness filters: batched, differentiable 2D Hessians equal to skimage's.

skimage builds each Hessian element from two successive ``scipy.ndimage.gaussian_filter`` calls with Gaussian-derivative
orders at ``sigma / sqrt(2)`` (``hessian_matrix(..., use_gaussian_derivatives=True)``), each call padding the image with
``mode``. Both calls are linear along each axis, so every Hessian element is ``A @ image @ B.T`` with exact ``n x n``
matrices ``A`` and ``B`` (boundary handling included). These matrices are banded; they are stored as block-banded
strips and applied as batched matrix products, one for the rows and one for the columns of each Hessian element.
A scale can be evaluated on a coarse grid only (every `step`-th row and column, step 2 or 4): the row operators keep
every step-th output row, the column operators every step-th output column, so the values there are exact at a
fraction of the work; the filters interpolate the response between them (:meth:`Hessians.upsample`).
The filters built on it are in :mod:`transforms.vesselness`.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Iterable

import numpy as np
import torch
from scipy import ndimage as ndi
from skimage.feature import hessian_matrix

from ._parallel import run_pieces

__all__ = ["Hessians", "filter_images", "hessian_2d", "prepare_images", "safe_sqrt", "validate_sigmas"]

_BAND_TOL = 1e-7
_BLOCK = 32
_SMALL_BLOCK_RADIUS = 12  # from this band radius on, row operators use half blocks (less work, same GEMM rate)


@functools.lru_cache(maxsize=64)
def _axis_matrices(n: int, sigma: float, mode: str) -> tuple[np.ndarray, ...]:
    """Exact (n, n) float64 matrices of skimage's two-pass Gaussian-derivative Hessian along one axis.

    Returns ``(DD, GD, GG, DG)`` where ``GD`` means "derivative pass, then smoothing pass" (matrix product ``G @ D``).
    """
    truncate = 8 if sigma > 1 else 100
    eye = np.eye(n)
    g = ndi.gaussian_filter1d(eye, sigma / math.sqrt(2), axis=0, order=0, mode=mode, truncate=truncate)
    d = ndi.gaussian_filter1d(eye, sigma / math.sqrt(2), axis=0, order=1, mode=mode, truncate=truncate)
    return d @ d, g @ d, g @ g, d @ g


def _band_radius(mats: Iterable[np.ndarray]) -> int:
    radius = 0
    for m in mats:
        rows, cols = np.nonzero(np.abs(m) > _BAND_TOL * np.abs(m).max())
        radius = max(radius, int(np.abs(rows - cols).max()) if rows.size else 0)
    return radius


@functools.lru_cache(maxsize=16)
def _constant_offsets(h: int, w: int, sigma: float, cval: float) -> list[np.ndarray]:
    zeros = np.zeros((h, w))
    return hessian_matrix(zeros, sigma, mode="constant", cval=cval, use_gaussian_derivatives=True)


def _strips(m: np.ndarray, radius: int, block: int, step: int, n_blocks: int) -> np.ndarray:
    """(n, n) banded matrix, output rows taken every `step` -> (n_blocks, block, step * block + 2 * radius) strips;
    strip k maps padded input rows ``[k * step * block, k * step * block + step * block + 2 * radius)`` to output rows
    ``[k * block, (k + 1) * block)`` (output row i is input row ``step * i``)."""
    n = m.shape[0]
    m = m[::step]
    rows, cols = np.indices(m.shape)
    m = np.where(np.abs(step * rows - cols) <= radius, m, 0.0)
    width = step * block + 2 * radius
    padded = np.zeros((n_blocks * block, n_blocks * step * block + 2 * radius))
    padded[: m.shape[0], radius : radius + n] = m
    return np.stack([padded[k * block : (k + 1) * block, k * step * block : k * step * block + width]
                     for k in range(n_blocks)])


@functools.lru_cache(maxsize=64)
def _axis_radius(n: int, sigma: float, mode: str) -> int:
    return _band_radius(_axis_matrices(n, sigma, mode))


@functools.lru_cache(maxsize=256)
def _axis_plan(n: int, sigma: float, mode: str, block: int, step: int, n_blocks: int, device: torch.device,
               dtype: torch.dtype):
    """Cached (radius, (DD, GD, GG, DG) strips, the same strips transposed) for one axis length, scale, mode, block,
    output step, number of blocks, device and dtype."""
    radius = _axis_radius(n, sigma, mode)
    strips = [torch.as_tensor(_strips(m, radius, block, step, n_blocks), dtype=dtype, device=device)
              for m in _axis_matrices(n, sigma, mode)]
    return radius, tuple(strips), tuple(s.transpose(1, 2).contiguous() for s in strips)


def _row_pass(xp: torch.Tensor, strip: torch.Tensor, radius: int, pad: int, step: int, out=None) -> torch.Tensor:
    """Apply a row operator to xp (H' + 2 pad, B, W'') -> (H' / step, B, W'')."""
    n_blocks, block, width = strip.shape
    length, batch, cols = xp.shape
    flat = xp.reshape(length, batch * cols)
    row = batch * cols
    win = flat.as_strided((n_blocks, width, row), (step * block * row, row, 1),
                          flat.storage_offset() + (pad - radius) * row)
    return torch.bmm(strip, win, out=out).reshape(n_blocks * block, batch, cols)


def _col_pass(y: torch.Tensor, strip_t: torch.Tensor, radius: int, pad: int, step: int, out=None) -> torch.Tensor:
    """Apply a column operator (given transposed) to y (H'', B, W' + 2 pad) -> (n_blocks, H'', B, block)."""
    n_blocks, width, block = strip_t.shape
    rows = y.shape[0] * y.shape[1]
    cols = y.shape[2]
    flat = y.reshape(rows, cols)
    win = flat.as_strided((n_blocks, rows, width), (step * block, cols, 1), flat.storage_offset() + pad - radius)
    return torch.bmm(win, strip_t, out=out).reshape(n_blocks, y.shape[0], y.shape[1], block)


class Hessians:
    """Hessian elements of a batch of images at several scales, in a blocked layout (n_col_blocks, H', B, block):
    element [k, i, b, j] is pixel (i, k * block + j) of image b; rows >= H and columns >= W are zero. ``coarse``
    maps scales to a step (2 or 4): those are evaluated at the pixels (step i, step j) only, in the same layout over
    the coarse grid (ceil(H/step), ceil(W/step)) with the block divided by the step (blocks are multiples of the
    largest step).

    With ``reuse=True`` (no autograd) all buffers are allocated once; each call overwrites the previous results.
    """

    def __init__(self, shape, sigmas, mode: str, cval: float, device, dtype, reuse: bool, coarse=None):
        batch, h, w = shape
        self.shape, self.mode, self.cval, self.reuse = shape, mode, float(cval), reuse
        self.coarse = {float(s): int(step) for s, step in (coarse or {}).items()}
        unit = max(self.coarse.values(), default=1)
        r_block, c_block = (-(-min(n, _BLOCK) // unit) * unit for n in (h, w))
        self.rows_out, self.cols_out = -(-h // r_block) * r_block, -(-w // c_block) * c_block
        self.rows, self.cols = {}, {}
        for s in sigmas:
            step = self.step(s)
            rb = r_block // 2 if step == 1 and r_block % 2 == 0 and _axis_radius(h, s, mode) >= _SMALL_BLOCK_RADIUS \
                else r_block // step
            self.rows[s] = _axis_plan(h, s, mode, rb, step, self.rows_out // (rb * step), device, dtype)
            self.cols[s] = _axis_plan(w, s, mode, c_block // step, step, self.cols_out // c_block, device, dtype)
        self.pad_r = max(p[0] for p in self.rows.values())
        self.pad_c = max(p[0] for p in self.cols.values())
        self.blocks = {step: c_block // step for step in (1, *self.coarse.values())}
        self.xp = torch.zeros((self.rows_out + 2 * self.pad_r, batch, self.cols_out + 2 * self.pad_c), dtype=dtype,
                              device=device)
        if reuse:
            self.y, self.h, self.buffers = {}, {}, {}
            for step in {self.step(s) for s in sigmas}:
                self.y[step] = torch.empty((self.rows_out // step, batch * self.xp.shape[2]), dtype=dtype,
                                           device=device)
                self.h[step] = [torch.empty((self.cols_out // c_block, self.rows_out // step, batch, c_block // step),
                                            dtype=dtype, device=device) for _ in range(3)]

    def step(self, sigma: float) -> int:
        """The grid step of a scale: 1, or 2 or 4 for a coarse one."""
        return self.coarse.get(sigma, 1)

    def load(self, images: torch.Tensor) -> Hessians:
        """images: (B, H, W)."""
        _, h, w = self.shape
        if not self.reuse:
            self.xp = self.xp.clone()
        self.xp[self.pad_r : self.pad_r + h, :, self.pad_c : self.pad_c + w] = images.transpose(0, 1)
        return self

    def __call__(self, sigma: float) -> list[torch.Tensor]:
        """[Hrr, Hrc, Hcc], each (n_col_blocks, H', B, block) (over the coarse grid for a coarse scale)."""
        step = self.step(sigma)
        r_rad, (r_dd, r_gd, r_gg, _), _ = self.rows[sigma]
        c_rad, _, (c_dd, _, c_gg, c_dg) = self.cols[sigma]
        out = []
        for k, (row_op, col_op) in enumerate(((r_dd, c_gg), (r_gd, c_dg), (r_gg, c_dd))):
            y_out = self.y[step].view(r_dd.shape[0], r_dd.shape[1], -1) if self.reuse else None
            y = _row_pass(self.xp, row_op, r_rad, self.pad_r, step, out=y_out)
            h_out = self.h[step][k].view(self.h[step][k].shape[0], -1, self.blocks[step]) if self.reuse else None
            out.append(_col_pass(y, col_op, c_rad, self.pad_c, step, out=h_out))
        if self.mode == "constant" and self.cval != 0:
            out = [h.add_(o) if self.reuse else h + o for h, o in zip(out, self._cval_offsets(sigma))]
        return out

    def _cval_offsets(self, sigma: float) -> list[torch.Tensor]:
        """The Hessian is affine in the image; skimage pads every pass with ``cval``, which adds H(zeros)."""
        _, h, w = self.shape
        step = self.step(sigma)
        rows, cols = self.rows_out // step, self.cols_out // step
        out = []
        for off in _constant_offsets(h, w, sigma, self.cval):
            off = off[::step, ::step]
            t = self.xp.new_zeros((rows, cols))
            t[: off.shape[0], : off.shape[1]] = torch.as_tensor(off)
            out.append(t.reshape(rows, -1, self.blocks[step]).permute(1, 0, 2).unsqueeze(2))
        return out

    def unblock(self, t: torch.Tensor, step: int = 1) -> torch.Tensor:
        """(n_col_blocks, H', B, block) -> (B, H, W) view (over the coarse grid of that step)."""
        batch, h, w = self.shape
        return t.permute(2, 1, 0, 3).reshape(batch, self.rows_out // step, -1)[:, : -(-h // step), : -(-w // step)]

    def upsample(self, t: torch.Tensor, step: int) -> torch.Tensor:
        """(n_col_blocks, H', B, block) over the coarse grid of `step` -> (B, H, W), bilinear between its pixels."""
        _, h, w = self.shape
        coarse = torch.nn.functional.pad(self.unblock(t, step)[:, None], (0, 1, 0, 1), mode="replicate")
        size = (step * (coarse.shape[2] - 1) + 1, step * (coarse.shape[3] - 1) + 1)
        return torch.nn.functional.interpolate(coarse, size=size, mode="bilinear", align_corners=True)[:, 0, :h, :w]

    def combine(self, responses: dict) -> torch.Tensor:
        """{step: blocked response over that grid} -> (B, H, W) pixel-wise maximum (coarse grids upsampled)."""
        maps = [self.unblock(t) if step == 1 else self.upsample(t, step) for step, t in sorted(responses.items())]
        return maps[0] if len(maps) == 1 else functools.reduce(torch.maximum, maps)

    def scratch(self, name: str, step: int = 1) -> torch.Tensor:
        """A reusable buffer shaped like one Hessian element (of the coarse grid of that step)."""
        if (name, step) not in self.buffers:
            self.buffers[name, step] = torch.empty_like(self.h[step][0])
        return self.buffers[name, step]

    @staticmethod
    def per_image(t: torch.Tensor) -> torch.Tensor:
        """Broadcastable view of a (B,) tensor against the blocked layout."""
        return t.reshape(1, 1, -1, 1)

    @staticmethod
    def image_max(t: torch.Tensor) -> torch.Tensor:
        """(n_col_blocks, H', B, block) -> (B,) per-image maximum."""
        return t.amax(dim=(0, 1, 3))


def filter_images(images: torch.Tensor, sigmas, mode: str, cval: float, chunk_size: int, response,
                  coarse=None) -> torch.Tensor:
    """Run ``response(hessians, grad) -> (B, H, W) map`` over chunks of (N, H, W) images; ``coarse`` maps scales to
    the step of the grid they are evaluated on (2 or 4). Without autograd the chunks are spread over torch's threads
    (:func:`transforms._parallel.run_pieces`), each worker reusing its own buffers."""
    chunks = torch.split(images, chunk_size)
    grad = torch.is_grad_enabled() and images.requires_grad
    if grad:
        return torch.cat([response(Hessians(tuple(c.shape), sigmas, mode, cval, c.device, c.dtype, reuse=False,
                                            coarse=coarse).load(c), True) for c in chunks])
    out = torch.empty_like(images)
    local = threading.local()

    def run(i: int) -> None:
        chunk = chunks[i]
        hess = getattr(local, "hess", None)
        if hess is None or hess.shape != tuple(chunk.shape):
            hess = local.hess = Hessians(tuple(chunk.shape), sigmas, mode, cval, images.device, images.dtype,
                                         reuse=True, coarse=coarse)
        out[i * chunk_size : i * chunk_size + chunk.shape[0]] = response(hess.load(chunk), False)

    run_pieces(run, len(chunks), images.device)
    return out


def _as_images(x) -> tuple[torch.Tensor, tuple[int, ...], torch.dtype]:
    x = torch.as_tensor(x)
    if x.ndim < 2:
        raise ValueError(f"vesselness needs a 2D image or a batch (..., H, W), got shape {tuple(x.shape)}")
    out_dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    images = x.reshape(-1, *x.shape[-2:]).to(out_dtype)
    return images, tuple(x.shape), out_dtype


def prepare_images(x, black_ridges: bool):
    images, shape, dtype = _as_images(x)
    if not black_ridges:
        images = -images
    return images, shape


def safe_sqrt(t: torch.Tensor) -> torch.Tensor:
    """sqrt with a zero (not infinite) gradient at 0."""
    if not torch.is_grad_enabled() or not t.requires_grad:
        return torch.sqrt(t)
    positive = t > 0
    return torch.where(positive, torch.sqrt(torch.where(positive, t, torch.ones_like(t))), torch.zeros_like(t))


def validate_sigmas(sigmas) -> list[float]:
    sigmas = [float(s) for s in sigmas]
    if not sigmas or any(s <= 0 for s in sigmas):
        raise ValueError(f"sigmas must be a non-empty sequence of positive numbers, got {sigmas}")
    return sigmas


def hessian_2d(x, sigma: float, mode: str = "reflect", cval: float = 0.0) -> tuple[torch.Tensor, ...]:
    """Hessian (Hrr, Hrc, Hcc) as ``skimage.feature.hessian_matrix(x, sigma, mode, cval,
    use_gaussian_derivatives=True)``; each element has the shape of ``x`` (..., H, W)."""
    images, shape = prepare_images(x, True)
    hess = Hessians(tuple(images.shape), [float(sigma)], mode, cval, images.device, images.dtype, reuse=False)
    return tuple(hess.unblock(h).reshape(shape) for h in hess.load(images)(float(sigma)))


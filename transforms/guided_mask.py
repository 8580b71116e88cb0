"""Anatomy-guided MAE masking: vessel-rich patches are masked more often, with a strength beta shared with workers."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Randomizable, Transform
from monai.utils import convert_to_numpy

GUIDANCE_MODES = ("mask", "mixed")


class SharedBeta:
    """A float in shared memory: set in the main process, read in DataLoader workers (forked, spawned, persistent).

    The value lives in a one-element tensor moved to shared memory, so pickling (spawn) or forking passes the
    storage, not a copy of the number.
    """

    def __init__(self, value: float = 0.0):
        self._t = torch.tensor([float(value)], dtype=torch.float64).share_memory_()

    @property
    def value(self) -> float:
        return float(self._t[0])

    @value.setter
    def value(self, v: float) -> None:
        self._t[0] = float(v)

    def __deepcopy__(self, memo):
        return self

    def __float__(self) -> float:
        return self.value

    def __repr__(self) -> str:
        return f"SharedBeta({self.value})"


def patch_distributions(maps: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Vascular distributions f over the patches of a batch of maps.

    Args:
        maps: (B, C, D1, D2) non-negative maps (binary pseudo-masks, or soft maps in [0, 1]); D1 and D2 multiples of
            patch_size; the C channels are summed.
        patch_size: P.
    Returns:
        f: (B, L) in the maps' floating dtype (float32 at least), L = (D1/P)(D2/P), patch i = rows [r*P, (r+1)*P) x
        cols [c*P, (c+1)*P) with r = i // (D2/P), c = i % (D2/P); each row sums to 1, or is all zero when its map is
        empty.
    """
    b, _, d1, d2 = maps.shape
    if d1 % patch_size or d2 % patch_size:
        raise ValueError(f"image size {(d1, d2)} is not a multiple of patch_size {patch_size}")
    maps = maps.to(torch.promote_types(maps.dtype, torch.float32))
    per_patch = maps.reshape(b, -1, d1 // patch_size, patch_size, d2 // patch_size, patch_size).sum((1, 3, 5))
    per_patch = per_patch.reshape(b, -1)
    total = per_patch.sum(1, keepdim=True)
    return torch.where(total > 0, per_patch / total.clamp_min(torch.finfo(maps.dtype).tiny), 0.0)


def patch_distribution(vessel_map, patch_size: int) -> np.ndarray:
    """One map (1, D1, D2) or (D1, D2) -> f (L,) float64: :func:`patch_distributions` of a batch of one."""
    m = torch.as_tensor(convert_to_numpy(vessel_map), dtype=torch.float64)
    return patch_distributions(m.reshape(1, 1, *m.shape[-2:]), patch_size)[0].numpy()


def num_masked(num_patches: int, mask_ratio: float) -> int:
    """num_mask = L - int(L * (1 - r)) as in the authors' code."""
    return num_patches - int(num_patches * (1 - mask_ratio))


def guidance_map(vessel_mask, soft=None, guidance: str = "mixed") -> torch.Tensor:
    """The map whose per-patch mass is the vascular distribution f, element by element (any shape, batched or not).

    Args:
        vessel_mask: the binary pseudo-mask m, e.g. (B, 1, D1, D2) or (1, D1, D2).
        soft: the frozen segmentor's probability sigma(S(I)), same shape, in [0, 1]; needed for "mixed".
        guidance: "mixed": 0.5 * m + 0.5 * soft (the authors' ``models_vmae.py``); "mask": m > 0 (the poster).
    Returns:
        the map, shaped like vessel_mask, float32 (float64 when soft is float64), on vessel_mask's device.
    """
    m = (torch.as_tensor(vessel_mask) > 0).float()
    if guidance == "mask":
        return m
    if soft is None:
        raise ValueError('guidance="mixed" needs a soft map (same shape as the pseudo-mask, values in [0, 1])')
    s = torch.as_tensor(soft, device=m.device)
    s = s.to(torch.promote_types(s.dtype, torch.float32))
    if s.shape != m.shape:
        raise ValueError(f"soft map shape {tuple(s.shape)} differs from pseudo-mask shape {tuple(m.shape)}")
    return 0.5 * m + 0.5 * s.clamp(0.0, 1.0)


def check_masking(mask_ratio: float, guidance: str) -> None:
    """Raises ValueError unless mask_ratio lies in (0, 1) and guidance is one of GUIDANCE_MODES."""
    if not 0 < mask_ratio < 1:
        raise ValueError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
    if guidance not in GUIDANCE_MODES:
        raise ValueError(f"guidance must be one of {GUIDANCE_MODES}, got {guidance!r}")


def beta_value(beta: float | SharedBeta) -> float:
    """The guidance strength now, read from the SharedBeta when one is given; checked to lie in [0, 1]."""
    value = float(beta.value if isinstance(beta, SharedBeta) else beta)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"beta must be in [0, 1], got {value}")
    return value


def draw_masks(f: torch.Tensor, mask_ratio: float, beta: float, generator: torch.Generator | None = None):
    """Anatomy-guided MAE masks for a batch, drawn on f's device.

    In each row, k = min(int(num_mask * beta), #patches with f > 0) patches are drawn with probability proportional
    to f, without replacement (Gumbel top-k: the k largest log f + Gumbel noise, distributed as k successive draws),
    and the other num_mask - k uniformly from the rest; num_mask = L - int(L * (1 - mask_ratio)).

    Args:
        f: (B, L) vascular distributions (rows sum to 1, or are all zero: plain uniform masking); the draw runs in
            f's floating dtype (float32 at least).
        mask_ratio: r in (0, 1).
        beta: guidance strength in [0, 1].
        generator: torch generator on f's device (None: the global one).
    Returns:
        mask (B, L) float32 (1 = masked), ids_keep (B, L - num_mask) int64 (ascending in each row), ids_restore
        (B, L) int64 with ids_shuffle = cat(ids_keep, masked ids ascending) and ids_restore = argsort(ids_shuffle)
        (MAE convention).
    """
    b, num_patches = f.shape
    n_mask = num_masked(num_patches, mask_ratio)
    dtype = torch.promote_types(f.dtype, torch.float32)
    u = torch.rand(2, b, num_patches, generator=generator, device=f.device, dtype=dtype)
    keys = torch.log(f.to(dtype)) - torch.log(-torch.log(u[0].clamp_min(torch.finfo(dtype).tiny)))
    k = torch.clamp((f > 0).sum(1, keepdim=True), max=int(n_mask * beta))
    first = (torch.arange(num_patches, device=f.device) < k).to(dtype)
    guided = torch.zeros_like(first).scatter_(1, torch.argsort(keys, dim=1, descending=True), first)
    masked = torch.topk(guided * 2.0 + u[1], n_mask, dim=1).indices
    mask = torch.zeros(b, num_patches, device=f.device).scatter_(1, masked, 1.0)
    ids_shuffle = torch.argsort(mask, dim=1, stable=True)
    return mask, ids_shuffle[:, : num_patches - n_mask], torch.argsort(ids_shuffle, dim=1)


class AnatomyGuidedMask(Randomizable, Transform):
    """Draws one image's MAE mask with :func:`draw_masks`: vessel-rich patches are masked more often, with strength
    beta.

    Args:
        patch_size: P.
        mask_ratio: r; num_mask = L - int(L * (1 - r)).
        beta: guidance strength in [0, 1], a float or a SharedBeta updated by a schedule.
        guidance: "mixed" (the authors' code): f from 0.5 * m + 0.5 * soft, with soft the frozen segmentor's
            probability sigma(S(I)) in [0, 1]; "mask" (the poster): f from the binary pseudo-mask m alone.

    Call with the pseudo-mask (1, D1, D2) [and the soft map (1, D1, D2) for "mixed"]; returns
    mask (L,) float32 (1 = masked), ids_keep (L - num_mask,) int64 (ascending), ids_restore (L,) int64 such that
    ids_shuffle = cat(ids_keep, ids_masked) and ids_restore = argsort(ids_shuffle) (MAE convention).
    An image without vessel pixels gets plain uniform random masking. The draw follows this transform's own random
    state (``set_random_state``); ``randomize=False`` repeats the previous draw's random numbers.
    """

    def __init__(self, patch_size: int = 16, mask_ratio: float = 0.75, beta: float | SharedBeta = 0.0,
                 guidance: str = "mask"):
        check_masking(mask_ratio, guidance)
        self.patch_size = int(patch_size)
        self.mask_ratio = float(mask_ratio)
        self.beta = beta
        self.guidance = guidance
        self._seed: int | None = None

    def randomize(self, data=None) -> None:
        self._seed = int(self.R.randint(2**62))

    def __call__(self, vessel_mask, soft=None, randomize: bool = True):
        m = torch.as_tensor(convert_to_numpy(vessel_mask))
        soft = None if soft is None else torch.as_tensor(convert_to_numpy(soft, dtype=np.float64))
        f = patch_distributions(guidance_map(m, soft, self.guidance).reshape(1, 1, *m.shape[-2:]), self.patch_size)
        beta = beta_value(self.beta)
        if randomize or self._seed is None:
            self.randomize()
        mask, ids_keep, ids_restore = draw_masks(f, self.mask_ratio, beta, torch.Generator().manual_seed(self._seed))
        return mask[0], ids_keep[0], ids_restore[0]


class AnatomyGuidedMaskd(Randomizable, MapTransform):
    """Dictionary wrapper of AnatomyGuidedMask.

    Reads the pseudo-mask d[keys] (1, D1, D2) (one key) and, for guidance="mixed", d[soft_key] (1, D1, D2);
    writes d[mask_key] (L,) float32 (1 = masked), d[ids_keep_key] (L_keep,) int64, d[ids_restore_key] (L,) int64.

    Args:
        keys: the pseudo-mask key (exactly one).
        mask_key, ids_keep_key, ids_restore_key: output keys.
        soft_key: key of the soft map sigma(S(I)) (1, D1, D2) in [0, 1], for guidance="mixed".
        patch_size, mask_ratio, beta, guidance: see AnatomyGuidedMask.
    """

    def __init__(
        self,
        keys: KeysCollection = "vessel_mask",
        mask_key: str = "mask",
        ids_keep_key: str = "ids_keep",
        ids_restore_key: str = "ids_restore",
        soft_key: str | None = None,
        patch_size: int = 16,
        mask_ratio: float = 0.75,
        beta: float | SharedBeta = 0.0,
        guidance: str = "mask",
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        if len(self.keys) != 1:
            raise ValueError(f"AnatomyGuidedMaskd takes exactly one pseudo-mask key, got {self.keys}")
        if guidance == "mixed" and soft_key is None:
            raise ValueError('guidance="mixed" needs soft_key')
        self.mask_key, self.ids_keep_key, self.ids_restore_key = mask_key, ids_keep_key, ids_restore_key
        self.soft_key = soft_key
        self.masker = AnatomyGuidedMask(patch_size, mask_ratio, beta, guidance)

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        super().set_random_state(seed, state)
        self.masker.set_random_state(seed, state)
        return self

    def randomize(self, data=None) -> None:
        self.masker.randomize(data)

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            soft = d[self.soft_key] if self.masker.guidance == "mixed" else None
            d[self.mask_key], d[self.ids_keep_key], d[self.ids_restore_key] = self.masker(d[key], soft)
        return d


__all__ = ["SharedBeta", "AnatomyGuidedMask", "AnatomyGuidedMaskd", "beta_value", "check_masking", "draw_masks",
           "guidance_map", "num_masked", "patch_distribution", "patch_distributions"]

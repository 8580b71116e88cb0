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


def patch_distribution(vessel_map, patch_size: int) -> np.ndarray:
    """Vascular distribution f over the patches of a map.

    Args:
        vessel_map: (1, D1, D2) or (D1, D2) non-negative map (binary pseudo-mask, or a soft map in [0, 1]);
            D1 and D2 multiples of patch_size.
        patch_size: P.
    Returns:
        f: (L,) float64, L = (D1/P)(D2/P), patch i = rows [r*P, (r+1)*P) x cols [c*P, (c+1)*P) of (D1, D2) with
        r = i // (D2/P), c = i % (D2/P); f sums to 1, or is all zero when the map is empty.
    """
    m = convert_to_numpy(vessel_map)
    m = m.reshape(m.shape[-2:])
    d1, d2 = m.shape
    if d1 % patch_size or d2 % patch_size:
        raise ValueError(f"image size {(d1, d2)} is not a multiple of patch_size {patch_size}")
    patches = m.reshape(d1 // patch_size, patch_size, d2 // patch_size, patch_size)
    per_patch = patches.sum(axis=(1, 3), dtype=np.float64).ravel()
    total = per_patch.sum()
    return per_patch / total if total > 0 else np.zeros_like(per_patch)


def num_masked(num_patches: int, mask_ratio: float) -> int:
    """num_mask = L - int(L * (1 - r)) as in the authors' code."""
    return num_patches - int(num_patches * (1 - mask_ratio))


def guidance_map(vessel_mask, soft=None, guidance: str = "mixed") -> np.ndarray:
    """The map whose per-patch mass is the vascular distribution f.

    Args:
        vessel_mask: the binary pseudo-mask m, (1, D1, D2) or (D1, D2).
        soft: the frozen segmentor's probability sigma(S(I)), same shape, in [0, 1]; needed for "mixed".
        guidance: "mixed": 0.5 * m + 0.5 * soft (the authors' ``models_vmae.py``), float64; "mask": m > 0 (the
            poster), bool.
    Returns:
        the map, shaped like vessel_mask.
    """
    m = convert_to_numpy(vessel_mask)
    if guidance == "mask":
        return m > 0
    if soft is None:
        raise ValueError('guidance="mixed" needs a soft map (same shape as the pseudo-mask, values in [0, 1])')
    s = convert_to_numpy(soft, dtype=np.float64)
    if s.shape != m.shape:
        raise ValueError(f"soft map shape {s.shape} differs from pseudo-mask shape {m.shape}")
    return 0.5 * (m > 0) + 0.5 * np.clip(s, 0.0, 1.0)


class AnatomyGuidedMask(Randomizable, Transform):
    """Draws an MAE mask where k = min(int(num_mask * beta), #patches with f > 0) patches are drawn with probability
    proportional to the vascular distribution f (without replacement), the other num_mask - k uniformly from the rest.

    Args:
        patch_size: P.
        mask_ratio: r; num_mask = L - int(L * (1 - r)).
        beta: guidance strength in [0, 1], a float or a SharedBeta updated by a schedule.
        guidance: "mixed" (the authors' code): f from 0.5 * m + 0.5 * soft, with soft the frozen segmentor's
            probability sigma(S(I)) in [0, 1]; "mask" (the poster): f from the binary pseudo-mask m alone.

    Call with the pseudo-mask (1, D1, D2) [and the soft map (1, D1, D2) for "mixed"]; returns
    mask (L,) float32 (1 = masked), ids_keep (L - num_mask,) int64 (ascending), ids_restore (L,) int64 such that
    ids_shuffle = cat(ids_keep, ids_masked) and ids_restore = argsort(ids_shuffle) (MAE convention).
    An image without vessel pixels gets plain uniform random masking.
    """

    def __init__(self, patch_size: int = 16, mask_ratio: float = 0.75, beta: float | SharedBeta = 0.0,
                 guidance: str = "mask"):
        if not 0 < mask_ratio < 1:
            raise ValueError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
        if guidance not in GUIDANCE_MODES:
            raise ValueError(f"guidance must be one of {GUIDANCE_MODES}, got {guidance!r}")
        self.patch_size = int(patch_size)
        self.mask_ratio = float(mask_ratio)
        self.beta = beta
        self.guidance = guidance
        self._masked: np.ndarray | None = None

    def current_beta(self) -> float:
        """The beta used for the next draw, read from the SharedBeta when one was given."""
        beta = float(self.beta.value if isinstance(self.beta, SharedBeta) else self.beta)
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {beta}")
        return beta

    def randomize(self, f: np.ndarray) -> None:
        num_patches = f.shape[0]
        n_mask = num_masked(num_patches, self.mask_ratio)
        k = min(int(n_mask * self.current_beta()), int((f > 0).sum()))
        guided = self.R.choice(num_patches, size=k, replace=False, p=f) if k > 0 else np.empty(0, dtype=np.int64)
        free = np.ones(num_patches, dtype=bool)
        free[guided] = False
        rest = np.flatnonzero(free)
        uniform = self.R.choice(rest, size=n_mask - k, replace=False)
        self._masked = np.concatenate([guided, uniform]).astype(np.int64)

    def __call__(self, vessel_mask, soft=None, randomize: bool = True):
        f = patch_distribution(guidance_map(vessel_mask, soft, self.guidance), self.patch_size)
        if randomize or self._masked is None:
            self.randomize(f)
        num_patches = f.shape[0]
        mask = np.zeros(num_patches, dtype=np.float32)
        mask[self._masked] = 1.0
        ids_keep = np.flatnonzero(mask == 0)
        ids_shuffle = np.concatenate([ids_keep, np.flatnonzero(mask)])
        ids_restore = np.empty(num_patches, dtype=np.int64)
        ids_restore[ids_shuffle] = np.arange(num_patches)
        return torch.from_numpy(mask), torch.from_numpy(ids_keep), torch.from_numpy(ids_restore)


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


__all__ = ["SharedBeta", "AnatomyGuidedMask", "AnatomyGuidedMaskd", "guidance_map", "patch_distribution", "num_masked"]

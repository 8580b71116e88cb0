"""The MAE masks of a pretraining step, drawn in the step on the batch's device: anatomy-guided, with the authors'
guidance map 0.5·m + 0.5·σ(S(I)) computed by one call of the frozen segmentor S on the whole batch."""

from __future__ import annotations

import torch

from transforms import SharedBeta
from transforms.guided_mask import beta_value, check_masking, draw_masks, guidance_map, patch_distributions

from .losses import fast_frozen_copy


class StepMasking:
    """(images (B, C, D1, D2), vessel_mask (B, 1, D1, D2)) -> (mask (B, L) float32 1 = masked, ids_keep
    (B, L_keep) int64, ids_restore (B, L) int64, soft (B, 1, D1, D2) float32 = σ(S(images)) or None), on the images'
    device.

    The vascular distribution f of each image is the per-patch mass of its guidance map (``guidance_map``): m alone
    for "mask", 0.5·m + 0.5·σ(S(I)) for "mixed", with S the frozen segmentor (a ``fast_frozen_copy``, moved to the
    images' device on first use). The masks follow ``transforms.guided_mask.draw_masks`` with the current beta. The
    returned soft map is the consistency loss's target σ(S(I)), so that S runs on I once per step.

    Args:
        patch_size: P of the MAE.
        mask_ratio: r; num_mask = L - int(L * (1 - r)).
        beta: guidance strength in [0, 1], a float or the SharedBeta of the beta schedule (0: uniform masking).
        guidance: "mask" or "mixed" (needs segmentor).
        segmentor: S, (B, 1, D1, D2) -> logits (B, 1, D1, D2); copied, the caller's module is left as it is.
        seed: seed of this masker's own generator (give each DDP rank its own, e.g. seed + rank).
    """

    def __init__(self, patch_size: int, mask_ratio: float, beta: float | SharedBeta = 0.0, guidance: str = "mask",
                 segmentor: torch.nn.Module | None = None, seed: int = 0):
        check_masking(mask_ratio, guidance)
        if guidance == "mixed" and segmentor is None:
            raise ValueError('guidance="mixed" needs the segmentor S')
        self.patch_size, self.mask_ratio, self.beta, self.guidance = int(patch_size), float(mask_ratio), beta, guidance
        self.segmentor = fast_frozen_copy(segmentor) if guidance == "mixed" else None
        self.seed = int(seed)
        self._generator: torch.Generator | None = None

    def current_beta(self) -> float:
        """The beta of the next draw."""
        return beta_value(self.beta)

    def probability(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, C, D1, D2) -> σ(S(images)) (B, 1, D1, D2) float32, without a graph."""
        self.segmentor.to(images.device)
        with torch.no_grad():
            return torch.sigmoid(self.segmentor(images.contiguous(memory_format=torch.channels_last)).float())

    def __call__(self, images: torch.Tensor, vessel_mask: torch.Tensor):
        if self._generator is None or self._generator.device != images.device:
            self._generator = torch.Generator(images.device).manual_seed(self.seed)
        soft = self.probability(images) if self.guidance == "mixed" else None
        f = patch_distributions(guidance_map(vessel_mask.to(images.device), soft, self.guidance), self.patch_size)
        return (*draw_masks(f, self.mask_ratio, self.current_beta(), self._generator), soft)

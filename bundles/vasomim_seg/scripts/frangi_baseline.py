"""The "traditional" baseline: thresholded Frangi vesselness, wrapped as a module so it runs through the evaluator."""

from __future__ import annotations

import torch

from transforms import VesselPseudoMask, frangi


class FrangiBaseline(torch.nn.Module):
    """Frangi vesselness -> binary vessel mask, returned as logits for the usual sigmoid + 0.5 post-processing.

    Args:
        mode: "threshold": vessel where vesselness / (max over the image) > ``threshold``;
            "pseudo_mask": ``transforms.VesselPseudoMask`` (percentile threshold inside a border, connected
            components) applied to the vesselness.
        threshold: relative vesselness threshold in [0, 1) for mode "threshold". 0.03 is the value tuned on the 32
            training images of xca_dca80_train at img_size 128 (docs/reproduction.md; 0.15 scored far lower).
        sigmas, beta, gamma: Frangi parameters (``transforms.frangi``); vessels are dark (black ridges).
        pseudo_mask_args: keyword arguments of ``VesselPseudoMask`` for mode "pseudo_mask".
        logit_scale: magnitude of the returned logits.

    Forward: x (B, 1, D1, D2) in [0, 1] -> logits (B, 1, D1, D2), positive exactly on the mask.
    """

    def __init__(self, mode: str = "threshold", threshold: float = 0.03, sigmas=(1, 2, 3, 4), beta: float = 0.5,
                 gamma: float | None = None, pseudo_mask_args: dict | None = None, logit_scale: float = 10.0) -> None:
        super().__init__()
        if mode not in ("threshold", "pseudo_mask"):
            raise ValueError(f"mode must be 'threshold' or 'pseudo_mask', got {mode!r}.")
        self.mode, self.threshold = mode, float(threshold)
        self.sigmas, self.beta, self.gamma = tuple(sigmas), beta, gamma
        self.pseudo_mask = VesselPseudoMask(**(pseudo_mask_args or {})) if mode == "pseudo_mask" else None
        self.logit_scale = logit_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, 1, D1, D2) -> logits (B, 1, D1, D2)."""
        v = frangi(x.float(), sigmas=self.sigmas, beta=self.beta, gamma=self.gamma, black_ridges=True)
        if self.pseudo_mask is None:
            peak = v.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-12)
            mask = v / peak > self.threshold
        else:
            mask = torch.stack([torch.as_tensor(self.pseudo_mask(v[b])) > 0 for b in range(v.shape[0])]).to(v.device)
        return (mask.float() * 2.0 - 1.0) * self.logit_scale

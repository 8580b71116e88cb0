"""Dice (+ BCE) segmentation loss with an optional soft clDice term."""

from __future__ import annotations

import torch
from monai.losses import DiceCELoss, SoftclDiceLoss


class VesselSegLoss(torch.nn.Module):
    """``DiceCELoss(sigmoid=True)`` (Dice + ``lambda_ce`` x BCE-with-logits; ``lambda_ce`` 1 is the loss of CheXWorld's
    segmentation training loop, 0 is Dice alone) plus ``cldice_weight * SoftclDiceLoss`` when enabled.

    Args:
        use_cldice: add MONAI's soft clDice loss.
        cldice_weight: weight of the soft clDice term.
        cldice_iters: soft-skeleton iterations of ``SoftclDiceLoss``.
        lambda_dice, lambda_ce: weights of the Dice and BCE terms.

    Forward: logits (B, 1, D1, D2), target (B, 1, D1, D2) {0, 1} -> scalar.
    """

    def __init__(self, use_cldice: bool = False, cldice_weight: float = 0.5, cldice_iters: int = 3,
                 lambda_dice: float = 1.0, lambda_ce: float = 1.0) -> None:
        super().__init__()
        self.dice_ce = DiceCELoss(sigmoid=True, lambda_dice=lambda_dice, lambda_ce=lambda_ce)
        self.cldice = SoftclDiceLoss(iter_=cldice_iters, sigmoid=True) if use_cldice else None
        self.cldice_weight = cldice_weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """logits (B, 1, D1, D2), target (B, 1, D1, D2) -> scalar loss."""
        loss = self.dice_ce(logits, target)
        if self.cldice is not None:
            loss = loss + self.cldice_weight * self.cldice(logits, target)
        return loss

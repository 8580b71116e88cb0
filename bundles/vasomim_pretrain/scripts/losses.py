"""VasoMIM losses: norm-pix MSE on masked patches (L_rec) + anatomical consistency through a frozen segmentor
(L_cons)."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd, _ConvTransposeNd
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .mae import patchify, unpatchify


def patch_stats(target: torch.Tensor, eps: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """target (B, L, P*P*C) -> per-patch mean (B, L, 1) and std sqrt(var + eps) (B, L, 1) (unbiased var, as MAE)."""
    return target.mean(dim=-1, keepdim=True), (target.var(dim=-1, keepdim=True) + eps).sqrt()


def patch_targets(imgs: torch.Tensor, patch_size: int, norm_pix_loss: bool = True):
    """imgs (B, C, D1, D2) -> (target (B, L, P*P*C), mean (B, L, 1) or None, std (B, L, 1) or None): the patchified
    image, normalised per patch when norm_pix_loss, with the statistics used (shared by L_rec and the
    reconstruction)."""
    target = patchify(imgs, patch_size)
    if not norm_pix_loss:
        return target, None, None
    mean, std = patch_stats(target)
    return (target - mean) / std, mean, std


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """pred, target (B, L, P*P*C), mask (B, L) 1 = masked -> scalar mean squared error over the masked patches."""
    loss = ((pred.float() - target) ** 2).mean(dim=-1)
    return (loss * mask).sum() / mask.sum()


def forward_loss(imgs: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor, patch_size: int,
                 norm_pix_loss: bool = True) -> torch.Tensor:
    """MAE reconstruction loss: imgs (B, C, D1, D2), pred (B, L, P*P*C), mask (B, L) 1 = masked -> scalar,
    the mean squared error over masked patches, targets normalised per patch when norm_pix_loss."""
    return masked_mse(pred, patch_targets(imgs, patch_size, norm_pix_loss)[0], mask)


def unnormalise(pred: torch.Tensor, mean: torch.Tensor | None, std: torch.Tensor | None, patch_size: int,
                grid: Sequence[int], channels: int) -> torch.Tensor:
    """pred (B, L, P*P*C) in normalised-patch units (mean/std (B, L, 1) or None) -> I' (B, C, D1, D2)."""
    pred = pred.float()
    if mean is not None:
        pred = torch.addcmul(mean, pred, std)
    return unpatchify(pred, patch_size, grid, channels)


def reconstruct(imgs: torch.Tensor, pred: torch.Tensor, patch_size: int, norm_pix_loss: bool = True) -> torch.Tensor:
    """I' (B, C, D1, D2): the decoder's predictions for all patches, de-normalised with each target patch's own
    mean and std when norm_pix_loss, unpatchified. imgs (B, C, D1, D2), pred (B, L, P*P*C)."""
    _, mean, std = patch_targets(imgs, patch_size, norm_pix_loss)
    grid = (imgs.shape[-2] // patch_size, imgs.shape[-1] // patch_size)
    return unnormalise(pred, mean, std, patch_size, grid, imgs.shape[1])


def consistency_loss(segmentor: nn.Module, imgs: torch.Tensor, recon: torch.Tensor,
                     soft: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
    """L_cons = BCEWithLogits(S(I'), sigmoid(S(I)).detach()), mean over pixels; gradients reach I' through S.

    imgs, recon (B, C, D1, D2) -> (loss scalar, S(I) logits (B, 1, D1, D2), S(I') logits (B, 1, D1, D2)).
    ``soft`` (B, 1, D1, D2), when given, is sigmoid(S(I)) already computed on the same images (by the "mixed"
    guidance in the data pipeline); S then runs on I' only, and the S(I) logits returned are its logit.
    """
    recon = recon.contiguous(memory_format=torch.channels_last)
    if soft is None:
        with torch.no_grad():
            logits_img = segmentor(imgs.contiguous(memory_format=torch.channels_last))
            soft = torch.sigmoid(logits_img.float())
    else:
        soft = soft.float()
        logits_img = torch.logit(soft, eps=1e-6)
    logits_rec = segmentor(recon)
    return F.binary_cross_entropy_with_logits(logits_rec.float(), soft), logits_img, logits_rec


def freeze(module: nn.Module) -> nn.Module:
    """Eval mode, channels-last weights, and requires_grad False on every parameter (gradients still flow through
    to the input)."""
    module.eval().to(memory_format=torch.channels_last)
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def fast_frozen_copy(module: nn.Module) -> nn.Module:
    """A frozen copy of `module` (eval mode) that computes the same function, up to float rounding, with less work:

    - each BatchNorm directly after the convolution of a MONAI `Convolution` block (ADN order starting with N) is
      folded into that convolution, so there is no normalisation pass forward or backward;
    - each single-slope PReLU becomes a LeakyReLU with that slope, whose backward computes no slope gradient.

    On CPU this makes the bundle's UNet S about 0.65x as costly forward and backward to the input, and about 0.8x for
    its wider ViT-B setting (`benchmarks/guidance_cost.py` times both). Other modules are copied unchanged.
    """
    module = copy.deepcopy(module).eval()
    for block in module.modules():
        conv, adn = getattr(block, "conv", None), getattr(block, "adn", None)
        if not isinstance(conv, _ConvNd) or not isinstance(adn, nn.Sequential) or len(adn) == 0:
            continue
        name, norm = next(iter(adn.named_children()))
        if name == "N" and isinstance(norm, _BatchNorm) and norm.track_running_stats:
            block.conv = fuse_conv_bn_eval(conv, norm, transpose=isinstance(conv, _ConvTransposeNd))
            adn.N = nn.Identity()
    for parent in list(module.modules()):
        for name, child in parent.named_children():
            if isinstance(child, nn.PReLU) and child.weight.numel() == 1:
                setattr(parent, name, nn.LeakyReLU(float(child.weight)))
    return freeze(module)


class VasoMIMLoss(nn.Module):
    """L = L_rec + lambda_cons * L_cons.

    Args:
        segmentor: the vessel segmentor S (1 -> 1 channel logits); frozen here and kept in eval mode. The loss runs a
            faster copy of it (`fast_frozen_copy`).
        patch_size: P of the MAE.
        lambda_cons: weight of L_cons (1 in the paper).
        use_cons: False for the "w/o L_cons" ablation (S is then not run).
        norm_pix_loss: per-patch normalised targets.

    Call with imgs (B, C, D1, D2), pred (B, L, P*P*C), mask (B, L) and optionally soft = sigmoid(S(imgs))
    (B, 1, D1, D2) when the data pipeline computed it already; returns a dict with "loss", "loss_rec",
    "loss_cons" (scalars) and "recon" (B, C, D1, D2), "seg_img", "seg_recon" (B, 1, D1, D2) logits or None.
    """

    def __init__(self, segmentor: nn.Module | None, patch_size: int, lambda_cons: float = 1.0, use_cons: bool = True,
                 norm_pix_loss: bool = True):
        super().__init__()
        if use_cons and segmentor is None:
            raise ValueError("use_cons=True needs a segmentor")
        self.segmentor = fast_frozen_copy(freeze(segmentor)) if segmentor is not None else None
        self.patch_size = int(patch_size[0] if isinstance(patch_size, Sequence) else patch_size)
        self.lambda_cons = float(lambda_cons)
        self.use_cons = bool(use_cons)
        self.norm_pix_loss = norm_pix_loss

    def train(self, mode: bool = True):
        super().train(mode)
        if self.segmentor is not None:
            self.segmentor.eval()
        return self

    def forward(self, imgs: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor,
                soft: torch.Tensor | None = None) -> dict:
        target, mean, std = patch_targets(imgs, self.patch_size, self.norm_pix_loss)
        loss_rec = masked_mse(pred, target, mask)
        grid = (imgs.shape[-2] // self.patch_size, imgs.shape[-1] // self.patch_size)
        recon = unnormalise(pred, mean, std, self.patch_size, grid, imgs.shape[1])
        out = {"loss_rec": loss_rec, "recon": recon, "seg_img": None, "seg_recon": None}
        if self.use_cons:
            loss_cons, out["seg_img"], out["seg_recon"] = consistency_loss(self.segmentor, imgs, recon, soft)
        else:
            loss_cons = torch.zeros((), device=imgs.device)
        out["loss_cons"] = loss_cons
        out["loss"] = loss_rec + self.lambda_cons * loss_cons
        return out

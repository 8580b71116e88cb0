"""The segmentation encoder: a MONAI ``ViT`` with SDPA attention and optional stochastic depth (drop path)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.blocks import TransformerBlock
from monai.networks.layers import DropPath
from monai.networks.nets import ViT


class DropPathBlock(TransformerBlock):
    """MONAI ``TransformerBlock`` whose two residual branches are dropped per sample with probability ``drop_path``
    during training (stochastic depth, as timm's ViT blocks). Its parameters and state-dict keys are those of
    ``TransformerBlock``, so pretrained blocks load unchanged.

    Forward: x (B, N, hidden) -> (B, N, hidden).
    """

    def __init__(self, hidden_size: int, mlp_dim: int, num_heads: int, dropout_rate: float = 0.0,
                 qkv_bias: bool = False, drop_path: float = 0.0) -> None:
        super().__init__(hidden_size, mlp_dim, num_heads, dropout_rate, qkv_bias, use_flash_attention=True)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else torch.nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, N, hidden) -> (B, N, hidden)."""
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def vessel_vit(
    in_channels: int,
    img_size: Sequence[int],
    patch_size: int,
    hidden_size: int,
    mlp_dim: int,
    num_layers: int,
    num_heads: int,
    qkv_bias: bool,
    dropout_rate: float = 0.0,
    drop_path: float = 0.0,
    pos_embed_type: str = "learnable",
) -> ViT:
    """A 2D MONAI ``ViT`` (keys ``patch_embedding.*``, ``blocks.{i}.*``, ``norm.*``, the pretraining encoder's layout)
    whose blocks are :class:`DropPathBlock` with drop-path rates rising linearly from 0 to ``drop_path`` over depth,
    as in timm and CheXWorld.

    Forward: x (B, C_in, D1, D2) -> (tokens (B, D1*D2/patch², hidden) after the final norm, [block outputs]).
    """
    if num_layers < 1:
        raise ValueError(f"num_layers must be >= 1, got {num_layers}.")
    if any(s % patch_size for s in img_size):
        raise ValueError(f"img_size {list(img_size)} must be divisible by patch_size {patch_size}.")
    vit = ViT(in_channels=in_channels, img_size=img_size, patch_size=patch_size, hidden_size=hidden_size,
              mlp_dim=mlp_dim, num_layers=num_layers, num_heads=num_heads, pos_embed_type=pos_embed_type,
              dropout_rate=dropout_rate, spatial_dims=2, qkv_bias=qkv_bias)
    rates = torch.linspace(0, drop_path, num_layers).tolist()
    vit.blocks = torch.nn.ModuleList(
        [DropPathBlock(hidden_size, mlp_dim, num_heads, dropout_rate, qkv_bias, rate) for rate in rates])
    return vit

"""CheXWorld's segmentation adapter on a MONAI ViT: the last block's tokens become a four-scale feature pyramid that a
small U-Net decoder fuses with a conv block on the raw image (``UNetAdapter_4LayersConv``, LeapLabTHU/CheXWorld
``models/unet_adapter_conv.py``, which the VasoMIM authors follow for segmentation)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .vit import vessel_vit


class ResidualConvBlock(nn.Module):
    """Two 3x3 conv + BatchNorm + GELU layers with a (1x1 conv) shortcut: (B, C_in, H, W) -> (B, C_out, H, W)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.BatchNorm2d(out_channels), nn.GELU(),
            nn.Conv2d(out_channels, out_channels, 3, padding=1), nn.BatchNorm2d(out_channels), nn.GELU())
        self.skip = nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C_in, H, W) -> (B, C_out, H, W)."""
        return self.conv(x) + self.skip(x)


def pyramid_level(embed_dim: int, out_channels: int, scale: float) -> nn.Sequential:
    """One level of the simple feature pyramid: the token grid (B, embed_dim, h, w) -> (B, out_channels, h*scale,
    w*scale).

    ``scale`` > 1 is log2(scale) stride-2 transposed convolutions, each halving the channels (BatchNorm between them,
    GELU after all but the last); 1 is the identity; 1/2 is a stride-2 convolution to 2*embed_dim channels. A 1x1
    convolution with BatchNorm and GELU then gives ``out_channels``. At patch 8 the scales 4, 2, 1, 1/2 are exactly
    CheXWorld's ``fpn0`` to ``fpn3``.
    """
    layers: list[nn.Module] = []
    channels = embed_dim
    if scale < 1:
        if scale != 0.5:
            raise ValueError(f"pyramid scale must be 1/2 or a power of 2, got {scale}.")
        layers += [nn.Conv2d(channels, 2 * channels, 2, stride=2), nn.BatchNorm2d(2 * channels)]
        channels *= 2
    else:
        steps = int(round(math.log2(scale)))
        if 2**steps != scale:
            raise ValueError(f"pyramid scale must be 1/2 or a power of 2, got {scale}.")
        for i in range(steps):
            layers += [nn.ConvTranspose2d(channels, channels // 2, 2, stride=2), nn.BatchNorm2d(channels // 2)]
            channels //= 2
            if i < steps - 1:
                layers.append(nn.GELU())
    layers += [nn.Conv2d(channels, out_channels, 1), nn.BatchNorm2d(out_channels), nn.GELU()]
    return nn.Sequential(*layers)


class DecoderStage(nn.Module):
    """Nearest x2 upsampling, concatenation with the skip, and a residual conv block:
    x (B, 2C, H, W), skip (B, C, 2H, 2W) -> (B, C, 2H, 2W)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block = ResidualConvBlock(3 * channels, channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """x (B, 2C, H, W), skip (B, C, 2H, 2W) -> (B, C, 2H, 2W)."""
        return self.block(torch.cat((F.interpolate(x, scale_factor=2.0, mode="nearest"), skip), dim=1))


class VesselViTAdapter(nn.Module):
    """Vessel segmentation as in the VasoMIM/CheXWorld fine-tuning protocol: a MONAI ViT encoder (``self.vit``, the
    pretraining encoder's keys) and a U-Net adapter on its last block.

    The normalised tokens of the last block, on a grid of (D1/p, D2/p), feed four pyramid levels at 1/2, 1/4, 1/8 and
    1/16 of the input (``base_channels * 2**i`` channels, i = 1..4); a residual conv block on the input gives the full
    resolution level (``base_channels``). The decoder (``self.decoder``, coarse to fine) goes up from 1/16,
    concatenating each level. At patch 8 this is
    CheXWorld's ``UNetAdapter_4LayersConv``; at patch 16 the pyramid has one more transposed convolution per level.

    Args:
        in_channels: input channels C_in.
        out_channels: output channels C_out (1 for a sigmoid vessel map).
        img_size: spatial size (D1, D2), each divisible by 16 (and by ``patch_size``).
        patch_size: ViT patch size p, 8 (the paper's segmentation protocol) or 16.
        num_layers, hidden_size, mlp_dim, num_heads, qkv_bias, dropout_rate: the ViT encoder.
        drop_path: the encoder's largest stochastic-depth rate (CheXWorld's segmentation value: 0.1).
        base_channels: channels of the full-resolution level (CheXWorld: 32).

    Forward: x (B, C_in, D1, D2) -> logits (B, C_out, D1, D2).
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        img_size: Sequence[int] | int = 224,
        patch_size: int = 8,
        num_layers: int = 12,
        hidden_size: int = 768,
        mlp_dim: int = 3072,
        num_heads: int = 12,
        qkv_bias: bool = True,
        dropout_rate: float = 0.0,
        drop_path: float = 0.1,
        base_channels: int = 32,
    ) -> None:
        super().__init__()
        img_size = [img_size] * 2 if isinstance(img_size, int) else list(img_size)
        if patch_size not in (8, 16, 32) or any(s % 16 for s in img_size):
            raise ValueError(f"patch_size must be 8, 16 or 32 and img_size divisible by 16, "
                             f"got patch_size {patch_size}, img_size {img_size}.")
        self.patch_size = patch_size
        self.grid = [s // patch_size for s in img_size]
        self.vit = vessel_vit(in_channels, img_size, patch_size, hidden_size, mlp_dim, num_layers, num_heads,
                              qkv_bias, dropout_rate, drop_path)
        channels = [base_channels * 2**i for i in range(5)]
        self.stem = ResidualConvBlock(in_channels, channels[0])
        self.pyramid = nn.ModuleList(
            [pyramid_level(hidden_size, channels[i], patch_size / 2**i) for i in range(1, 5)])
        self.decoder = nn.ModuleList([DecoderStage(c) for c in channels[-2::-1]])
        self.out = nn.Conv2d(channels[0], out_channels, 1)

    def tokens_to_grid(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, N, hidden) -> feature map (B, hidden, D1/p, D2/p), row-major as the patch embedding."""
        return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], self.grid[0], self.grid[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C_in, D1, D2) -> logits (B, C_out, D1, D2)."""
        tokens, _ = self.vit(x)
        grid = self.tokens_to_grid(tokens)
        skips = [self.stem(x)] + [level(grid) for level in self.pyramid]
        y = skips[-1]
        for i, stage in enumerate(self.decoder):
            y = stage(y, skips[-2 - i])
        return self.out(y)

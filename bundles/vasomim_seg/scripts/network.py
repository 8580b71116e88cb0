"""UNETR-style segmentation network on a MONAI ViT encoder of configurable depth."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.nets import UNETR
from monai.utils import ensure_tuple_rep

from .vit import vessel_vit


class VesselUNETR(UNETR):
    """MONAI ``UNETR`` with a configurable number of ViT layers and SDPA attention.

    MONAI's UNETR fixes the encoder at 12 layers and taps layers 3, 6 and 9 for its skip connections. Here the encoder
    (``self.vit``, a MONAI ``ViT``, state-dict keys ``vit.patch_embedding.*``, ``vit.blocks.{i}.*``, ``vit.norm.*``)
    has ``num_layers`` blocks and the skips tap blocks ``num_layers * k // 4`` for k = 1, 2, 3, which is 3, 6, 9 at
    12 layers. The decoder upsamples four times, so the patch size is 16 (as in UNETR).

    Args:
        in_channels: input channels C_in.
        out_channels: output channels C_out (1 for a sigmoid vessel map).
        img_size: spatial size (D1, D2) of the input; each must be divisible by 16.
        num_layers: number of transformer blocks in the encoder.
        feature_size, hidden_size, mlp_dim, num_heads, norm_name, res_block, dropout_rate, qkv_bias:
            as in ``monai.networks.nets.UNETR``.
        pos_embed_type: position embedding of the encoder ("learnable" lets fine-tuning adapt pretrained ones).
        spatial_dims: 2 for angiograms.

    Forward: x (B, C_in, D1, D2) -> logits (B, C_out, D1, D2).
    """

    patch_size_px = 16

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        img_size: Sequence[int] | int = 512,
        num_layers: int = 12,
        feature_size: int = 16,
        hidden_size: int = 768,
        mlp_dim: int = 3072,
        num_heads: int = 12,
        norm_name: tuple | str = "instance",
        res_block: bool = True,
        dropout_rate: float = 0.0,
        qkv_bias: bool = False,
        pos_embed_type: str = "learnable",
        spatial_dims: int = 2,
    ) -> None:
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}.")
        super().__init__(
            in_channels=in_channels,
            out_channels=out_channels,
            img_size=img_size,
            feature_size=feature_size,
            hidden_size=hidden_size,
            mlp_dim=mlp_dim,
            num_heads=num_heads,
            norm_name=norm_name,
            res_block=res_block,
            dropout_rate=dropout_rate,
            spatial_dims=spatial_dims,
            qkv_bias=qkv_bias,
        )
        self.num_layers = num_layers
        self.vit = vessel_vit(in_channels, ensure_tuple_rep(img_size, spatial_dims), self.patch_size_px, hidden_size,
                              mlp_dim, num_layers, num_heads, qkv_bias, dropout_rate, pos_embed_type=pos_embed_type)
        self.skip_layers = (num_layers // 4, num_layers // 2, 3 * num_layers // 4)

    def forward(self, x_in: torch.Tensor) -> torch.Tensor:
        """x_in (B, C_in, D1, D2) -> logits (B, C_out, D1, D2)."""
        x, hidden_states_out = self.vit(x_in)
        enc1 = self.encoder1(x_in)
        enc2 = self.encoder2(self.proj_feat(hidden_states_out[self.skip_layers[0]]))
        enc3 = self.encoder3(self.proj_feat(hidden_states_out[self.skip_layers[1]]))
        enc4 = self.encoder4(self.proj_feat(hidden_states_out[self.skip_layers[2]]))
        dec3 = self.decoder5(self.proj_feat(x), enc4)
        dec2 = self.decoder4(dec3, enc3)
        dec1 = self.decoder3(dec2, enc2)
        return self.out(self.decoder2(dec1, enc1))

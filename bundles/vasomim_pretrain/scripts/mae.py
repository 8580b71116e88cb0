"""GuidedMAE: MONAI's MaskedAutoEncoderViT taking an external mask (ids_keep / ids_restore), with SDPA attention;
MAEReconstructor: the same network returning the reconstructed image (the bundle's inference contract)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
from monai.networks.blocks.transformerblock import TransformerBlock
from monai.networks.nets import MaskedAutoEncoderViT


def patchify(imgs: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, C, D1, D2) -> (B, L, P*P*C); patch i = rows [r*P, (r+1)*P) x cols [c*P, (c+1)*P), r = i // (D2/P)."""
    b, c, d1, d2 = imgs.shape
    p = patch_size
    h, w = d1 // p, d2 // p
    x = imgs.reshape(b, c, h, p, w, p)
    x = torch.einsum("nchpwq->nhwpqc", x)
    return x.reshape(b, h * w, p * p * c)


def unpatchify(x: torch.Tensor, patch_size: int, grid: tuple[int, int], channels: int = 1) -> torch.Tensor:
    """(B, L, P*P*C) -> (B, C, D1, D2) with (D1/P, D2/P) = grid; inverse of patchify."""
    p = patch_size
    h, w = grid
    x = x.reshape(x.shape[0], h, w, p, p, channels)
    x = torch.einsum("nhwpqc->nchpwq", x)
    return x.reshape(x.shape[0], channels, h * p, w * p)


def patch_stats(target: torch.Tensor, eps: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """target (B, L, P*P*C) -> per-patch mean (B, L, 1) and std sqrt(var + eps) (B, L, 1) (unbiased var, as MAE)."""
    return target.mean(dim=-1, keepdim=True), (target.var(dim=-1, keepdim=True) + eps).sqrt()


def ids_from_mask(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """mask (B, L) with 1 = masked (same count per row) -> ids_keep (B, L_keep), ids_restore (B, L) (MAE order)."""
    ids_shuffle = torch.argsort(mask.float(), dim=1, stable=True)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    len_keep = int((mask[0] == 0).sum())
    return ids_shuffle[:, :len_keep], ids_restore


class GuidedMAE(MaskedAutoEncoderViT):
    """2D MAE whose mask can be given from outside (anatomy-guided masking); state dict layout = MONAI's.

    Encoder keys: `patch_embedding.*`, `blocks.{i}.*` (i < num_layers), final LayerNorm `blocks.{num_layers}.*`,
    `cls_token`; decoder keys: `decoder_embed.*`, `mask_tokens`, `decoder_pos_embedding`, `decoder_blocks.*`,
    `decoder_pred.*`. Attention uses torch SDPA (use_flash_attention=True).

    Args: as MaskedAutoEncoderViT (spatial_dims fixed to 2, sin-cos position embeddings), plus
        use_flash_attention: SDPA attention in all blocks.
    """

    def __init__(
        self,
        in_channels: int = 1,
        img_size: Sequence[int] | int = 224,
        patch_size: int = 16,
        hidden_size: int = 768,
        mlp_dim: int = 3072,
        num_layers: int = 12,
        num_heads: int = 12,
        masking_ratio: float = 0.75,
        decoder_hidden_size: int = 512,
        decoder_mlp_dim: int = 2048,
        decoder_num_layers: int = 8,
        decoder_num_heads: int = 16,
        qkv_bias: bool = True,
        dropout_rate: float = 0.0,
        use_flash_attention: bool = True,
    ):
        super().__init__(
            in_channels=in_channels, img_size=img_size, patch_size=patch_size, hidden_size=hidden_size,
            mlp_dim=mlp_dim, num_layers=num_layers, num_heads=num_heads, masking_ratio=masking_ratio,
            decoder_hidden_size=decoder_hidden_size, decoder_mlp_dim=decoder_mlp_dim,
            decoder_num_layers=decoder_num_layers, decoder_num_heads=decoder_num_heads, proj_type="conv",
            pos_embed_type="sincos", decoder_pos_embed_type="sincos", dropout_rate=dropout_rate, spatial_dims=2,
            qkv_bias=qkv_bias,
        )
        self.in_channels = in_channels
        self.grid: tuple[int, int] = (int(self.img_size[0]) // self.patch, int(self.img_size[1]) // self.patch)
        self.num_patches = self.grid[0] * self.grid[1]
        self.blocks = nn.Sequential(
            *[TransformerBlock(hidden_size, mlp_dim, num_heads, dropout_rate, qkv_bias,
                               use_flash_attention=use_flash_attention) for _ in range(num_layers)],
            nn.LayerNorm(hidden_size),
        )
        self.decoder_blocks = nn.Sequential(
            *[TransformerBlock(decoder_hidden_size, decoder_mlp_dim, decoder_num_heads, dropout_rate, qkv_bias,
                               use_flash_attention=use_flash_attention) for _ in range(decoder_num_layers)],
            nn.LayerNorm(decoder_hidden_size),
        )
        self._init_mae_weights()
        for blk in [*self.blocks[:-1], *self.decoder_blocks[:-1]]:
            blk.norm_cross_attn.requires_grad_(False)  # kept for MONAI's key layout; unused without cross-attention

    def _init_mae_weights(self):
        w = self.patch_embedding.patch_embeddings.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @property
    def patch(self) -> int:
        return int(self.patch_size[0])

    def patchify(self, imgs: torch.Tensor) -> torch.Tensor:
        """(B, C, D1, D2) -> (B, L, P*P*C)."""
        return patchify(imgs, self.patch)

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, P*P*C) -> (B, C, D1, D2)."""
        return unpatchify(x, self.patch, self.grid, self.in_channels)

    def random_masking(
        self, batch: int, device: torch.device, masking_ratio: float | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Plain MAE masking (torch RNG): -> mask (B, L) float 1 = masked, ids_keep (B, L_keep), ids_restore (B, L)."""
        n = self.num_patches
        ratio = self.masking_ratio if masking_ratio is None else masking_ratio
        len_keep = int(n * (1 - ratio))
        ids_shuffle = torch.argsort(torch.rand(batch, n, device=device), dim=1)
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        mask = torch.ones(batch, n, device=device)
        mask[:, :len_keep] = 0
        return torch.gather(mask, 1, ids_restore), ids_shuffle[:, :len_keep], ids_restore

    def forward_encoder(self, x: torch.Tensor, ids_keep: torch.Tensor) -> torch.Tensor:
        """x (B, C, D1, D2), ids_keep (B, L_keep) -> latent (B, 1 + L_keep, hidden) (cls token first)."""
        tokens = self.patch_embedding(x)
        tokens = torch.gather(tokens, 1, ids_keep.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))
        cls = self.cls_token.expand(tokens.shape[0], -1, -1).to(tokens.dtype)
        return self.blocks(torch.cat([cls, tokens], dim=1))

    def forward_decoder(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """latent (B, 1 + L_keep, hidden), ids_restore (B, L) -> pred (B, L, P*P*C)."""
        x = self.decoder_embed(latent)
        b, n = ids_restore.shape
        fill = self.mask_tokens.to(x.dtype).expand(b, n + 1 - x.shape[1], -1)
        x_ = torch.cat([x[:, 1:], fill], dim=1)
        x_ = torch.gather(x_, 1, ids_restore.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        x_ = x_ + self.decoder_pos_embedding.to(x_.dtype)
        x = self.decoder_blocks(torch.cat([x[:, :1], x_], dim=1))
        return self.decoder_pred(x)[:, 1:]

    def predict_patches(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        ids_keep: torch.Tensor | None = None,
        ids_restore: torch.Tensor | None = None,
        masking_ratio: float | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, C, D1, D2); optional mask (B, L) (1 = masked), ids_keep (B, L_keep), ids_restore (B, L).

        With none of them, masks at random like MAE; ids_keep alone gives the mask; a mask without both ids gives
        the ids. Returns pred (B, L, P*P*C), mask (B, L) float.
        """
        b = x.shape[0]
        if mask is None and ids_keep is None:
            mask, ids_keep, ids_restore = self.random_masking(b, x.device, masking_ratio)
        if mask is None:
            assert ids_keep is not None
            mask = torch.ones(b, self.num_patches, device=x.device).scatter_(1, ids_keep, 0.0)
        if ids_keep is None or ids_restore is None:
            ids_keep, ids_restore = ids_from_mask(mask)
        latent = self.forward_encoder(x, ids_keep.long())
        return self.forward_decoder(latent, ids_restore.long()), mask.float()

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        ids_keep: torch.Tensor | None = None,
        ids_restore: torch.Tensor | None = None,
        masking_ratio: float | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """As :meth:`predict_patches`: x (B, C, D1, D2) -> pred (B, L, P*P*C), mask (B, L).

        The optional arguments are annotated ``Optional``: unannotated, TorchScript types them ``Tensor`` with an
        undefined-tensor default, folds the ``is None`` branches away and fails to serialise that default
        ("strides() called on an undefined Tensor" at ``torch.jit.save``).
        """
        return self.predict_patches(x, mask, ids_keep, ids_restore, masking_ratio)


class MAEReconstructor(GuidedMAE):
    """GuidedMAE with the image-to-image forward of the bundle's ``inference.json`` (the model-zoo contract).

    forward: x (B, C, D1, D2) in [0, 1] -> I' (B, C, D1, D2): the decoder's prediction of every patch, masked with the
    given mask (B, L) or at random at ``masking_ratio``, de-normalised with each input patch's mean and std when
    ``norm_pix_loss`` (as the training target), clamped to [0, 1]. Same constructor arguments and state dict as
    GuidedMAE, plus ``norm_pix_loss``, so a trained ``model.pt`` loads strictly.
    """

    def __init__(self, *args, norm_pix_loss: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.norm_pix_loss = bool(norm_pix_loss)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        ids_keep: torch.Tensor | None = None,
        ids_restore: torch.Tensor | None = None,
        masking_ratio: float | None = None,
    ) -> torch.Tensor:
        """x (B, C, D1, D2), optional mask as GuidedMAE -> reconstruction (B, C, D1, D2) in [0, 1]."""
        pred, _ = self.predict_patches(x, mask, ids_keep, ids_restore, masking_ratio)
        pred = pred.float()
        if self.norm_pix_loss:
            mean, std = patch_stats(patchify(x.float(), self.patch))
            pred = pred * std + mean
        return unpatchify(pred, self.patch, self.grid, self.in_channels).clamp(0.0, 1.0)


def _preset(**sizes):
    def factory(**kwargs) -> GuidedMAE:
        return GuidedMAE(**{**sizes, **kwargs})

    return factory


PRESETS = {
    "vit_base_patch16": dict(patch_size=16, hidden_size=768, mlp_dim=3072, num_layers=12, num_heads=12,
                             decoder_hidden_size=512, decoder_mlp_dim=2048, decoder_num_layers=8, decoder_num_heads=16),
    "vit_small_patch16": dict(patch_size=16, hidden_size=384, mlp_dim=1536, num_layers=12, num_heads=6,
                              decoder_hidden_size=256, decoder_mlp_dim=1024, decoder_num_layers=4, decoder_num_heads=8),
    "vit_tiny_patch16": dict(patch_size=16, hidden_size=192, mlp_dim=768, num_layers=12, num_heads=3,
                             decoder_hidden_size=128, decoder_mlp_dim=512, decoder_num_layers=2, decoder_num_heads=4),
}
mae_vit_base_patch16 = _preset(**PRESETS["vit_base_patch16"])
mae_vit_small_patch16 = _preset(**PRESETS["vit_small_patch16"])
mae_vit_tiny_patch16 = _preset(**PRESETS["vit_tiny_patch16"])

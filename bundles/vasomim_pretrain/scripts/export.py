"""Encoder export: the MAE encoder as a MONAI ViT state dict."""

from __future__ import annotations

import torch

from .checkpoints import atomic_save, unwrap


def encoder_state_dict(mae_state: dict, num_layers: int) -> dict:
    """MONAI MAE keys -> MONAI ViT(classification=False) keys: `patch_embedding.*` and `blocks.{i}.*` (i < num_layers)
    unchanged, the final encoder LayerNorm `blocks.{num_layers}.*` -> `norm.*`; decoder keys and cls_token dropped.
    A "module." prefix (DDP) is removed first."""
    out = {}
    for key, value in mae_state.items():
        key = key.removeprefix("module.")
        if key.startswith("patch_embedding."):
            out[key] = value
        elif key.startswith("blocks."):
            index, rest = key[len("blocks."):].split(".", 1)
            out[f"norm.{rest}" if int(index) == num_layers else key] = value
    return out


class EncoderExport:
    """save(): writes encoder_state_dict(network) to `path` atomically; load it with
    `monai.networks.nets.ViT(in_channels=1, img_size, patch_size, hidden_size, mlp_dim, num_layers, num_heads,
    spatial_dims=2, qkv_bias=True, classification=False).load_state_dict(..., strict=True)`."""

    def __init__(self, network: torch.nn.Module, path, num_layers: int):
        self.network, self.path, self.num_layers = network, path, int(num_layers)

    def save(self) -> str:
        state = encoder_state_dict(unwrap(self.network).state_dict(), self.num_layers)
        return str(atomic_save(state, self.path))

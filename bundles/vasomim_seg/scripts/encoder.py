"""Loads a VasoMIM (MONAI MaskedAutoEncoderViT layout) pretrained encoder into the segmentation network's ``vit``."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping

import torch

logger = logging.getLogger(__name__)

ENCODER_PREFIXES = ("vit.patch_embedding.", "vit.blocks.", "vit.norm.")
_NESTED_KEYS = ("model", "network", "state_dict")


class PretrainedEncoderError(ValueError):
    """A pretrained checkpoint was named but does not fit the segmentation encoder."""


def unwrap_state_dict(checkpoint: Mapping) -> dict[str, torch.Tensor]:
    """Returns the MAE state dict held in ``checkpoint``.

    Accepts a raw state dict, or one nested under "model", "network" or "state_dict", with or without the DDP prefix
    "module.".
    """
    for key in _NESTED_KEYS:
        if key in checkpoint and isinstance(checkpoint[key], Mapping):
            checkpoint = checkpoint[key]
            break
    return {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in checkpoint.items()}


def map_mae_to_vit(mae_state: Mapping[str, torch.Tensor], num_layers: int) -> dict[str, torch.Tensor]:
    """Renames MAE encoder keys to the segmentation network's ``vit`` keys.

    ``patch_embedding.*`` -> ``vit.patch_embedding.*``; ``blocks.{i}.*`` -> ``vit.blocks.{i}.*`` for i < num_layers;
    ``blocks.{num_layers}.*`` (the MAE's final encoder LayerNorm) -> ``vit.norm.*``. Decoder keys, ``cls_token``
    (the segmentation ViT has no class token) and blocks beyond ``num_layers`` are dropped.
    """
    mapped = {}
    for key, value in mae_state.items():
        if key.startswith("patch_embedding."):
            mapped["vit." + key] = value
            continue
        match = re.match(r"blocks\.(\d+)\.(.+)$", key)
        if match is None:
            continue
        index, rest = int(match.group(1)), match.group(2)
        if index < num_layers:
            mapped[f"vit.blocks.{index}.{rest}"] = value
        elif index == num_layers:
            mapped[f"vit.norm.{rest}"] = value
    return mapped


def checkpoint_pos_shape(mae_state: Mapping[str, torch.Tensor]) -> torch.Size:
    """Shape (1, N, hidden) of the MAE's encoder position embeddings."""
    return mae_state["patch_embedding.position_embeddings"].shape


def resize_position_embeddings(pos: torch.Tensor, num_tokens: int) -> torch.Tensor:
    """Bicubic resize of square-grid position embeddings (1, N, C) -> (1, num_tokens, C), as in MAE fine-tuning when
    the fine-tuning image size differs from the pretraining one. Non-square grids are returned unchanged (the shape
    check then reports the mismatch)."""
    old, new = int(round(pos.shape[1] ** 0.5)), int(round(num_tokens**0.5))
    if old * old != pos.shape[1] or new * new != num_tokens:
        return pos
    grid = pos.reshape(1, old, old, -1).permute(0, 3, 1, 2).float()
    grid = torch.nn.functional.interpolate(grid, size=(new, new), mode="bicubic", align_corners=False)
    return grid.permute(0, 2, 3, 1).reshape(1, new * new, -1).to(pos.dtype)


def load_pretrained_encoder(network: torch.nn.Module, ckpt_path: str | None, map_location: str = "cpu") -> torch.nn.Module:
    """Loads the pretrained MAE encoder at ``ckpt_path`` into ``network.vit`` and returns ``network``.

    ``ckpt_path`` None or "" leaves the network as initialised (training from scratch). Otherwise every tensor of
    ``network.vit.patch_embedding``, ``network.vit.blocks`` and ``network.vit.norm`` must be found in the checkpoint
    with the same shape, or :class:`PretrainedEncoderError` is raised naming the missing or mismatched keys. Position
    embeddings of another square token grid (pretraining at another image size) are resized bicubically first. The
    number of tensors loaded is logged.

    Args:
        network: a module with a MONAI ``ViT`` at ``network.vit`` (e.g. ``scripts.network.VesselUNETR``).
        ckpt_path: path to a ``models/model.pt`` written by the vasomim_pretrain bundle, or None.
        map_location: device for ``torch.load``.
    """
    if not ckpt_path:
        logger.info("pretrained_ckpt is null: training the encoder from scratch.")
        return network
    if not os.path.isfile(ckpt_path):
        raise PretrainedEncoderError(f"{ckpt_path}: pretrained checkpoint not found.")
    checkpoint = torch.load(ckpt_path, map_location=map_location, weights_only=True)
    if not isinstance(checkpoint, Mapping):
        raise PretrainedEncoderError(f"{ckpt_path}: expected a state dict, got {type(checkpoint).__name__}.")
    mae_state = unwrap_state_dict(checkpoint)
    num_layers = len(network.vit.blocks)
    mapped = map_mae_to_vit(mae_state, num_layers)

    target = network.state_dict()
    pos_key = "vit.patch_embedding.position_embeddings"
    if pos_key in mapped and pos_key in target and mapped[pos_key].shape != target[pos_key].shape:
        mapped[pos_key] = resize_position_embeddings(mapped[pos_key], target[pos_key].shape[1])
        logger.info(f"Resized position embeddings {tuple(checkpoint_pos_shape(mae_state))} -> {tuple(target[pos_key].shape)}.")
    expected = [k for k in target if k.startswith(ENCODER_PREFIXES)]
    missing = [k for k in expected if k not in mapped]
    mismatched = [f"{k}: checkpoint {tuple(mapped[k].shape)} vs network {tuple(target[k].shape)}"
                  for k in expected if k in mapped and mapped[k].shape != target[k].shape]
    if missing or mismatched:
        raise PretrainedEncoderError(
            f"{ckpt_path}: loaded {len(expected) - len(missing) - len(mismatched)} of {len(expected)} encoder tensors; "
            f"missing {len(missing)} {missing[:5]}, shape mismatch {len(mismatched)} {mismatched[:5]}. "
            "The segmentation encoder (img_size, hidden_size, num_layers, num_heads, mlp_dim, qkv_bias) must match "
            "the pretraining network."
        )
    extra = sorted(set(mapped) - set(expected))
    if extra:
        raise PretrainedEncoderError(
            f"{ckpt_path}: checkpoint has encoder tensors the network lacks: {extra[:5]} "
            "(check qkv_bias and num_layers against the pretraining network)."
        )
    result = network.load_state_dict({k: mapped[k] for k in expected}, strict=False)
    if any(k in expected for k in result.missing_keys):
        raise PretrainedEncoderError(f"{ckpt_path}: encoder tensors not loaded: {result.missing_keys[:5]}.")
    logger.info(f"Loaded {len(expected)} of {len(expected)} pretrained encoder tensors from {ckpt_path}.")
    return network

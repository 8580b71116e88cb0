"""Loads a VasoMIM (MONAI MaskedAutoEncoderViT layout) pretrained encoder into the segmentation network's ``vit``."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence

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


def resize_position_embeddings(pos: torch.Tensor, num_tokens: int) -> torch.Tensor:
    """Bicubic resize of square-grid position embeddings (1, N, C) -> (1, num_tokens, C), as in MAE and CheXWorld
    fine-tuning when the token grid differs from the pretraining one (another image or patch size). Non-square grids
    are returned unchanged (the shape check then reports the mismatch)."""
    old, new = int(round(pos.shape[1] ** 0.5)), int(round(num_tokens**0.5))
    if old * old != pos.shape[1] or new * new != num_tokens:
        return pos
    grid = pos.reshape(1, old, old, -1).permute(0, 3, 1, 2).float()
    grid = torch.nn.functional.interpolate(grid, size=(new, new), mode="bicubic", align_corners=False)
    return grid.permute(0, 2, 3, 1).reshape(1, new * new, -1).to(pos.dtype)


def resize_patch_kernel(kernel: torch.Tensor, patch_size: Sequence[int]) -> torch.Tensor:
    """Bicubic resize of the patch-embedding kernel (hidden, C_in, p, p) -> (hidden, C_in, *patch_size), as CheXWorld's
    ``build_transfer_model`` does for segmentation at patch 8, scaled by (p / p')² so that a token's response to
    smooth content (a sum over p² pixels) keeps its pretraining magnitude relative to the position embeddings."""
    scale = (kernel.shape[-2] * kernel.shape[-1]) / (patch_size[0] * patch_size[1])
    resized = torch.nn.functional.interpolate(kernel.float(), size=tuple(patch_size), mode="bicubic",
                                              align_corners=False)
    return (resized * scale).to(kernel.dtype)


def adapt_to_network(mapped: dict[str, torch.Tensor], target: Mapping[str, torch.Tensor]) -> list[str]:
    """Resizes, in ``mapped``, the patch kernel and the position embeddings that differ from the network's
    (``target``) in patch size or token grid; returns one line per tensor resized."""
    changes = []
    kernel_key, pos_key = "vit.patch_embedding.patch_embeddings.weight", "vit.patch_embedding.position_embeddings"
    if kernel_key in mapped and kernel_key in target and mapped[kernel_key].shape[-2:] != target[kernel_key].shape[-2:]:
        changes.append(f"patch kernel {tuple(mapped[kernel_key].shape)} -> {tuple(target[kernel_key].shape)}")
        mapped[kernel_key] = resize_patch_kernel(mapped[kernel_key], target[kernel_key].shape[-2:])
    if pos_key in mapped and pos_key in target and mapped[pos_key].shape != target[pos_key].shape:
        changes.append(f"position embeddings {tuple(mapped[pos_key].shape)} -> {tuple(target[pos_key].shape)}")
        mapped[pos_key] = resize_position_embeddings(mapped[pos_key], target[pos_key].shape[1])
    return changes


def describe_checkpoint(state: Mapping[str, torch.Tensor]) -> str:
    """What a state dict that holds no MAE encoder is, for the error message ("" when it holds one)."""
    if any(k.startswith("patch_embedding.") or k.startswith("blocks.") for k in state):
        return ""
    if any(k.startswith("vit.") for k in state):
        return (" It is a segmentation checkpoint (keys vit.*, e.g. a vasomim_seg models/model.pt), not a "
                "pretraining one: pass the vasomim_pretrain bundle's models/model.pt as --pretrained_ckpt, or load a "
                "trained segmentation model with evaluate.json / inference.json.")
    return f" It holds no MAE encoder keys (patch_embedding.*, blocks.*); first keys: {sorted(state)[:3]}."


def load_pretrained_encoder(network: torch.nn.Module, ckpt_path: str | None,
                            map_location: str = "cpu") -> torch.nn.Module:
    """Loads the pretrained MAE encoder at ``ckpt_path`` into ``network.vit`` and returns ``network``.

    ``ckpt_path`` None or "" leaves the network as initialised (training from scratch). Otherwise every tensor of
    ``network.vit.patch_embedding``, ``network.vit.blocks`` and ``network.vit.norm`` must be found in the checkpoint
    with the same shape, or :class:`PretrainedEncoderError` is raised naming the missing or mismatched keys. A patch
    kernel of another patch size (pretraining at 16, fine-tuning at 8) and position embeddings of another square
    token grid (another image or patch size) are resized bicubically first (:func:`adapt_to_network`). The number of
    tensors loaded is logged.

    Args:
        network: a module with a MONAI ``ViT`` at ``network.vit`` (``scripts.adapter.VesselViTAdapter``,
            ``scripts.network.VesselUNETR``).
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
    for change in adapt_to_network(mapped, target):
        logger.info(f"Resized {change} (bicubic).")
    expected = [k for k in target if k.startswith(ENCODER_PREFIXES)]
    missing = [k for k in expected if k not in mapped]
    mismatched = [f"{k}: checkpoint {tuple(mapped[k].shape)} vs network {tuple(target[k].shape)}"
                  for k in expected if k in mapped and mapped[k].shape != target[k].shape]
    if missing or mismatched:
        raise PretrainedEncoderError(
            f"{ckpt_path}: loaded {len(expected) - len(missing) - len(mismatched)} of {len(expected)} encoder tensors; "
            f"missing {len(missing)} {missing[:5]}, shape mismatch {len(mismatched)} {mismatched[:5]}."
            + (describe_checkpoint(mae_state) or " The segmentation encoder (hidden_size, num_layers, num_heads, "
               "mlp_dim, qkv_bias) must match the pretraining network; img_size and patch_size may differ.")
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


def freeze_encoder(network: torch.nn.Module, freeze: bool = False) -> torch.nn.Module:
    """Returns ``network`` with ``network.vit``'s parameters frozen (requires_grad False) when ``freeze``: the
    frozen-encoder probe, where only the decoder learns. ``freeze`` False returns it unchanged (any network)."""
    if not freeze:
        return network
    vit = getattr(network, "vit", None)
    if vit is None:
        raise ValueError(f"freeze_encoder needs a network with a ViT encoder at .vit; {type(network).__name__} "
                         "has none.")
    for param in vit.parameters():
        param.requires_grad_(False)
    logger.info(f"Froze the encoder: {sum(p.numel() for p in vit.parameters())} parameters; the decoder trains alone.")
    return network

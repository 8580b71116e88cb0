"""AdamW parameter groups with layer-wise learning-rate decay over the ViT encoder (BEiT/MAE fine-tuning recipe)."""

from __future__ import annotations

import torch


def _layer_id(name: str, num_layers: int) -> int:
    if name.startswith("vit.patch_embedding."):
        return 0
    if name.startswith("vit.blocks."):
        return int(name.split(".")[2]) + 1
    return num_layers + 1


def layer_decay_param_groups(
    network: torch.nn.Module, lr: float, layer_decay: float = 0.75, weight_decay: float = 0.05
) -> list[dict]:
    """Parameter groups for ``torch.optim.AdamW``.

    Encoder layer l (patch embedding = 0, block i = i + 1) gets ``lr * layer_decay ** (L + 1 - l)``; ``vit.norm`` and
    the decoder get ``lr``. Biases, norm weights and position embeddings get no weight decay.
    """
    num_layers = len(network.vit.blocks)
    groups: dict[tuple, dict] = {}
    for name, param in network.named_parameters():
        if not param.requires_grad:
            continue
        layer = _layer_id(name, num_layers)
        no_decay = param.ndim == 1 or name.endswith(".bias") or "position_embeddings" in name
        key = (layer, no_decay)
        if key not in groups:
            groups[key] = {"params": [], "lr": lr * layer_decay ** (num_layers + 1 - layer),
                           "weight_decay": 0.0 if no_decay else weight_decay}
        groups[key]["params"].append(param)
    return list(groups.values())

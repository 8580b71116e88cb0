"""AdamW parameter groups as in MAE pretraining."""

from __future__ import annotations

import torch


def param_groups(network: torch.nn.Module, weight_decay: float = 0.05) -> list[dict]:
    """Trainable parameters split into [{decayed, weight_decay}, {biases, norms and other 1-D tensors, 0}]."""
    decay, no_decay = [], []
    for name, p in network.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    return [{"params": decay, "weight_decay": float(weight_decay)}, {"params": no_decay, "weight_decay": 0.0}]

"""Which frames of a multi-frame file (a cine run) go into the data list.

Policies:
    "all", an int k, "max_contrast": as :func:`transforms.io.select_frames`;
    "every:K" or {"every": K}: frames 0, K, 2K, ... of each run (adjacent cine frames at 15-30 fps are nearly
        identical, so K = 4-8 keeps the variety at a fraction of the cost);
    "max_frames:N" or {"max_frames": N}: at most N frames per run, evenly spaced from the first to the last frame
        (every frame when the run has N or fewer).
Single-frame files always give [None].
"""

from __future__ import annotations

import numpy as np

from .io import select_frames

__all__ = ["parse_frame_policy", "select_archive_frames"]

_ARCHIVE = ("every", "max_frames")


def parse_frame_policy(policy):
    """"all" | "max_contrast" | int | ("every", K) | ("max_frames", N) from any accepted spelling (also the pair).

    Raises:
        ValueError: an unknown policy or a count below 1.
    """
    if isinstance(policy, str) and ":" in policy:
        name, _, value = policy.partition(":")
        policy = {name.strip(): value.strip()}
    if isinstance(policy, (list, tuple)) and len(policy) == 2 and policy[0] in _ARCHIVE:
        policy = {policy[0]: policy[1]}
    if isinstance(policy, dict):
        if len(policy) != 1 or next(iter(policy)) not in _ARCHIVE:
            raise ValueError(f"frame_policy must be one of {{'every': K}}, {{'max_frames': N}}, got {policy!r}")
        name, value = next(iter(policy.items()))
        try:
            count = int(value)
        except (TypeError, ValueError):
            raise ValueError(f"frame_policy {name} needs an integer, got {value!r}") from None
        if count < 1:
            raise ValueError(f"frame_policy {name} must be at least 1, got {count}")
        return name, count
    if policy in ("all", "max_contrast") or isinstance(policy, (int, np.integer)) and not isinstance(policy, bool):
        return policy
    raise ValueError(f"frame_policy must be 'all', 'max_contrast', an int, 'every:K' or 'max_frames:N', got {policy!r}")


def select_archive_frames(path, frames: int, policy) -> list:
    """Frame indices of one file with `frames` frames under `policy` (any spelling parse_frame_policy accepts)."""
    policy = parse_frame_policy(policy)
    if not isinstance(policy, tuple):
        return select_frames(path, frames, policy)
    if frames <= 1:
        return [None]
    name, count = policy
    if name == "every":
        return list(range(0, frames, count))
    if frames <= count:
        return list(range(frames))
    return sorted({int(i) for i in np.rint(np.linspace(0, frames - 1, count))})

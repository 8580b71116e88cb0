"""A dictionary wrapper that writes an array transform's result to a new key, keeping the input."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Callable

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform


class ToNewKeyd(MapTransform):
    """Apply ``transform`` to each key and store the result under that key's output key.

    Args:
        keys: input key(s), each a (C, W, H) image.
        output_key: one output key, or one per input key.
        transform: the array transform, (C, W, H) -> (C, W, H).
        allow_missing_keys: skip absent keys.
    """

    def __init__(
        self,
        keys: KeysCollection,
        output_key: str | Sequence[str],
        transform: Callable,
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        output_keys = [output_key] if isinstance(output_key, str) else list(output_key)
        if len(output_keys) != len(self.keys):
            raise ValueError(f"need one output_key per key: keys={self.keys}, output_key={output_key}")
        self.output_keys = dict(zip(self.keys, output_keys))
        self.transform = transform

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[self.output_keys[key]] = self.transform(d[key])
        return d

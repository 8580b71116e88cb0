"""The frozen segmentor's vessel probability σ(S(I)), the soft half of the authors' guidance map 0.5·m + 0.5·σ(S(I))."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Transform

from .losses import fast_frozen_copy


class SegmentorProbability(Transform):
    """image (C, D1, D2) -> σ(S(image)) (1, D1, D2) float32 in [0, 1], with a frozen CPU copy of S.

    The copy (`fast_frozen_copy`: BatchNorms folded, eval mode, no parameter gradients) runs on the CPU, so that the
    transform can run in DataLoader workers whatever device S was trained on.

    Args:
        segmentor: S, (B, C, D1, D2) -> logits (B, 1, D1, D2).
    """

    def __init__(self, segmentor: torch.nn.Module) -> None:
        self.segmentor = fast_frozen_copy(segmentor).cpu()

    def __call__(self, image) -> torch.Tensor:
        """image (C, D1, D2) -> (1, D1, D2) float32."""
        x = torch.as_tensor(image, dtype=torch.float32, device="cpu")[None]
        with torch.inference_mode():
            return torch.sigmoid(self.segmentor(x.contiguous(memory_format=torch.channels_last)))[0].contiguous()


class SegmentorProbabilityd(MapTransform):
    """Dictionary wrapper of :class:`SegmentorProbability`: d[keys] (C, D1, D2) -> d[output_key] (1, D1, D2).

    Args:
        keys: the image key (exactly one).
        segmentor: S, the frozen segmentor of the consistency loss.
        output_key: where the probability map goes (the guided mask's ``soft_key``).
    """

    def __init__(self, keys: KeysCollection, segmentor: torch.nn.Module, output_key: str = "segmentor_prob",
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        if len(self.keys) != 1:
            raise ValueError(f"SegmentorProbabilityd takes exactly one image key, got {self.keys}")
        self.output_key = output_key
        self.probability = SegmentorProbability(segmentor)

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            d[self.output_key] = self.probability(d[key])
        return d

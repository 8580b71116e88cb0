"""The operating point: vessel probabilities to a binary vessel mask at the bundle's ``threshold``."""

from __future__ import annotations

from monai.config import KeysCollection
from monai.transforms import AsDiscreted


class VesselMaskd(AsDiscreted):
    """d[keys] vessel probabilities (1, D1, D2) in [0, 1] -> {0, 1} float (1, D1, D2), vessel where p >= threshold.

    MONAI's ``AsDiscreted`` with its threshold checked: a value outside (0, 1) would give an empty or a full mask
    without a word.

    Args:
        keys: keys of the probability maps (after the sigmoid).
        threshold: the operating point in (0, 1); the bundle's ``threshold`` id (0.5 by default).
        allow_missing_keys: skip missing keys instead of raising KeyError.

    Raises:
        ValueError: when ``threshold`` is not a number in (0, 1).
    """

    def __init__(self, keys: KeysCollection, threshold: float = 0.5, allow_missing_keys: bool = False) -> None:
        try:
            value = float(threshold)
        except (TypeError, ValueError):
            raise ValueError(f"threshold must be a number in (0, 1), got {threshold!r}") from None
        if not 0.0 < value < 1.0:
            raise ValueError(f"threshold must be in (0, 1) (a probability after the sigmoid), got {threshold!r}")
        super().__init__(keys, threshold=value, allow_missing_keys=allow_missing_keys)

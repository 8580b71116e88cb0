"""Yes/no options given on the ``python -m monai.bundle run`` command line."""

from __future__ import annotations

_TRUE, _FALSE = ("true", "yes", "1"), ("false", "no", "0")


def as_flag(value, name: str = "flag") -> bool:
    """A yes/no option as a bool.

    ``python -m monai.bundle run ... --overwrite false`` passes the string "false" (Fire converts only True/False),
    which ``bool`` would read as true; so strings are read by their words.

    Args:
        value: a bool, 0/1, or one of "true"/"false", "yes"/"no", "1"/"0" (any case).
        name: the option's name, for the error message.

    Raises:
        ValueError: any other value.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"{name} must be true or false, got {value!r}")

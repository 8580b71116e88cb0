"""Where this bundle lives, so that default paths work from any working directory."""

from __future__ import annotations

from pathlib import Path


def bundle_root() -> str:
    """Absolute path of the bundle folder (the parent of this scripts package)."""
    return str(Path(__file__).resolve().parent.parent)


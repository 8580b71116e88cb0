"""The default inputs of a bundle inside the VasoMIM-MONAI repository: its embedded sample data."""

from __future__ import annotations

from pathlib import Path


def sample_data(bundle_root: str, paths: str | list[str], option: str = "--dataset_dir") -> str | list[str]:
    """Absolute paths of ``paths`` under the repository's ``sample_data`` (``<bundle_root>/../../sample_data``), the
    default inputs of a bundle inside its repository; a list gives a list.

    Raises:
        FileNotFoundError: one that names ``option`` when a path is missing, as in a bundle copied out of the
            repository.
    """
    root = Path(bundle_root).parent.parent / "sample_data"
    resolved = [str((root / p).resolve()) for p in ([paths] if isinstance(paths, str) else paths)]
    missing = [p for p in resolved if not Path(p).exists()]
    if missing:
        raise FileNotFoundError(
            f"no input given and the default sample data {missing[0]} does not exist (this bundle is not inside the "
            f"VasoMIM-MONAI repository): pass {option} /path/to/angiograms"
        )
    return resolved[0] if isinstance(paths, str) else resolved

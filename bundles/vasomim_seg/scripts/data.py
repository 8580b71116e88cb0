"""Image/label pairing and a seeded train/validation split for a labelled angiogram folder."""

from __future__ import annotations

import os
import random
from pathlib import Path

LABEL_SUFFIXES = (".png", ".nii.gz", ".nii", ".dcm")
STEM_SUFFIXES = LABEL_SUFFIXES + (".dicom", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif")


def _stem(path: Path) -> str:
    name = path.name
    for suffix in STEM_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def paired_datalist(dataset_dir: str) -> list[dict]:
    """Pairs ``dataset_dir/images/<stem>.*`` with ``dataset_dir/labels/<stem>.*`` (sorted by stem).

    Images: DICOM (any name, ``.dcm`` or none) or PNG. Labels: PNG, NIfTI or DICOM SEG. Hidden files are ignored.
    Returns ``[{"image": str, "label": str, "frame": None}, ...]``. Raises ``FileNotFoundError`` if a folder is missing
    or nothing pairs, and ``ValueError`` if a stem has several images or labels.
    """
    root = Path(dataset_dir)
    images_dir, labels_dir = root / "images", root / "labels"
    for folder in (images_dir, labels_dir):
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: expected a folder of {'images' if folder is images_dir else 'labels'}.")

    def index(folder: Path, suffixes: tuple | None) -> dict[str, str]:
        found: dict[str, str] = {}
        for path in sorted(folder.iterdir()):
            if path.name.startswith(".") or not path.is_file():
                continue
            if suffixes is not None and not path.name.lower().endswith(suffixes):
                continue
            stem = _stem(path)
            if stem in found:
                raise ValueError(f"{folder}: two files for '{stem}': {found[stem]} and {path}.")
            found[stem] = str(path)
        return found

    images, labels = index(images_dir, None), index(labels_dir, LABEL_SUFFIXES)
    stems = sorted(set(images) & set(labels), key=lambda s: (len(s), s))
    if not stems:
        raise FileNotFoundError(f"{root}: no image in images/ has a label with the same stem in labels/.")
    return [{"image": images[s], "label": labels[s], "frame": None} for s in stems]


def split_datalist(datalist: list, val_fraction: float = 0.2, seed: int = 0, part: str = "train") -> list:
    """Returns the "train", "val" or "all" part of ``datalist`` after a seeded shuffle.

    The validation part has ``round(len * val_fraction)`` items (at least 1 when ``0 < val_fraction`` and there are 2
    or more items); the same seed always gives the same split. Order within each part follows ``datalist``.
    """
    if part == "all":
        return list(datalist)
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}.")
    order = list(range(len(datalist)))
    random.Random(seed).shuffle(order)
    n_val = int(round(len(datalist) * val_fraction))
    if val_fraction > 0 and n_val == 0 and len(datalist) > 1:
        n_val = 1
    val_ids = set(order[:n_val])
    if part == "val":
        return [d for i, d in enumerate(datalist) if i in val_ids]
    if part == "train":
        return [d for i, d in enumerate(datalist) if i not in val_ids]
    raise ValueError(f"part must be 'train', 'val' or 'all', got {part!r}.")


def label_subset(datalist: list, n_labels: int | None, seed: int = 0) -> list:
    """The first ``n_labels`` items of a seeded shuffle of ``datalist``, in datalist order (all when None).

    For one seed the subsets are nested: the 4-label set lies inside the 8-label set, and so on, as a label-efficiency
    study needs. Raises ``ValueError`` when more labels are asked for than there are.
    """
    if n_labels is None:
        return list(datalist)
    if not 1 <= int(n_labels) <= len(datalist):
        raise ValueError(f"n_labels must be between 1 and {len(datalist)} (the training images), got {n_labels}.")
    order = list(range(len(datalist)))
    random.Random(seed).shuffle(order)
    keep = set(order[: int(n_labels)])
    return [d for i, d in enumerate(datalist) if i in keep]


def folder_split(dataset_dir: str, val_fraction: float = 0.2, seed: int = 0, part: str = "train",
                 n_labels: int | None = None, labels_seed: int = 0) -> list:
    """``split_datalist(paired_datalist(dataset_dir), val_fraction, seed, part)``: list of image/label/frame dicts;
    the "train" part is cut to ``label_subset(..., n_labels, labels_seed)``."""
    items = split_datalist(paired_datalist(os.fspath(dataset_dir)), val_fraction, seed, part)
    return label_subset(items, n_labels, labels_seed) if part == "train" else items

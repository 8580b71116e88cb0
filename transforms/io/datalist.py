"""Data lists of angiogram folders: candidate files, frames chosen by a policy, one dict per frame."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ..errors import AngiogramReadError
from .files import count_frames
from .read import frame_means

logger = logging.getLogger("transforms.io")

IGNORED_SUFFIXES = {
    ".txt", ".md", ".json", ".csv", ".tsv", ".yaml", ".yml", ".py", ".log", ".xml", ".html", ".pdf", ".zip",
    ".gz", ".zst", ".tar", ".npy", ".npz", ".pt", ".pth", ".ckpt", ".nii", ".ini", ".cfg", ".sh",
}
IGNORED_NAMES = {"LICENSE", "LICENCE", "NOTICE", "README", "COPYING", "DICOMDIR", "AUTHORS"}


def iter_candidate_files(root, recursive: bool = True) -> list[Path]:
    """Files under `root` (a file, a folder or a list of them) that may be angiograms, sorted.

    Hidden files/folders, DICOMDIR and obvious non-images (LICENSE, README, *.txt, *.json, ...) are skipped.
    """
    roots = [root] if isinstance(root, (str, os.PathLike)) else list(root)
    found: list[Path] = []
    for r in roots:
        r = Path(r)
        if r.is_file():
            found.append(r)
            continue
        if not r.is_dir():
            raise AngiogramReadError(r, "no such file or folder")
        walker = os.walk(r) if recursive else [(str(r), [], [p.name for p in r.iterdir() if p.is_file()])]
        for folder, dirs, names in walker:
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in names:
                p = Path(folder) / name
                if name.startswith(".") or p.suffix.lower() in IGNORED_SUFFIXES or p.stem.upper() in IGNORED_NAMES:
                    continue
                found.append(p)
    return sorted(found)


def select_frames(path, frames: int, frame_policy) -> list:
    """Frame indices for one file under `frame_policy`; [None] for a single-frame file.

    "all": every frame. int k: frame k (negative counts from the end) of multi-frame files; a file with too few
    frames raises AngiogramReadError. "max_contrast": the frame with the lowest mean intensity after the Modality
    LUT and MONOCHROME1 inversion, i.e. the darkest frame = the most contrast agent in the vessels (decodes every
    frame of the file).
    """
    if frames <= 1:
        return [None]
    if frame_policy == "all":
        return list(range(frames))
    if frame_policy == "max_contrast":
        means = frame_means(path)
        if np.all(np.isnan(means)):
            raise AngiogramReadError(path, "constant image: every frame is constant")
        return [int(np.nanargmin(means))]
    if isinstance(frame_policy, (int, np.integer)) and not isinstance(frame_policy, bool):
        k = int(frame_policy) + (frames if frame_policy < 0 else 0)
        if not 0 <= k < frames:
            raise AngiogramReadError(path, f"frame {frame_policy} out of range: the file has {frames} frames")
        return [k]
    raise ValueError(f"frame_policy must be 'all', 'max_contrast' or an int, got {frame_policy!r}")


def list_angiogram_frames(root, frame_policy="all", recursive: bool = True, strict: bool = False) -> list[dict]:
    """Data list of a folder of angiograms: [{"image": path, "frame": i or None}, ...] in sorted file order.

    "all" and int policies read headers only (stop_before_pixels), so a 96-frame cine gives 96 entries without
    decoding; "max_contrast" decodes every frame. Files whose header is unusable are skipped with one warning line
    each (strict=True raises AngiogramReadError instead). The pixel data itself is not verified here: use
    `transforms.dataset_check.build_datalist` for a full check with a manifest.
    """
    if frame_policy not in ("all", "max_contrast") and not isinstance(frame_policy, (int, np.integer)):
        raise ValueError(f"frame_policy must be 'all', 'max_contrast' or an int, got {frame_policy!r}")
    datalist = []
    for path in iter_candidate_files(root, recursive):
        try:
            frames = select_frames(path, count_frames(path), frame_policy)
        except AngiogramReadError as err:
            if strict:
                raise
            logger.warning("skipped %s: %s", err.path, err.reason)
            continue
        datalist.extend({"image": str(path), "frame": f} for f in frames)
    return datalist

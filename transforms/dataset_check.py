"""Checks every file of a dataset before training and builds the data list, with a manifest of what was rejected.

Usable from a bundle config as a plain function:
    "train_datalist": {"_target_": "transforms.dataset_check.build_datalist", "root": "@dataset_dir",
                       "frame_policy": "all", "manifest_path": "$@output_dir + '/datalist_manifest.json'"}
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from .check_cache import CheckCache, check_files
from .errors import AngiogramReadError, read_errors
from .frame_policy import parse_frame_policy
from .io import iter_candidate_files
from .io.decode import decode_frames, read_image_file
from .io.files import image_pages, is_image_path, open_dicom
from .io.header import DicomImage
from .io.normalise import normalise

logger = logging.getLogger("transforms.dataset_check")

LABEL_SUFFIXES = (".png", ".tif", ".tiff", ".gif", ".bmp", ".jpg", ".jpeg", ".dcm")


def _first_usable_frame(path, image: DicomImage, decode: str) -> list[int]:
    """Decodes the first frame (or every frame when decode='all'); returns the indices of non-constant frames."""
    frames = image.header.frames
    usable, last_error = [], None
    for i in range(frames):
        try:
            arr = decode_frames(path, image, [i])[0]
            normalise(path, arr, image.invert, i if frames > 1 else None)
            usable.append(i)
        except AngiogramReadError as err:
            if not err.reason.startswith("constant image"):
                raise
            last_error = err
        if usable and decode != "all":
            break
    if not usable:
        raise AngiogramReadError(path, "constant image: every frame is constant") if frames > 1 else last_error
    return usable


def inspect_angiogram_file(path, decode: str = "first") -> dict:
    """Fully checks one file; returns {"frames": N, "usable_frames": [...]}.

    Checks: readable DICOM (with or without file meta) or PNG/JPEG/TIFF; pixel data present and of the declared
    size; NumberOfFrames consistent with the data; transfer syntax decodable (frame 0 is decoded); supported
    photometric interpretation; not constant. decode="all" decodes every frame and lists the non-constant ones;
    "first" decodes frames until one is non-constant (usually just frame 0).
    Raises:
        AngiogramReadError naming the file and the reason.
    """
    with read_errors(path):
        if is_image_path(path):
            pages = image_pages(path)
            for i in range(pages):
                arr, _ = read_image_file(path, i if pages > 1 else None)
                normalise(path, arr, False, i if pages > 1 else None)
                if decode != "all":
                    break
            return {"frames": pages, "usable_frames": list(range(pages))}
        image = open_dicom(path)
        frames = image.header.frames
        usable = _first_usable_frame(path, image, decode)
        return {"frames": frames, "usable_frames": usable if decode == "all" else list(range(frames))}


def check_angiogram_file(path, decode: str = "first") -> list[str]:
    """Reasons why `path` cannot be used as an angiogram; [] when it is usable. Never raises for bad bytes."""
    try:
        inspect_angiogram_file(path, decode)
    except AngiogramReadError as err:
        return [err.reason]
    return []


def _find_label(path: Path, image_root: Path, label_root: Path):
    rel = path.relative_to(image_root) if path.is_relative_to(image_root) else Path(path.name)
    for suffix in LABEL_SUFFIXES:
        candidate = (label_root / rel).with_suffix(suffix)
        if candidate.is_file():
            return candidate
    return None


def build_datalist(
    root,
    frame_policy="all",
    strict: bool = False,
    manifest_path=None,
    logger: logging.Logger | None = None,
    recursive: bool = True,
    label_root=None,
    decode: str = "first",
    workers: int = 1,
    check_cache_dir=None,
    manifest: Manifest | None = None,
) -> list[dict]:
    """Checks every candidate file under `root` and returns the data list of the usable ones.

    Args:
        root: a folder (walked recursively unless recursive=False), a file, or a list of them.
        frame_policy: "all" (one entry per frame), an int (that frame of each multi-frame file), "max_contrast"
            (the darkest frame of each file), "every:K" (every K-th frame) or "max_frames:N" (at most N frames per
            file, evenly spaced); see transforms.frame_policy. Single-frame files give frame None.
        strict: raise AngiogramReadError (naming the first rejected file) after the check if any file was rejected.
        manifest_path: where to write the JSON manifest (accepted files with frame counts, rejected files with
            reasons); a folder gets `datalist_manifest.json` inside it; None writes nothing.
        logger: where the one line per rejected file and the summary go (default "transforms.dataset_check").
        label_root: when given, each image needs a label with the same relative path and stem (png/tif/gif/...)
            under it, added as "label"; images without one are rejected.
        decode: "first" decodes one frame per file; "all" decodes every frame and leaves constant frames out.
        workers: processes checking files in parallel (1: in this process).
        check_cache_dir: folder where each file's result is remembered under its path, size and mtime, so that a
            rerun only re-checks new or changed files; None remembers nothing.
        manifest: a :class:`Manifest` to fill (for a run that adds its own entries and writes it later, e.g.
            inference); None uses a fresh one.
    Returns:
        [{"image": str, "frame": int | None[, "label": str]}, ...] in sorted file order.
    Raises:
        AngiogramReadError when nothing usable is found, or in strict mode when any file is rejected.
    """
    log = logger or globals()["logger"]
    policy = parse_frame_policy(frame_policy)
    policy = list(policy) if isinstance(policy, tuple) else int(policy) if isinstance(policy, np.integer) else policy
    manifest = manifest if manifest is not None else Manifest()
    manifest.root, manifest.frame_policy = root, frame_policy
    datalist = []
    roots = [Path(r) for r in ([root] if isinstance(root, (str, Path)) else root)]
    paths = iter_candidate_files(root, recursive)
    results = check_files(paths, decode, policy, workers, CheckCache(check_cache_dir, roots))
    for path, info in zip(paths, results):
        try:
            if "reason" in info:
                raise AngiogramReadError(path, info["reason"])
            frames = info["selected"]
            if decode == "all" and frames != [None]:
                frames = [f for f in frames if f in set(info["usable_frames"])]
            entry = {"image": str(path)}
            if label_root is not None:
                base = next((r for r in roots if r.is_dir() and path.is_relative_to(r)), path.parent)
                label = _find_label(path, base, Path(label_root))
                if label is None:
                    raise AngiogramReadError(path, f"no label with the same name under {label_root}")
                entry["label"] = str(label)
        except AngiogramReadError as err:
            manifest.reject(path, err.reason, log)
            continue
        datalist.extend({**entry, "frame": f} for f in frames)
        manifest.accepted.append({**entry, "num_frames": info["frames"], "entries": len(frames)})

    written = manifest.write(manifest_path) if manifest_path is not None else None
    rejected = manifest.sections["rejected"]
    log.info(
        "datalist: %d files accepted (%d entries), %d rejected%s",
        len(manifest.accepted), len(datalist), len(rejected), f"; manifest {written}" if written else "",
    )
    if strict and rejected:
        more = f" (and {len(rejected) - 1} more rejected files" + (f", see {written})" if written else ")")
        raise AngiogramReadError(rejected[0]["image"], rejected[0]["reason"] + (more if len(rejected) > 1 else ""))
    if not datalist:
        raise AngiogramReadError(root if isinstance(root, (str, Path)) else roots[0], "no usable angiograms found")
    return datalist


class Manifest:
    """The JSON record of a run's input files: those accepted (with frame counts) and those rejected, with reasons.

    ``build_datalist`` fills ``accepted`` and the "rejected" section; a run may add sections of its own for files
    that failed later (e.g. inference's "seg_not_written") and write the file again as it goes.

    Args:
        path: default destination of :meth:`write`; a folder gets ``datalist_manifest.json`` inside it.
        sections: names of the run's own sections, written (empty) even when nothing is added to them.
    """

    def __init__(self, path=None, sections=()):
        self.path = path
        self.root, self.frame_policy = None, None
        self.accepted: list[dict] = []
        self.sections: dict[str, list[dict]] = {"rejected": [], **{str(k): [] for k in sections}}

    def reject(self, path, reason: str, log: logging.Logger | None = None, section: str = "rejected") -> None:
        """Records ``path`` with ``reason`` under ``section`` and logs one warning line naming both."""
        (log or logger).warning("%s %s: %s", "rejected" if section == "rejected" else section, path, reason)
        self.sections.setdefault(section, []).append({"image": str(path), "reason": reason})

    def write(self, path=None) -> Path | None:
        """Writes the manifest (to ``path``, else ``self.path``; nothing when both are None); returns its path."""
        path = path if path is not None else self.path
        if path is None:
            return None
        path = Path(path)
        if path.is_dir() or not path.suffix:
            path = path / "datalist_manifest.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        root, policy = self.root, self.frame_policy
        manifest = {
            "root": [str(r) for r in root] if isinstance(root, (list, tuple)) else root if root is None else str(root),
            "frame_policy": policy if policy is None or isinstance(policy, (str, dict)) else int(np.int64(policy)),
            "accepted": self.accepted,
            **self.sections,
            "counts": {"accepted_files": len(self.accepted), "rejected_files": len(self.sections["rejected"]),
                       "entries": sum(a.get("entries", 0) for a in self.accepted),
                       **{f"{k}_files": len(v) for k, v in self.sections.items() if k != "rejected"}},
        }
        path.write_text(json.dumps(manifest, indent=1))
        return path


__all__ = ["Manifest", "build_datalist", "check_angiogram_file", "inspect_angiogram_file"]

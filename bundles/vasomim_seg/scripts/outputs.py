"""Inference outputs: frame selection for cines, NIfTI masks + PNG overlays per frame, one DICOM SEG per source file."""

from __future__ import annotations

import logging
import os
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, SaveImage
from PIL import Image

from transforms.dataset_check import Manifest
from transforms.errors import AngiogramReadError
from transforms.io import count_frames, select_frames

from .dicom_seg import seg_source_problem, write_dicom_seg

logger = logging.getLogger(__name__)

MASK_POSTFIX, MASK_EXT = "vessels", ".nii.gz"
OVERLAY_SUFFIX = "_overlay.png"
SEG_SUFFIX = "_vessels_seg.dcm"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
MANIFEST_NAME = "inference_manifest.json"


def output_patterns() -> list[str]:
    """Glob patterns of every file inference writes into its output folder (for ``transforms.run_folder``)."""
    return [f"*_{MASK_POSTFIX}{MASK_EXT}", f"*{OVERLAY_SUFFIX}", f"*{SEG_SUFFIX}", MANIFEST_NAME]


def output_stem(meta: dict) -> str:
    """Output file stem for one processed frame: ``<source stem>`` or ``<source stem>_frame<k:03d>`` for a cine."""
    name = Path(str(meta["filename_or_obj"])).name
    for suffix in (".dcm", ".dicom") + IMAGE_SUFFIXES:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    frames = int(np.asarray(meta.get("num_frames", 1)).reshape(-1)[0])
    return f"{name}_frame{int(np.asarray(meta['frame_index']).reshape(-1)[0]):03d}" if frames > 1 else name


class SelectFramed(MapTransform):
    """Fills a missing/None ``d[frame_key]`` with one frame chosen by ``frame_policy`` (for single-file requests,
    e.g. MONAI Label, on a cine). Works on paths, before ``LoadAngiogramd``; single-frame files keep None.

    Args:
        keys: key of the image path.
        frame_key: key of the frame index.
        frame_policy: "max_contrast" or an int, as in ``transforms.list_angiogram_frames``.
    """

    def __init__(self, keys: KeysCollection, frame_key: str = "frame", frame_policy="max_contrast",
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.frame_key, self.frame_policy = frame_key, frame_policy

    def __call__(self, data: dict) -> dict:
        """d[frame_key]: None -> int (multi-frame file) or None (single frame)."""
        d = dict(data)
        for key in self.key_iterator(d):
            if d.get(self.frame_key) is None:
                path = str(d[key])
                d[self.frame_key] = select_frames(path, count_frames(path), self.frame_policy)[0]
        return d


class SaveVesselOutputsd(MapTransform):
    """Writes the binary mask in ``d[key]`` (1, W, H) as NIfTI (``<stem>_vessels.nii.gz``, MONAI orientation, uint8)
    and a PNG overlay (``<stem>_overlay.png``, Rows x Cols, vessels in red over the image ``d[image_key]`` (1, W, H)).

    Both must be at the source size (after ``Invertd``). ``<stem>`` is :func:`output_stem`. The NIfTI is written by
    MONAI ``SaveImage`` with the image's affine as both affine and target (an identity resampling: MONAI 1.6.1's
    ``resample=False`` path fails on 2D data), so ``LoadImage`` reads it back as (1, W, H).
    """

    def __init__(self, keys: KeysCollection, image_key: str = "image", output_dir: str = "./eval",
                 nifti: bool = True, overlay: bool = True, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.image_key, self.output_dir = image_key, output_dir
        self.nifti, self.overlay = nifti, overlay
        self.saver = SaveImage(output_dir=output_dir, output_postfix=MASK_POSTFIX, output_ext=MASK_EXT,
                               output_dtype=np.uint8, resample=True, mode="nearest", separate_folder=False,
                               print_log=False)

    def __call__(self, data: dict) -> dict:
        """Writes files; returns ``data`` unchanged."""
        d = dict(data)
        image = d[self.image_key]
        stem = output_stem(image.meta)
        os.makedirs(self.output_dir, exist_ok=True)
        for key in self.key_iterator(d):
            mask = (np.asarray(torch.as_tensor(d[key]).detach().cpu()) > 0.5).astype(np.uint8)
            if self.nifti:
                self.saver(mask, meta_data={"filename_or_obj": stem, "affine": image.affine,
                                            "original_affine": image.affine, "spatial_shape": mask.shape[1:]})
            if self.overlay:
                grey = (torch.as_tensor(image).detach().cpu()[0].clamp(0, 1).numpy().T * 255).astype(np.uint8)
                rgb = np.repeat(grey[..., None], 3, axis=-1)
                vessel = mask[0].T.astype(bool)
                rgb[vessel] = (0.5 * rgb[vessel] + 0.5 * np.array([255, 0, 0])).astype(np.uint8)
                Image.fromarray(rgb).save(os.path.join(self.output_dir, f"{stem}{OVERLAY_SUFFIX}"))
        return d


class DicomSegSaver:
    """Ignite handler writing one BINARY DICOM SEG per DICOM source file as soon as all of its frames are segmented.

    Per iteration it collects ``output[i][pred_key]`` (1, W, H) at the source size with the source path and frame
    index from ``output[i][image_key].meta``. A source is complete when it has as many frames as ``datalist`` lists
    for it (at epoch end otherwise); its ``<source stem>_vessels_seg.dcm`` then holds one frame per processed source
    frame, in frame order (see ``scripts.dicom_seg.write_dicom_seg``), and one log line counts the files done.

    A source the SEG cannot reference (no File Meta, a missing UID, a dataset highdicom refuses) gets one log line
    and an entry in the manifest's "seg_not_written" section; its NIfTI and PNG are written all the same, and the run
    goes on (``strict`` raises ``AngiogramReadError`` instead). A DICOM whose Modality is not XA is processed and
    warned about once. Non-DICOM inputs get no SEG.

    Args:
        output_dir: where the SEGs go.
        datalist: the run's data list ([{"image": path, ...}, ...]); None writes every SEG at epoch end.
        manifest: a ``transforms.dataset_check.Manifest`` (the one the data list check filled), written when the run
            starts and after each file; None keeps no manifest.
        strict: raise instead of recording a SEG that cannot be written.
    """

    def __init__(self, output_dir: str = "./eval", pred_key: str = "pred", image_key: str = "image",
                 series_number: int = 300, datalist: list | None = None, manifest: Manifest | None = None,
                 strict: bool = False) -> None:
        self.output_dir, self.pred_key, self.image_key = output_dir, pred_key, image_key
        self.series_number, self.manifest, self.strict = series_number, manifest, bool(strict)
        self.expected = Counter(str(d["image"]) for d in datalist) if datalist is not None else None
        self.buffer: dict[str, dict[int, np.ndarray]] = defaultdict(dict)
        self.done = 0

    def attach(self, engine) -> None:
        """Registers the manifest on STARTED, collection on ITERATION_COMPLETED and the rest on EPOCH_COMPLETED."""
        from ignite.engine import Events

        engine.add_event_handler(Events.STARTED, self._write_manifest)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.collect)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.write)

    def _write_manifest(self, engine=None) -> None:
        if self.manifest is not None:
            self.manifest.write()

    def collect(self, engine) -> None:
        """Buffers (Rows, Cols) uint8 masks of DICOM sources; writes the SEG of each source that is complete."""
        for item in engine.state.output:
            meta = item[self.image_key].meta
            source = str(meta["filename_or_obj"])
            frame = int(np.asarray(meta["frame_index"]).reshape(-1)[0])
            dicom = not source.lower().endswith(IMAGE_SUFFIXES)
            if source not in self.buffer:
                modality = str(meta.get("modality", ""))
                if modality and modality != "XA":
                    logger.warning(f"{source}: Modality is {modality}, not XA (X-ray angiography); it is segmented "
                                   "all the same, but the model was trained on angiograms.")
            mask = (torch.as_tensor(item[self.pred_key]).detach().cpu()[0] > 0.5).numpy().T.astype(np.uint8)
            self.buffer[source][frame] = mask if dicom else None
            if self.expected is not None and len(self.buffer[source]) >= self.expected[source]:
                self._finish(source)

    def write(self, engine=None) -> list[str]:
        """Writes the SEGs of every source still buffered; returns the paths written."""
        written = [p for p in (self._finish(source) for source in list(self.buffer)) if p]
        self._write_manifest()
        return written

    def _finish(self, source: str) -> str | None:
        frames = self.buffer.pop(source)
        self.done += 1
        total = f"/{len(self.expected)}" if self.expected is not None else ""
        order = sorted(frames)
        path = None
        if frames[order[0]] is not None:
            path = self._write_seg(source, frames, order)
        logger.info(f"segmented file {self.done}{total}: {source} ({len(order)} frame(s))"
                    + (f", DICOM SEG {path}" if path else ""))
        self._write_manifest()
        return path

    def _write_seg(self, source: str, frames: dict, order: list[int]) -> str | None:
        stem = output_stem({"filename_or_obj": source, "num_frames": 1, "frame_index": 0})
        path = os.path.join(self.output_dir, f"{stem}{SEG_SUFFIX}")
        reason = seg_source_problem(source)
        if reason is None:
            try:
                os.makedirs(self.output_dir, exist_ok=True)
                write_dicom_seg(np.stack([frames[f] for f in order]), source, path, frame_indices=order,
                                series_number=self.series_number)
                return path
            except (ValueError, TypeError, AttributeError, KeyError, IndexError) as err:
                reason = f"highdicom could not build the SEG ({type(err).__name__}: {err})"
        reason = f"DICOM SEG not written: {reason}; its NIfTI masks and PNG overlays were written"
        if self.manifest is not None:
            self.manifest.reject(source, reason, logger, section="seg_not_written")
        else:
            logger.warning(f"{source}: {reason}")
        if self.strict:
            self._write_manifest()
            raise AngiogramReadError(source, reason)
        return None

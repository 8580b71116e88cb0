"""Inference outputs: frame selection for cines, NIfTI masks + PNG overlays per frame, one DICOM SEG per source file."""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, SaveImage
from PIL import Image

from transforms.io import count_frames, select_frames

from .dicom_seg import write_dicom_seg

logger = logging.getLogger(__name__)

MASK_POSTFIX, MASK_EXT = "vessels", ".nii.gz"
OVERLAY_SUFFIX = "_overlay.png"
SEG_SUFFIX = "_vessels_seg.dcm"


def output_patterns() -> list[str]:
    """Glob patterns of every file inference writes into its output folder (for ``transforms.run_folder``)."""
    return [f"*_{MASK_POSTFIX}{MASK_EXT}", f"*{OVERLAY_SUFFIX}", f"*{SEG_SUFFIX}"]


def output_stem(meta: dict) -> str:
    """Output file stem for one processed frame: ``<source stem>`` or ``<source stem>_frame<k:03d>`` for a cine."""
    name = Path(str(meta["filename_or_obj"])).name
    for suffix in (".dcm", ".dicom", ".png", ".jpg", ".jpeg", ".tif", ".tiff"):
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
    """Ignite handler writing one BINARY DICOM SEG per DICOM source file after each evaluator epoch.

    Per iteration it collects ``output[i][pred_key]`` (1, W, H) at the source size with the source path and frame
    index from ``output[i][image_key].meta``; at epoch end it writes ``<source stem>_vessels_seg.dcm`` with one frame
    per processed source frame, in frame order (see ``scripts.dicom_seg.write_dicom_seg``). Non-DICOM inputs are
    skipped.
    """

    def __init__(self, output_dir: str = "./eval", pred_key: str = "pred", image_key: str = "image",
                 series_number: int = 300) -> None:
        self.output_dir, self.pred_key, self.image_key = output_dir, pred_key, image_key
        self.series_number = series_number
        self.buffer: dict[str, dict[int, np.ndarray]] = defaultdict(dict)

    def attach(self, engine) -> None:
        """Registers collection on ITERATION_COMPLETED and writing on EPOCH_COMPLETED."""
        from ignite.engine import Events

        engine.add_event_handler(Events.ITERATION_COMPLETED, self.collect)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.write)

    def collect(self, engine) -> None:
        """Buffers (Rows, Cols) uint8 masks of DICOM sources."""
        for item in engine.state.output:
            meta = item[self.image_key].meta
            if not str(meta.get("sop_instance_uid", "")):
                continue
            frame = int(np.asarray(meta["frame_index"]).reshape(-1)[0])
            mask = (torch.as_tensor(item[self.pred_key]).detach().cpu()[0] > 0.5).numpy().T.astype(np.uint8)
            self.buffer[str(meta["filename_or_obj"])][frame] = mask

    def write(self, engine=None) -> list[str]:
        """Writes the buffered SEGs and returns their paths."""
        os.makedirs(self.output_dir, exist_ok=True)
        written = []
        for source, frames in self.buffer.items():
            order = sorted(frames)
            stem = output_stem({"filename_or_obj": source, "num_frames": 1, "frame_index": 0})
            path = os.path.join(self.output_dir, f"{stem}{SEG_SUFFIX}")
            write_dicom_seg(np.stack([frames[f] for f in order]), source, path, frame_indices=order,
                            series_number=self.series_number)
            logger.info(f"wrote DICOM SEG {path} ({len(order)} frame(s)).")
            written.append(path)
        self.buffer.clear()
        return written

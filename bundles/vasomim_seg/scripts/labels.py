"""Vessel label loading (PNG, NIfTI, DICOM SEG) in MONAI orientation, matching ``transforms.LoadAngiogramd``."""

from __future__ import annotations

import numpy as np
import pydicom
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import LoadImage, MapTransform, Transform
from pydicom.uid import SegmentationStorage

from transforms import AngiogramReadError


def read_dicom_seg(path: str, frame: int | None = None) -> np.ndarray:
    """Reads a BINARY/FRACTIONAL DICOM SEG as a vessel mask (Rows, Cols) uint8 {0, 1}, the union of its segments.

    A SEG with several frames must be given ``frame`` (0-based index of the source frame); the SEG frames whose
    Derivation Image Sequence references source frame ``frame + 1`` are used.
    """
    try:
        ds = pydicom.dcmread(path)
    except Exception as e:
        raise AngiogramReadError(path, f"not a readable DICOM file ({e})") from e
    if ds.get("SOPClassUID") != SegmentationStorage:
        raise AngiogramReadError(
            path, f"a DICOM label must be a Segmentation object, got SOP class {ds.get('SOPClassUID')}"
        )
    pixels = ds.pixel_array.reshape(-1, ds.Rows, ds.Columns)
    if pixels.shape[0] == 1:
        return (pixels[0] > 0).astype(np.uint8)
    if frame is None:
        raise AngiogramReadError(path, f"SEG has {pixels.shape[0]} frames; give the source frame index")
    selected = []
    for i, item in enumerate(ds.PerFrameFunctionalGroupsSequence):
        refs = [src for der in item.get("DerivationImageSequence", []) for src in der.get("SourceImageSequence", [])]
        if any(int(src.get("ReferencedFrameNumber", 0)) == frame + 1 for src in refs):
            selected.append(i)
    if not selected:
        raise AngiogramReadError(path, f"no SEG frame references source frame {frame + 1}")
    return (pixels[selected].max(axis=0) > 0).astype(np.uint8)


class LoadVesselLabel(Transform):
    """Loads a vessel label file as a binary (1, W, H) float32 MetaTensor in MONAI orientation.

    PNG and NIfTI go through MONAI ``LoadImage`` (PNG (H, W) pixels become (W, H), as ``LoadAngiogram`` does for
    DICOM); multi-channel PNGs are merged with max. DICOM SEG is read with :func:`read_dicom_seg` and transposed
    from (Rows, Cols) to (Cols, Rows). Any nonzero value is vessel.
    """

    def __init__(self) -> None:
        self.loader = LoadImage(image_only=True, ensure_channel_first=True, dtype=np.float32)

    def __call__(self, path: str, frame: int | None = None) -> MetaTensor:
        """path -> (1, W, H) float32 {0, 1}."""
        path = str(path)
        if path.lower().endswith((".dcm", ".dicom")):
            mask = torch.as_tensor(read_dicom_seg(path, frame).T[None], dtype=torch.float32)
            return MetaTensor(mask, meta={"filename_or_obj": path})
        try:
            label = self.loader(path)
        except Exception as e:
            raise AngiogramReadError(path, f"cannot read label ({e})") from e
        if label.ndim != 3:
            raise AngiogramReadError(path, f"expected a 2D label, got shape {tuple(label.shape)}")
        return (label.amax(dim=0, keepdim=True) > 0).float()


class LoadVesselLabeld(MapTransform):
    """Dictionary wrapper of :class:`LoadVesselLabel`: replaces the path in ``d[key]`` with the (1, W, H) mask.

    Args:
        keys: keys holding label paths.
        frame_key: key of the source frame index (used for multi-frame DICOM SEG labels).
        allow_missing_keys: skip missing keys.
    """

    def __init__(self, keys: KeysCollection, frame_key: str = "frame", allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.frame_key = frame_key
        self.loader = LoadVesselLabel()

    def __call__(self, data: dict) -> dict:
        """d[key]: path -> (1, W, H) float32 {0, 1}."""
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.loader(d[key], d.get(self.frame_key))
        return d

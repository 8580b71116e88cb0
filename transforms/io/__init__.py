"""Angiogram reading: DICOM XA/RF/DX/CR/SC (single- and multi-frame) and PNG/JPEG/TIFF into (N, W, H) MetaTensors.

The read path goes down these modules once each and returns:
    loaders   LoadAngiogram, LoadAngiogramd, AngiogramReader (MONAI transforms and ImageReader)
    read      read_angiogram: one file -> normalised frames + meta (the reading rules are in its docstring)
    files     sniffing (PNG/JPEG/TIFF vs DICOM), parsing, one frame's bytes, the per-process cache of parsed cines
    header    the DICOM header checks and values (DicomImage)
    decode    native little-endian frames with numpy, everything else with pydicom; PNG/JPEG/TIFF with Pillow
    normalise luminance, MONOCHROME1 inversion, min-max to [0, 1], MONAI axes
    memory    the float32 output; a whole cine's is written into freed memory of an earlier one
`datalist` builds data lists of folders on top of `files` and `read`. Every bad input raises
`transforms.errors.AngiogramReadError(path, reason)`; docs/bad_input.md lists the reasons.
"""

from collections.abc import Sequence

from .datalist import iter_candidate_files, list_angiogram_frames, select_frames
from .files import count_frames
from .loaders import AngiogramReader, LoadAngiogram, LoadAngiogramd
from .read import frame_means, read_angiogram

__all__: Sequence[str] = [
    "AngiogramReader",
    "LoadAngiogram",
    "LoadAngiogramd",
    "read_angiogram",
    "list_angiogram_frames",
    "iter_candidate_files",
    "count_frames",
    "select_frames",
    "frame_means",
]

"""The former `transforms._dicom` names, re-exported from `transforms.io` for `transforms.dataset_check`.

New code imports from `transforms.io.files`, `.header`, `.decode` and `.normalise`; this module goes once
dataset_check does too.
"""

from .errors import read_errors
from .io.decode import decode_frames, read_image_file
from .io.files import image_pages, is_image_path, open_dicom
from .io.header import DicomImage
from .io.normalise import normalise

__all__ = [
    "DicomImage", "decode_frames", "image_pages", "is_image_path", "normalise", "open_dicom", "read_errors",
    "read_image_file",
]

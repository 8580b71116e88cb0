"""MONAI transforms shared by the VasoMIM bundles: angiogram loading, vesselness, pseudo-mask, guided masking."""

from .dataset_check import build_datalist, check_angiogram_file, inspect_angiogram_file
from .errors import AngiogramReadError
from .guided_mask import AnatomyGuidedMask, AnatomyGuidedMaskd, SharedBeta
from .io import AngiogramReader, LoadAngiogram, LoadAngiogramd, list_angiogram_frames, read_angiogram
from .pseudo_mask import VesselPseudoMask, VesselPseudoMaskd
from .vesselness import FrangiVesselness, FrangiVesselnessd, frangi, sato

__all__ = [
    "AngiogramReadError",
    "AngiogramReader",
    "LoadAngiogram",
    "LoadAngiogramd",
    "list_angiogram_frames",
    "read_angiogram",
    "build_datalist",
    "check_angiogram_file",
    "inspect_angiogram_file",
    "FrangiVesselness",
    "FrangiVesselnessd",
    "frangi",
    "sato",
    "VesselPseudoMask",
    "VesselPseudoMaskd",
    "AnatomyGuidedMask",
    "AnatomyGuidedMaskd",
    "SharedBeta",
]

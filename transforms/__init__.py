"""MONAI dictionary transforms shared by the VasoMIM bundles: angiogram loading, vesselness, pseudo-mask, guided masking."""

from .errors import AngiogramReadError
from .io import LoadAngiogram, LoadAngiogramd, list_angiogram_frames
from .vesselness import FrangiVesselness, FrangiVesselnessd, frangi, sato
from .pseudo_mask import VesselPseudoMask, VesselPseudoMaskd
from .guided_mask import AnatomyGuidedMask, AnatomyGuidedMaskd, SharedBeta

__all__ = [
    "AngiogramReadError",
    "LoadAngiogram",
    "LoadAngiogramd",
    "list_angiogram_frames",
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

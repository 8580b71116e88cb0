"""DICOM SEG (BINARY) output for vessel masks, referencing the source instance and, for a cine, each source frame."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import highdicom as hd
import numpy as np
import pydicom
from highdicom._standard_utils import is_multiframe_image  # the IOD test highdicom applies to its sources
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import pack_bits

VESSEL_SEGMENT = {
    "label": "vessel",
    "category": ("91723000", "SCT", "Anatomical Structure"),
    "type": ("59820001", "SCT", "Blood vessel"),
}


_TYPE2_COPIED = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                 "ReferringPhysicianName", "AccessionNumber", "StudyID")


def _segment_description(algorithm_name: str, algorithm_version: str) -> hd.seg.SegmentDescription:
    return hd.seg.SegmentDescription(
        segment_number=1,
        segment_label=VESSEL_SEGMENT["label"],
        segmented_property_category=hd.sr.CodedConcept(*VESSEL_SEGMENT["category"]),
        segmented_property_type=hd.sr.CodedConcept(*VESSEL_SEGMENT["type"]),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name=algorithm_name, version=algorithm_version,
            family=hd.sr.CodedConcept("123109", "DCM", "Artificial Intelligence"),
        ),
    )


def _single_frame_view(source: Dataset) -> tuple[Dataset, bool]:
    """A metadata copy of ``source`` that highdicom accepts as the source of one SEG frame.

    highdicom 0.28 builds SEGs for images without a Frame of Reference (all XA/RF/SC angiograms) only from a single
    source frame, and reads pixel measures of multi-frame IODs from the Shared Functional Groups, which legacy XA
    cines do not have. Patient/study attributes highdicom copies and the source lacks are added empty (type 2).
    The copy declares one frame and an empty Pixel Measures placeholder (removed from the SEG
    afterwards: projection images have no Frame of Reference, so the SEG carries no pixel measures, as highdicom
    does for single-frame sources). Returns (view, source_is_multiframe_iod).
    """
    view = copy.deepcopy(source)
    for keyword in _TYPE2_COPIED:
        if keyword not in view:
            setattr(view, keyword, None)
    multiframe_iod = is_multiframe_image(source)
    if multiframe_iod:
        view.NumberOfFrames = 1
        if "SharedFunctionalGroupsSequence" not in view:
            group = Dataset()
            group.PixelMeasuresSequence = [Dataset()]
            view.SharedFunctionalGroupsSequence = [group]
    return view, multiframe_iod


_REFERENCED_UIDS = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")


def seg_source_problem(source_path: str) -> str | None:
    """Why a DICOM SEG cannot reference ``source_path``, or None when it can.

    A SEG references its source by the SOP Class, SOP Instance, Study and Series Instance UIDs and is written as a
    conformant file, so the source must be a DICOM file with File Meta Information and all four UIDs.
    """
    try:
        source = pydicom.dcmread(source_path, stop_before_pixels=True)
    except InvalidDicomError:
        return ("the source has no DICOM File Meta Information (no 128-byte preamble and 'DICM' prefix), so it is "
                "not a conformant DICOM file a SEG can reference")
    except (OSError, ValueError, EOFError) as err:
        return f"the source header could not be read again ({type(err).__name__}: {err})"
    missing = [k for k in _REFERENCED_UIDS if not str(source.get(k, "") or "")]
    if missing:
        return f"the source lacks {', '.join(missing)}, which a SEG must reference"
    return None


def write_dicom_seg(
    masks: np.ndarray,
    source_path: str,
    output_path: str,
    frame_indices: Sequence[int] | None = None,
    series_number: int = 300,
    algorithm_name: str = "VasoMIM",
    algorithm_version: str = "0.1.0",
    manufacturer: str = "VasoMIM-MONAI",
) -> Dataset:
    """Writes ``masks`` as one BINARY DICOM SEG referencing ``source_path`` and returns the dataset.

    Args:
        masks: (N, Rows, Cols) binary masks in DICOM orientation; mask k segments source frame ``frame_indices[k]``.
        source_path: the angiogram (single-frame or multi-frame cine) the masks were derived from.
        output_path: where to write the SEG (``.dcm``).
        frame_indices: 0-based source frame index of each mask; None means 0..N-1.

    The SEG has one segment ("vessel", SCT 59820001 Blood vessel) and exactly N frames, empty ones included, in the
    order given. Frame k's Derivation Image Sequence references the source SOP Instance UID and, for a multi-frame
    source IOD (XA/XRF), Referenced Frame Number ``frame_indices[k] + 1``. highdicom writes the first frame; the other
    frames repeat its functional groups with their own frame reference, and the bit-packed Pixel Data holds all N.
    """
    masks = np.asarray(masks)
    if masks.ndim == 2:
        masks = masks[None]
    source = pydicom.dcmread(source_path, stop_before_pixels=True)
    if masks.ndim != 3 or masks.shape[1:] != (source.Rows, source.Columns):
        raise ValueError(f"masks {masks.shape} must be (N, {source.Rows}, {source.Columns}) for {source_path}.")
    frames = list(range(masks.shape[0])) if frame_indices is None else [int(f) for f in frame_indices]
    if len(frames) != masks.shape[0]:
        raise ValueError(f"{len(frames)} frame indices for {masks.shape[0]} masks.")
    n_source = int(source.get("NumberOfFrames", 1) or 1)
    if any(f < 0 or f >= n_source for f in frames):
        raise ValueError(f"frame indices {frames} outside the {n_source} frames of {source_path}.")
    view, multiframe_iod = _single_frame_view(source)
    if not multiframe_iod and len(frames) > 1:
        raise ValueError(f"{source_path} is a single-frame image; got {len(frames)} masks.")
    binary = (masks > 0).astype(np.uint8)
    seg = hd.seg.Segmentation(
        source_images=[view],
        pixel_array=binary[0],
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[_segment_description(algorithm_name, algorithm_version)],
        series_instance_uid=hd.UID(),
        series_number=series_number,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=manufacturer,
        manufacturer_model_name=algorithm_name,
        software_versions=algorithm_version,
        device_serial_number="0",
        omit_empty_frames=False,
    )
    # General Image Patient Orientation (type 2C, required without a Frame of Reference): the SEG's pixel matrix is
    # the source's, so the source's value applies; empty when the source has none.
    seg.PatientOrientation = source.get("PatientOrientation") or None
    if multiframe_iod:
        shared = seg.SharedFunctionalGroupsSequence[0]
        if "PixelMeasuresSequence" in shared and "PixelSpacing" not in shared.PixelMeasuresSequence[0]:
            del shared.PixelMeasuresSequence
        template = seg.PerFrameFunctionalGroupsSequence[0]
        items = []
        for f in frames:
            item = copy.deepcopy(template)
            for derivation in item.DerivationImageSequence:
                for src in derivation.SourceImageSequence:
                    src.ReferencedFrameNumber = f + 1
            items.append(item)
        seg.PerFrameFunctionalGroupsSequence = items
        seg.NumberOfFrames = len(frames)
        seg.PixelData = pack_bits(binary)
    seg.save_as(output_path)
    return seg

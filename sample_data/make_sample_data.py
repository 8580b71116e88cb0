"""Regenerates the embedded sample data from ../shared/data (run from the repository root).

Outputs (committed):
    sample_data/xa_cine/XA_coronary_cine_96frames_jpeg_baseline.dcm  real fo-dicom XA cine, 96 x 512 x 512, MS-PL.
    sample_data/dca/images/<n>.dcm   real XCA angiograms (fercer/Coronary, BSD-3), 300 x 300, 8-bit,
                                     wrapped as DICOM Secondary Capture with Modality XA, MONOCHROME2,
                                     explicit VR little endian. Pixel values are the PNG's, unchanged.
    sample_data/dca/labels/<n>.png   the matching vessel labels (0/255), copied unchanged.
"""

import argparse
import shutil
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

STUDY_VALIDATION = {1, 13, 16, 22, 28, 30, 35, 39}
"""Cases that the reproduction study (docs/reproduction.md, split seed 0) validates on; case 1 was embedded before the
quick start needed more images and stays, the others are never embedded."""
CASES = [str(n) for n in range(1, 13)] + [str(n) for n in range(13, 41) if n not in STUDY_VALIDATION]
UID_PREFIX = "1.2.826.0.1.3680043.8.498."


def png_to_dicom(png: Path, out: Path, study_uid: str, series_uid: str, number: int) -> None:
    """Writes the 8-bit grey PNG `png` (H, W) as a Secondary Capture DICOM file with Modality XA."""
    pixels = np.asarray(Image.open(png).convert("L"), dtype=np.uint8)
    sop_uid = generate_uid(UID_PREFIX, entropy_srcs=["vasomim-dca", png.name])

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID

    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.Modality = "XA"
    ds.ConversionType = "WSD"
    ds.PatientName = "DCA^Sample"
    ds.PatientID = "DCA-SAMPLE"
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = number
    ds.ImageComments = f"fercer/Coronary Angios_40_training {png.name} (BSD-3)"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = pixels.tobytes()
    ds.save_as(out, enforce_file_format=True)


def main(shared: Path, out: Path) -> None:
    """Copies the cine and converts the DCA cases; `shared` is ../shared/data, `out` is sample_data/."""
    cine_dir = out / "xa_cine"
    cine_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shared / "dicom/xa_real/XA_coronary_cine_96frames_jpeg_baseline.dcm",
                    cine_dir / "XA_coronary_cine_96frames_jpeg_baseline.dcm")

    dca = shared / "xca_dca80_train"
    (out / "dca/images").mkdir(parents=True, exist_ok=True)
    (out / "dca/labels").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(dca / "LICENSE", out / "dca/LICENSE")
    study_uid = generate_uid(UID_PREFIX, entropy_srcs=["vasomim-dca-study"])
    series_uid = generate_uid(UID_PREFIX, entropy_srcs=["vasomim-dca-series"])
    for number, case in enumerate(CASES, start=1):
        png_to_dicom(dca / "images" / f"{case}.png", out / "dca/images" / f"{case}.dcm", study_uid, series_uid, number)
        shutil.copyfile(dca / "labels" / f"{case}.png", out / "dca/labels" / f"{case}.png")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args()
    main(args.shared, args.out)

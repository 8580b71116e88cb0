"""Writes a synthetic angiogram archive for the benchmarks (not for training): N frames as multi-frame XA DICOM files.

Every frame is a real frame of the embedded fo-dicom cine (512 x 512, 8-bit), taken in turn from a different start
per file so that files differ. Files hold `--frames-per-run` frames (a cath-lab cine run has 60-100), 10 runs per
study, each with new Study/Series/SOP Instance UIDs. `--jpeg` keeps the cine's JPEG Baseline frames as they are
(copied, not re-encoded); otherwise the frames are decoded and stored uncompressed (Explicit VR Little Endian).

    python benchmarks/synthetic_archive.py OUT_DIR --frames 1000 [--frames-per-run 60] [--jpeg]
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import numpy as np
import pydicom
from pydicom.encaps import encapsulate, generate_frames
from pydicom.pixels import pixel_array
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CINE = Path(__file__).resolve().parents[1] / "sample_data" / "xa_cine" / "XA_coronary_cine_96frames_jpeg_baseline.dcm"
RUNS_PER_STUDY = 10


def write_archive(out_dir, frames: int, frames_per_run: int = 60, jpeg: bool = False) -> list[Path]:
    """Writes `frames` frames under out_dir/study_XXXXX/run_YY.dcm; returns the file paths."""
    template = pydicom.dcmread(CINE)
    n_source = int(template.NumberOfFrames)
    if jpeg:
        source = list(generate_frames(template.PixelData, number_of_frames=n_source))
    else:
        source = [pixel_array(template, index=i, decoding_plugin="pillow") for i in range(n_source)]
    out, paths, written = Path(out_dir), [], 0
    while written < frames:
        run = len(paths)
        count = min(frames_per_run, frames - written)
        picks = [(run * 7 + i) % n_source for i in range(count)]
        ds = copy.deepcopy(template)
        if run % RUNS_PER_STUDY == 0:
            study_uid = generate_uid()
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study_uid, generate_uid(), generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.SeriesNumber, ds.InstanceNumber, ds.NumberOfFrames = run % RUNS_PER_STUDY + 1, 1, count
        if jpeg:
            ds.PixelData = encapsulate([source[i] for i in picks])
        else:
            ds.PixelData = np.stack([source[i] for i in picks]).tobytes()
            ds["PixelData"].VR = "OB"
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        path = out / f"study_{run // RUNS_PER_STUDY:05d}" / f"run_{run % RUNS_PER_STUDY:02d}.dcm"
        path.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
        written += count
    return paths


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--frames", type=int, required=True)
    parser.add_argument("--frames-per-run", type=int, default=60)
    parser.add_argument("--jpeg", action="store_true", help="keep the JPEG Baseline frames (default: uncompressed)")
    args = parser.parse_args()
    paths = write_archive(args.out_dir, args.frames, args.frames_per_run, args.jpeg)
    size = sum(p.stat().st_size for p in paths)
    print(f"wrote {args.frames} frames in {len(paths)} files, {size / 2**20:.1f} MiB, under {args.out_dir}")


if __name__ == "__main__":
    main()

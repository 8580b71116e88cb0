"""Angiogram loader vs raw `pydicom.dcmread(p).pixel_array` on the embedded sample data (medians over repeats).

Peers, measured in the same run:
    single-frame: 12 DCA files (300 x 300, uncompressed) -> normalised (1, W, H) MetaTensor vs raw pixel_array.
    cine: the 96-frame JPEG Baseline cine, all frames, (a) in one call LoadAngiogram()(p) -> (96, W, H) and
          (b) frame by frame through the datalist (96 calls of LoadAngiogramd, each re-reading the file) vs one raw
          dcmread(p).pixel_array. The raw peer uses pydicom's default plugin order (pylibjpeg first); the loader
          prefers Pillow for JPEG Baseline, so a raw pydicom run forced to Pillow is printed too.
"""

import statistics
import time
from pathlib import Path

import pydicom

from transforms.io import LoadAngiogram, LoadAngiogramd, list_angiogram_frames

ROOT = Path(__file__).resolve().parents[1] / "sample_data"
CINE = ROOT / "xa_cine" / "XA_coronary_cine_96frames_jpeg_baseline.dcm"
DCA = sorted((ROOT / "dca" / "images").glob("*.dcm"))


def median_seconds(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def raw_pillow(path):
    ds = pydicom.dcmread(path)
    ds.pixel_array_options(decoding_plugin="pillow")
    return ds.pixel_array


def main() -> None:
    load, loadd = LoadAngiogram(), LoadAngiogramd(keys="image")
    cine_list = list_angiogram_frames(CINE)
    results = {
        "single-frame (12 DCA files)": (
            median_seconds(lambda: [load(p) for p in DCA], 30),
            median_seconds(lambda: [pydicom.dcmread(p).pixel_array for p in DCA], 30),
        ),
        "cine 96 frames, one call": (
            median_seconds(lambda: load(CINE), 5),
            median_seconds(lambda: pydicom.dcmread(CINE).pixel_array, 5),
        ),
        "cine 96 frames, per-frame datalist": (
            median_seconds(lambda: [loadd(d) for d in cine_list], 5),
            median_seconds(lambda: pydicom.dcmread(CINE).pixel_array, 5),
        ),
    }
    pillow_raw = median_seconds(lambda: raw_pillow(CINE), 5)
    for name, (ours, raw) in results.items():
        print(f"{name}: loader {ours * 1e3:.1f} ms, raw pydicom {raw * 1e3:.1f} ms, ratio {ours / raw:.2f}x")
    ours_cine = results["cine 96 frames, one call"][0]
    per_frame = results["cine 96 frames, per-frame datalist"][0]
    print(f"cine vs raw pydicom forced to Pillow ({pillow_raw * 1e3:.1f} ms): one call {ours_cine / pillow_raw:.2f}x, "
          f"per-frame {per_frame / pillow_raw:.2f}x")
    worst = max(ours / raw for ours, raw in results.values())
    print(f"SUMMARY loader/raw pydicom ratio: worst {worst:.2f}x (goal <= 1.25x) "
          + ", ".join(f"{k} {o / r:.2f}x" for k, (o, r) in results.items()))


if __name__ == "__main__":
    main()

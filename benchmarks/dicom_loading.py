"""Angiogram loader vs raw `pydicom.dcmread(p).pixel_array` on the embedded sample data (medians over repeats).

Peers, measured in the same run and interleaved (loader, peer, loader, peer, ...) so that load on a shared machine
hits both alike:
    single-frame: 12 DCA files (300 x 300, uncompressed) -> normalised (1, W, H) MetaTensor vs raw pixel_array.
    cine: the 96-frame JPEG Baseline cine, all frames,
          (a) in one call LoadAngiogram()(p) -> (96, W, H),
          (b) frame by frame through the datalist in its order (96 calls of LoadAngiogramd): the first call parses
              and checks the file, the other 95 find it in the loader's small per-process cache,
          (c) frame by frame with the cache emptied before every frame: what a shuffled DataLoader over many files
              sees (each call reads, parses and checks the whole file again),
          each vs one raw dcmread(p).pixel_array of all 96 frames. The loader's cache is emptied before every timed
          call of (a) and every pass of (b), so no run reuses a parse from an earlier repeat.
    The raw peer uses pydicom's default plugin order (pylibjpeg first for JPEG Baseline); the loader prefers Pillow,
    so raw pydicom forced to Pillow is measured too and printed as a second ratio: that is where the cine win
    comes from.
"""

import statistics
import time
from pathlib import Path

import pydicom

from transforms.io import LoadAngiogram, LoadAngiogramd, files, list_angiogram_frames

ROOT = Path(__file__).resolve().parents[1] / "sample_data"
CINE = ROOT / "xa_cine" / "XA_coronary_cine_96frames_jpeg_baseline.dcm"
DCA = sorted((ROOT / "dca" / "images").glob("*.dcm"))


def interleaved_medians(fns: dict, repeats: int) -> dict:
    """Runs each function once to warm up, then `repeats` rounds of all of them in turn; median seconds each."""
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def raw_pillow(path):
    ds = pydicom.dcmread(path)
    ds.pixel_array_options(decoding_plugin="pillow")
    return ds.pixel_array


def main() -> None:
    load, loadd = LoadAngiogram(), LoadAngiogramd(keys="image")
    cine_list = list_angiogram_frames(CINE)

    def one_call():
        files.clear_cache()
        load(CINE)

    def per_frame():
        files.clear_cache()
        for d in cine_list:
            loadd(d)

    def per_frame_uncached():
        for d in cine_list:
            files.clear_cache()
            loadd(d)

    single = interleaved_medians(
        {"loader": lambda: [load(p) for p in DCA], "raw": lambda: [pydicom.dcmread(p).pixel_array for p in DCA]}, 30
    )
    cine = interleaved_medians(
        {"one call": one_call, "per-frame datalist": per_frame, "per-frame, no cache": per_frame_uncached,
         "raw": lambda: pydicom.dcmread(CINE).pixel_array, "raw pillow": lambda: raw_pillow(CINE)}, 5
    )
    rows = {"single-frame (12 DCA files)": (single["loader"], single["raw"])}
    rows.update({f"cine 96 frames, {k}": (cine[k], cine["raw"]) for k in ("one call", "per-frame datalist",
                                                                         "per-frame, no cache")})
    for name, (ours, raw) in rows.items():
        print(f"{name}: loader {ours * 1e3:.1f} ms, raw pydicom {raw * 1e3:.1f} ms, ratio {ours / raw:.2f}x")
    pillow = cine["raw pillow"]
    print(f"cine vs raw pydicom forced to Pillow ({pillow * 1e3:.1f} ms, same run): "
          + ", ".join(f"{k} {cine[k] / pillow:.2f}x"
                      for k in ("one call", "per-frame datalist", "per-frame, no cache")))
    worst = max(ours / raw for ours, raw in rows.values())
    print(f"SUMMARY loader/raw pydicom ratio: worst {worst:.2f}x (goal <= 1.25x) "
          + ", ".join(f"{k} {o / r:.2f}x" for k, (o, r) in rows.items())
          + f"; vs Pillow-forced pydicom: cine one call {cine['one call'] / pillow:.2f}x, "
          f"per-frame {cine['per-frame datalist'] / pillow:.2f}x")


if __name__ == "__main__":
    main()

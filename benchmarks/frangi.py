"""Frangi vesselness speed and parity: transforms.frangi vs skimage.filters.frangi vs ITK's multiscale objectness.

512 x 512 real angiogram frames (the embedded fo-dicom XA cine; ../shared/data/xca_cadml97 PNGs if it is missing),
batch 16, sigmas 1..5. Peers are timed in interleaved rounds in the same run; medians per image are reported.
skimage runs single-threaded; torch and ITK use the machine's threads (torch also measured with one thread).

    python benchmarks/frangi.py [--device cpu|cuda] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from skimage.filters import frangi as sk_frangi

from transforms.vesselness import frangi

ROOT = Path(__file__).resolve().parents[1]
CINE = ROOT / "sample_data" / "xa_cine" / "XA_coronary_cine_96frames_jpeg_baseline.dcm"
PNGS = ROOT.parent / "shared" / "data" / "xca_cadml97" / "images"
SIGMAS = range(1, 6)
BATCH = 16
BORDER = 32


def load_frames(n: int) -> tuple[np.ndarray, str]:
    """(n, 512, 512) float32 in [0, 1], vessels dark."""
    if CINE.exists():
        import pydicom

        ds = pydicom.dcmread(CINE)
        frames = ds.pixel_array[np.linspace(0, int(ds.NumberOfFrames) - 1, n).astype(int)].astype(np.float32)
        if ds.PhotometricInterpretation == "MONOCHROME1":
            frames = frames.max() - frames
        return frames / frames.max(), f"{CINE.relative_to(ROOT)} ({n} of {ds.NumberOfFrames} frames)"
    from PIL import Image

    files = sorted(PNGS.glob("*.png"))[:n]
    return np.stack([np.asarray(Image.open(f).convert("L"), dtype=np.float32) / 255 for f in files]), str(PNGS)


def itk_objectness():
    """Callable (H, W) float32 -> objectness, ITK MultiScaleHessianBasedMeasureImageFilter, sigma 1..5."""
    import itk

    image_t = itk.Image[itk.F, 2]
    hessian_t = itk.Image[itk.SymmetricSecondRankTensor[itk.D, 2], 2]

    def run(img: np.ndarray) -> np.ndarray:
        obj = itk.HessianToObjectnessMeasureImageFilter[hessian_t, image_t].New()
        obj.SetBrightObject(False)
        obj.SetObjectDimension(1)
        obj.SetScaleObjectnessMeasure(False)
        obj.SetAlpha(0.5)
        obj.SetBeta(0.5)
        obj.SetGamma(float(img.std()))
        ms = itk.MultiScaleHessianBasedMeasureImageFilter[image_t, hessian_t, image_t].New()
        ms.SetInput(itk.image_view_from_array(img))
        ms.SetHessianToMeasureFilter(obj)
        ms.SetSigmaStepMethodToEquispaced()
        ms.SetSigmaMinimum(1.0)
        ms.SetSigmaMaximum(5.0)
        ms.SetNumberOfSigmaSteps(5)
        ms.Update()
        return itk.array_from_image(ms.GetOutput())

    return run


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"--device {args.device}: CUDA is not available here, measuring on cpu")
        args.device = "cpu"
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    frames, source = load_frames(BATCH)
    batch = torch.from_numpy(frames)[:, None].to(device)
    print(f"data: {source}; batch {tuple(batch.shape)}; sigmas {list(SIGMAS)}; device {device}; "
          f"torch threads {torch.get_num_threads()}")

    def ours():
        with torch.no_grad():
            out = frangi(batch, sigmas=SIGMAS)
        sync()
        return out

    first, result = timed(ours)
    print(f"ours first call (builds and caches the operator matrices): {first * 1e3:.0f} ms")
    ours_t, ours_1t, sk_t, itk_t, refs = [], [], [], [], {}
    run_itk = itk_objectness()
    threads = torch.get_num_threads()
    for r in range(args.rounds):
        ours_t.append(timed(ours)[0] / BATCH)
        if device.type == "cpu" and threads > 1:
            torch.set_num_threads(1)
            ours_1t.append(timed(ours)[0] / BATCH)
            torch.set_num_threads(threads)
        for i in (2 * r, 2 * r + 1):
            dt, refs[i] = timed(lambda i=i: sk_frangi(frames[i], sigmas=SIGMAS))
            sk_t.append(dt)
        itk_t.append(timed(lambda r=r: run_itk(frames[r]))[0])

    ours_np = result[:, 0].float().cpu().numpy()
    idx = sorted(refs)
    r_whole = min(pearson(refs[i], ours_np[i]) for i in idx)
    inner = (slice(BORDER, -BORDER), slice(BORDER, -BORDER))
    r_inner = min(pearson(refs[i][inner], ours_np[i][inner]) for i in idx)
    max_abs = max(float(np.abs(refs[i] - ours_np[i]).max()) for i in idx)

    runs = {"ours": ours_t, "ours_1thread": ours_1t, "skimage": sk_t, "itk": itk_t}
    med = {k: statistics.median(v) for k, v in runs.items() if v}
    print("note: the machine may be shared with other jobs; timings are noisy, peers are interleaved per round")
    for name, value in med.items():
        print(f"{name:>13}: {value * 1e3:8.1f} ms/img (median of {len(runs[name])})")
    print("torch.compile: not implemented (default eager path only)")
    print(f"parity vs skimage over {len(idx)} frames: Pearson r min {r_whole:.6f} whole image, "
          f"{r_inner:.6f} beyond {BORDER} px from the border; max |diff| {max_abs:.2e}")
    print(f"ratio ours/skimage = {med['ours'] / med['skimage']:.4f} "
          f"(1/{med['skimage'] / med['ours']:.1f}; goal <= 1/20)")
    if "ours_1thread" in med:
        print(f"ratio ours_1thread/skimage = {med['ours_1thread'] / med['skimage']:.4f} "
              f"(1/{med['skimage'] / med['ours_1thread']:.1f})")
    print(f"ratio ours/itk = {med['ours'] / med['itk']:.4f} (1/{med['itk'] / med['ours']:.1f})")
    one = med.get("ours_1thread", med["ours"])
    print(f"SUMMARY frangi 512x512 batch {BATCH} sigmas 1-5 on {device}: ours {med['ours'] * 1e3:.1f} ms/img, "
          f"skimage {med['skimage'] * 1e3:.1f}, itk {med['itk'] * 1e3:.1f}; "
          f"ours/skimage 1/{med['skimage'] / med['ours']:.1f}, ours/itk 1/{med['itk'] / med['ours']:.1f}; "
          f"ours 1 thread {one * 1e3:.1f} ms/img (1/{med['skimage'] / one:.1f} of skimage); "
          f"r {r_whole:.4f} (whole) {r_inner:.4f} (interior)")


if __name__ == "__main__":
    main()

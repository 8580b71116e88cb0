"""Loader parity: today's `transforms.io` against the loader of an earlier commit, on the same inputs and calls.

The earlier loader (the `transforms` package at `--ref`, by default the last commit before the `transforms/io/`
package; `--ref HEAD` compares uncommitted changes with the last commit) is copied from git into a temporary package
and imported next to the current one. Every input then goes through the same calls, in the same order, in both:
    read_angiogram(p), read_angiogram(p, 0), read_angiogram(p, 2), read_angiogram(p, 1) with the parse cache
    emptied first (a single frame read from its own bytes), LoadAngiogram()(p, 0) (meta and affine too),
    list_angiogram_frames(p, "max_contrast", strict=True) (count_frames + frame_means), check_angiogram_file(p),
and the arrays (dtype, shape, values), meta dicts and error types/reasons must be identical.
Inputs: the embedded sample data, the angiograms, labels and DICOM files of ../shared/data when present, and files
written here from the samples: 8/16/32-bit, signed, BitsStored < BitsAllocated, MONOCHROME1, negative slope,
Modality LUT Sequence, big endian, implicit VR, no preamble, RGB, constant, spacing variants, RGB/16-bit/palette
PNG, multi-page TIFF, empty, text, truncated and byte-mutated copies. Their mtimes are set an hour back so that
the cache of parsed cines is exercised as well.

With --repeats N it then times both loaders side by side (alternating run by run, medians and minima of N rounds,
parse caches emptied before each run; the machine and its load average printed) on the embedded DCA files
(read_angiogram, then LoadAngiogram with its MetaTensor), the 96-frame cine in one call and the cine frame by frame,
and prints the ratio new/old for each.

    python benchmarks/loader_parity.py [--ref COMMIT] [--mutations 100] [--repeats 0]
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import random
import subprocess
import sys
import tarfile
import tempfile
import time
from functools import partial
from io import BytesIO
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.pixels import pixel_array
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from _bench import Machine, interleave

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SAMPLE = REPO / "sample_data"
SHARED = REPO.parent / "shared" / "data"
CINE = SAMPLE / "xa_cine" / "XA_coronary_cine_96frames_jpeg_baseline.dcm"
DCA = sorted((SAMPLE / "dca" / "images").glob("*.dcm"))
DEFAULT_REF = "8c5949b"


def old_package(ref: str, where: Path):
    """Imports the `transforms` package of commit `ref` as the package `old_transforms` (its modules import each
    other relatively, so the whole package is copied: a single-module io.py or the transforms/io/ package)."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, "transforms"], check=True,
                             capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(where, filter="data")
    (where / "transforms").rename(where / "old_transforms")
    sys.path.insert(0, str(where))
    return importlib.import_module("old_transforms.io"), importlib.import_module("old_transforms.dataset_check")


def _save(ds: Dataset, out: Path, **kwargs) -> Path:
    ds.save_as(out, **kwargs)
    return out


def _native(frames: np.ndarray, like: Path, out: Path, bits: int, signed: bool = False, stored: int | None = None,
            **changes) -> Path:
    ds = pydicom.dcmread(like)
    n = frames.shape[0]
    dtype = np.dtype(f"<{'i' if signed else 'u'}{bits // 8}")
    ds.PixelData = frames.astype(dtype).tobytes()
    ds["PixelData"].VR = "OW" if bits > 8 else "OB"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, stored or bits, (stored or bits) - 1
    ds.PixelRepresentation = int(signed)
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.NumberOfFrames = n
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    for key, value in changes.items():
        setattr(ds, key, value)
    return _save(ds, out, enforce_file_format=True)


def generated(tmp: Path, mutations: int) -> list[Path]:
    """Unusual and broken files written from the embedded samples."""
    rng = np.random.default_rng(0)
    cine4 = np.stack([pixel_array(str(CINE), index=i, decoding_plugin="pillow") for i in (0, 20, 40, 60)])
    dca = pydicom.dcmread(DCA[0]).pixel_array[None]
    out = []
    for bits in (8, 16, 32):
        scale = {8: 1, 16: 257, 32: 16843009}[bits]
        out.append(_native(cine4.astype(np.uint64) * scale, CINE, tmp / f"u{bits}.dcm", bits))
    out.append(_native(cine4.astype(np.int32) * 100 - 12000, CINE, tmp / "s16.dcm", 16, signed=True))
    out.append(_native(cine4.astype(np.int64) * 70000 - 9000000, CINE, tmp / "s32.dcm", 32, signed=True))
    noisy_high_bits = (cine4.astype(np.uint16) * 16) | (rng.integers(0, 16, cine4.shape, dtype=np.uint16) << 12)
    out.append(_native(noisy_high_bits, CINE, tmp / "u12of16.dcm", 16, stored=12))
    out.append(_native(cine4.astype(np.int16) * 8 - 1000, CINE, tmp / "s12of16.dcm", 16, signed=True, stored=12))
    out.append(_native(255 - cine4, CINE, tmp / "mono1.dcm", 8, PhotometricInterpretation="MONOCHROME1"))
    out.append(_native(255 - cine4, CINE, tmp / "negslope.dcm", 8, RescaleSlope=-1, RescaleIntercept=255))
    out.append(_native(dca, DCA[0], tmp / "spacing.dcm", 8, ImagerPixelSpacing=[0.3, 0.2], PixelSpacing=[0.5, 0.5]))
    out.append(_native(dca, DCA[0], tmp / "bad_spacing.dcm", 8, PixelSpacing=[-1, 0.5]))
    out.append(_native(np.full_like(dca, 7), DCA[0], tmp / "constant.dcm", 8))
    with_constant = cine4.copy()
    with_constant[1] = 9
    out.append(_native(with_constant, CINE, tmp / "one_constant_frame.dcm", 8))
    out.append(_native(np.full_like(cine4, 3), CINE, tmp / "all_constant.dcm", 8))
    lut = _native(cine4, CINE, tmp / "modality_lut.dcm", 8)
    ds = pydicom.dcmread(lut)
    item = Dataset()
    item.LUTDescriptor, item.ModalityLUTType = [256, 0, 16], "US"
    item.add_new(0x00283006, "US", [int(v) for v in (np.arange(256) ** 2 // 8)])
    ds.ModalityLUTSequence = [item]
    out.append(_save(ds, lut, enforce_file_format=True))
    for name, syntax, little, implicit in (("big_endian", ExplicitVRBigEndian, False, False),
                                           ("implicit", ImplicitVRLittleEndian, True, True)):
        ds = pydicom.dcmread(_native(cine4.astype(np.uint16) * 257, CINE, tmp / f"{name}.dcm", 16))
        ds.file_meta.TransferSyntaxUID = syntax
        out.append(tmp / f"{name}.dcm")
        pydicom.filewriter.dcmwrite(out[-1], ds, implicit_vr=implicit, little_endian=little, force_encoding=True)
    ds = pydicom.dcmread(DCA[1])
    del ds.file_meta
    ds.preamble = None
    out.append(tmp / "no_preamble.dcm")
    pydicom.filewriter.dcmwrite(out[-1], ds, implicit_vr=True, little_endian=True, force_encoding=True)
    ds = pydicom.dcmread(DCA[2])
    rgb = np.stack([dca[0], dca[0][::-1], 255 - dca[0]], -1).astype(np.uint8)
    ds.PixelData, ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = rgb.tobytes(), 3, "RGB", 0
    out.append(_save(ds, tmp / "rgb.dcm", enforce_file_format=True))
    ds = pydicom.dcmread(DCA[3])
    ds.NumberOfFrames = 0
    out.append(_save(ds, tmp / "bad_frames.dcm", enforce_file_format=True))
    Image.fromarray(rgb).save(tmp / "rgb.png")
    Image.fromarray(dca[0].astype(np.uint16) * 257).save(tmp / "u16.png")
    Image.fromarray(dca[0]).convert("P").save(tmp / "palette.png")
    Image.fromarray(np.full((32, 32), 5, np.uint8)).save(tmp / "constant.png")
    pages = [Image.fromarray(f) for f in cine4[:, :128, :128]]
    pages[0].save(tmp / "pages.tif", save_all=True, append_images=pages[1:])
    Image.fromarray(dca[0]).save(tmp / "frame.jpg")
    (tmp / "empty.dcm").write_bytes(b"")
    (tmp / "notes.dcm").write_text("not an image")
    out += [tmp / n for n in ("rgb.png", "u16.png", "palette.png", "constant.png", "pages.tif", "frame.jpg",
                              "empty.dcm", "notes.dcm")]
    small = tmp / "small_cine.dcm"
    ds = pydicom.dcmread(CINE)
    from pydicom.encaps import encapsulate, generate_frames

    ds.PixelData = encapsulate([f for _, f in zip(range(3), generate_frames(ds.PixelData, number_of_frames=96))],
                               has_bot=True)
    ds.NumberOfFrames = 3
    out.append(_save(ds, small))
    sources = [small.read_bytes(), DCA[0].read_bytes(), (tmp / "u16.dcm").read_bytes()]
    for frac in (0.1, 0.5, 0.9, 0.999):
        for k, data in enumerate(sources):
            out.append(tmp / f"cut{k}_{frac}.dcm")
            out[-1].write_bytes(data[: int(len(data) * frac)])
    rand = random.Random(0)
    for m in range(mutations):
        data = bytearray(sources[m % 2])
        limit = 1400 if m % 3 else len(data)
        kind = rand.choice(["flip", "splice", "zero"])
        if kind == "splice":
            at = rand.randrange(limit)
            data[at:at] = bytes(rand.randrange(256) for _ in range(rand.randint(1, 16)))
        else:
            for _ in range(rand.randint(1, 8)):
                data[rand.randrange(limit)] = 0 if kind == "zero" else rand.randrange(256)
        out.append(tmp / f"mutated{m}.dcm")
        out[-1].write_bytes(bytes(data))
    hour_ago = time.time() - 3600
    for p in out:
        os.utime(p, (hour_ago, hour_ago))
    return out


def inputs(tmp: Path, mutations: int) -> list[Path]:
    files = sorted(p for p in SAMPLE.rglob("*") if p.is_file() and p.suffix in (".dcm", ".png"))
    if SHARED.is_dir():
        files += sorted(p for p in SHARED.rglob("*") if p.is_file() and p.suffix.lower() not in (".md", ".txt", ".csv")
                        and p.name not in ("LICENSE", "NOTICE", "README"))
    return files + generated(tmp, mutations)


def outcome(fn):
    """What a call gives, in comparable form: ('ok', value) or ('error', type name, path, reason or message)."""
    try:
        return ("ok", fn())
    except Exception as exc:
        return ("error", type(exc).__name__, getattr(exc, "path", None), getattr(exc, "reason", str(exc)))


def same(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape
                and np.array_equal(a, b, equal_nan=a.dtype.kind == "f"))
    if hasattr(a, "meta") and hasattr(b, "meta"):
        return (same(a.numpy(), b.numpy()) and same(a.affine.numpy(), b.affine.numpy())
                and same(dict(a.meta), dict(b.meta)))
    if hasattr(a, "numpy") and hasattr(b, "numpy"):
        return type(a) is type(b) and same(a.numpy(), b.numpy())
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def calls(io, check):
    return {
        "read all": lambda p: io.read_angiogram(p),
        "read 0": lambda p: io.read_angiogram(p, 0),
        "read 2": lambda p: io.read_angiogram(p, 2),
        "read 1, cache emptied": lambda p: (io.files.clear_cache(), io.read_angiogram(p, 1))[1],
        "LoadAngiogram 0": lambda p: io.LoadAngiogram()(p, 0),
        "max_contrast list": lambda p: io.list_angiogram_frames(p, "max_contrast", strict=True),
        "check_angiogram_file": lambda p: check(p),
    }


def timings(old_io, new_io, repeats: int) -> None:
    """Median and min seconds of the same loads through both loaders, alternating run by run (the order flipped every
    round, benchmarks/_bench.py; each loader's parse cache emptied before its run); prints new/old."""
    old_files = getattr(old_io, "files", None) or sys.modules["old_transforms._dicom"]
    old_cache, new_cache = old_files.clear_cache, new_io.files.clear_cache
    cases = {
        f"{len(DCA)} DCA files": lambda io: [io.read_angiogram(p) for p in DCA],
        f"{len(DCA)} DCA files through LoadAngiogram (MetaTensor)": lambda io: [io.LoadAngiogram()(p) for p in DCA],
        "cine, one call": lambda io: io.read_angiogram(CINE),
        "cine, frame by frame": lambda io: [io.read_angiogram(CINE, i) for i in range(96)],
    }
    machine = Machine()
    for case, fn in cases.items():
        runs = {"old": lambda fn=fn: (old_cache(), fn(old_io)), "new": lambda fn=fn: (new_cache(), fn(new_io))}
        stats = interleave(runs, repeats)
        old, new = stats["old"], stats["new"]
        print(f"TIME {case}: old {old.median * 1e3:.1f} ms, new {new.median * 1e3:.1f} ms, new/old "
              f"{new.median / old.median:.3f} (min of {repeats}: {old.min * 1e3:.1f} vs {new.min * 1e3:.1f} ms, "
              f"{new.min / old.min:.3f})")
    machine.finish()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", default=DEFAULT_REF)
    parser.add_argument("--mutations", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=0)
    args = parser.parse_args()
    import transforms.dataset_check as new_check
    import transforms.io as new_io

    with tempfile.TemporaryDirectory() as tmp:
        old_io, old_check = old_package(args.ref, Path(tmp))
        gen = Path(tmp) / "inputs"
        gen.mkdir()
        files = inputs(gen, args.mutations)
        old_calls = calls(old_io, old_check.check_angiogram_file)
        new_calls = calls(new_io, new_check.check_angiogram_file)
        compared = errors = 0
        differences = []
        for p in files:
            for name in old_calls:
                a, b = outcome(partial(old_calls[name], p)), outcome(partial(new_calls[name], p))
                compared += 1
                errors += a[0] == "error"
                if a[0] == "error" and b[0] == "error" and a[1] == "AngiogramReadError" and b[1] == a[1]:
                    ok = a[2:] == b[2:]
                else:
                    ok = same(a, b)
                if not ok:
                    differences.append((str(p), name, str(a)[:300], str(b)[:300]))
        for diff in differences[:20]:
            print("DIFFERENT", *diff, sep="\n  ")
        shared = "with" if SHARED.is_dir() else "without"
        print(f"SUMMARY {compared} calls on {len(files)} files ({shared} ../shared/data; {errors} calls raised in the "
              f"old loader): {len(differences)} differ between {args.ref} and the working tree")
        if args.repeats:
            timings(old_io, new_io, args.repeats)
        sys.exit(1 if differences else 0)


if __name__ == "__main__":
    main()

"""Where the loader's time goes: each stage of the read path timed on its own, as a ratio to pydicom's call.

Two cases, each timed with the `_bench` harness (stages alternate repeat by repeat in one process; medians and minima;
the CPU, threads and load average printed; minor page faults per item from getrusage):
    single frame: the 33 embedded DCA files (300 x 300, native 8-bit), after a batch-sized block has been freed (as in
        a DataLoader worker), against `dcmread(p).pixel_array`: pydicom's parse from the path and from the bytes
        already in memory, our `files.read_dataset`, `files.open_angiogram` (parse + header checks), the checks alone
        (`header.inspect_dataset` on parsed datasets), the read path (`read_angiogram`: float32 array + meta dict),
        `LoadAngiogram` (the read path + its MetaTensor), its MetaTensor alone (`loaders.as_metatensor` on arrays
        already read, 33 in a row: the constructor's time when its code and data are still in cache, against its
        share inside `LoadAngiogram`, where each file's parse runs between two of them), and `normalise.normalise`
        of one frame into a kept output and into a fresh one;
    per frame, cache emptied (a shuffled DataLoader over many files), the 96-frame JPEG Baseline cine, against
        `pixel_array(path, index=i, decoding_plugin="pillow")`: `LoadAngiogramd` per frame, its header and frame-bytes
        read (`files.encoded_frame`), its Pillow decode (`decode.jpeg8_frame`), and the normalisation of a decoded
        frame.
Torch runs on one thread (a DataLoader worker's setting).

    python benchmarks/loader_stages.py [--repeats 40]
"""

from __future__ import annotations

import argparse
import resource
import warnings
from io import BytesIO
from pathlib import Path

import numpy as np
import pydicom
import torch
from pydicom.pixels import pixel_array

from transforms.io import LoadAngiogram, LoadAngiogramd, decode, files, header, list_angiogram_frames, normalise
from transforms.io.loaders import as_metatensor
from transforms.io.read import read_angiogram

from _bench import Machine, interleave

ROOT = Path(__file__).resolve().parents[1] / "sample_data"
DCA = sorted((ROOT / "dca" / "images").glob("*.dcm"))
CINE = ROOT / "xa_cine" / "XA_coronary_cine_96frames_jpeg_baseline.dcm"


def faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def report(title: str, fns: dict, repeats: int, items: int, peer: str) -> None:
    """Times `fns` interleaved; prints each stage per item, as a ratio to `peer`, with its page faults per item."""
    counts = dict.fromkeys(fns, 0)

    def counted(name, fn):
        def run():
            start = faults()
            fn()
            counts[name] += faults() - start
        return run

    stats = interleave({k: counted(k, f) for k, f in fns.items()}, repeats)
    print(title)
    ref = stats[peer]
    for name, s in stats.items():
        print(f"  {name:<44} {s.median / items * 1e6:8.1f} / {s.min / items * 1e6:8.1f} us   "
              f"{s.median / ref.median:5.2f}x / {s.min / ref.min:5.2f}x of the peer   "
              f"faults/item {counts[name] / (repeats + 1) / items:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    machine = Machine()
    batch = np.empty((16, 512, 512), np.float32)  # freed at once: glibc's thresholds rise as in a DataLoader worker
    del batch
    load, loadd = LoadAngiogram(), LoadAngiogramd(keys="image")
    frame = pydicom.dcmread(DCA[0]).pixel_array
    kept = np.empty(frame.shape[::-1], np.float32)
    blobs = [p.read_bytes() for p in DCA]
    parsed = [files.read_dataset(p) for p in DCA]
    read = [read_angiogram(p) for p in DCA]
    peer = "peer: dcmread(p).pixel_array"
    report("single frame, per file (median / min of the rounds):", {
        peer: lambda: [pydicom.dcmread(p).pixel_array for p in DCA],
        "pydicom: dcmread(path)": lambda: [pydicom.dcmread(p) for p in DCA],
        "pydicom: dcmread(bytes in memory)": lambda: [pydicom.dcmread(BytesIO(b), force=True) for b in blobs],
        "files.read_dataset": lambda: [files.read_dataset(p, images=True) for p in DCA],
        "files.open_angiogram (parse + checks)": lambda: [files.open_angiogram(p) for p in DCA],
        "header.inspect_dataset alone": lambda: [header.inspect_dataset(p, d) for p, d in zip(DCA, parsed)],
        "read_angiogram (array + meta dict)": lambda: [read_angiogram(p) for p in DCA],
        "LoadAngiogram (+ MetaTensor)": lambda: [load(p) for p in DCA],
        "its MetaTensor alone, 33 in a row": lambda: [as_metatensor(a, dict(m)) for a, m in read],
        "normalise one frame, kept output": lambda: [normalise.normalise("", frame, False, None, out=kept)
                                                     for _ in DCA],
        "normalise one frame, fresh output": lambda: [normalise.normalise("", frame, False, None) for _ in DCA],
    }, args.repeats, len(DCA), peer)

    datalist = list_angiogram_frames(CINE)
    image = files.encoded_frame(CINE, 0)[0]
    encoded = [files.encoded_frame(CINE, i)[1] for i in range(len(datalist))]
    decoded = decode.jpeg8_frame(image, encoded[0], None)
    kept = np.empty(decoded.shape[::-1], np.float32)

    def each_frame(fn):
        def run():
            for i in range(len(datalist)):
                files.clear_cache()
                fn(i)
        return run

    peer = "peer: pixel_array(path, index=i), Pillow"
    report(f"cine per frame, cache emptied before each frame, per frame ({len(datalist)} frames):", {
        peer: lambda: [pixel_array(str(CINE), index=i, decoding_plugin="pillow") for i in range(len(datalist))],
        "LoadAngiogramd": each_frame(lambda i: loadd(datalist[i])),
        "files.encoded_frame (header + frame bytes)": each_frame(lambda i: files.encoded_frame(CINE, i)),
        "decode.jpeg8_frame alone": lambda: [decode.jpeg8_frame(image, e, None) for e in encoded],
        "normalise one frame, kept output": lambda: [normalise.normalise("", decoded, False, None, out=kept)
                                                     for _ in datalist],
    }, max(3, args.repeats // 6), len(datalist), peer)
    machine.finish()


if __name__ == "__main__":
    main()

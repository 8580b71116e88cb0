"""Angiogram loader vs pydicom's fastest decoding path on the same files, with the `_bench` harness.

Every reading alternates ours and the peers repeat by repeat and prints medians and minima, the CPU, threads and
load average; a goal line says "NOT a valid reading" when the machine was loaded.
    decoders: for each transfer syntax of the embedded sample data and ../shared/data/dicom (its smallest file),
        `pixel_array(path, decoding_plugin=p)` for every installed plugin p and pydicom's default order, whether
        each equals the default's output (max abs difference), the fastest equal one, and the loader's
        `decode.FASTEST_PLUGIN` entry next to it;
    single-frame: the 33 DCA files (300 x 300, native) -> normalised (1, W, H) MetaTensors vs
        `dcmread(p).pixel_array` (native data have one decoder), with the read path alone (`read_angiogram`: the
        float32 array and meta dict, before LoadAngiogram makes them a MetaTensor) timed in the same rounds, so
        that the MetaTensor's share is printed; twice: first, in the fresh process, and again once a batch-sized
        block (16 x 512 x 512 float32, as a DataLoader worker's collate makes) has been freed. Ours writes 4x the
        peer's bytes (float32, 360 KB a file), which glibc first maps fresh for every file (page
        faults, ~0.1 ms a file on the VMs measured) and, once a large block has been freed (its adaptive mmap and
        trim thresholds then rise), takes from memory it keeps; so the two readings differ, and the first is the
        worst case of the two;
    cine (96 frames, 512 x 512, JPEG Baseline), every frame
        (a) in one call LoadAngiogram()(p) -> (96, W, H) vs `dcmread(p).pixel_array` with each plugin; the
            fastest of them is the peer. Ours runs three times: with torch's threads as they are (the frames are
            decoded and normalised on them, `transforms._parallel.run_pieces`), the same with fresh memory (the
            freed outputs that `transforms.io.memory` keeps are dropped before the call, so that the kernel maps
            and zeroes the 100 MB output again, as for the first cine of a process) and on one thread
            (torch.set_num_threads(1) for the run: a DataLoader worker's setting); the peer is single-threaded,
        (b) frame by frame through the datalist (96 LoadAngiogramd calls; the first parses the header and reads
            its frame's bytes only, the others find the header in the loader's per-process cache),
        (c) frame by frame with that cache emptied before every frame (a shuffled DataLoader over many files);
        (b) and (c) against pydicom reading the same frame in each of 96 calls with its fastest plugin
        (`pixel_array(p, index=i, decoding_plugin=...)`, which reads only that frame) and against the one-call peer;
    long cine: (c) and its peer again on the cine's frames repeated 4 times (384 frames, written with a Basic Offset
        Table to a temporary folder), so that a per-frame cost that grows with the length of the file shows.
    The loader's cache is emptied before every timed call of (a) and every pass of (b).

With --cpu-time every run is timed by the process's CPU time (all its threads) instead of the wall clock: on a loaded
machine this leaves out the time spent waiting for a core (not cache and memory contention), so ratios are closer to
a quiet machine's; the goal lines still judge validity by the load average. Threads shorten the wall time only, so
under --cpu-time the one-call reading on several threads shows their cost, not their gain: its goal is judged on the
one-thread reading there, and on the wall clock on both (each goal line names its configuration).

    python benchmarks/dicom_loading.py [--repeats 7] [--cpu-time]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from functools import partial
from pathlib import Path

import numpy as np
import pydicom
import torch
from pydicom.encaps import encapsulate, generate_frames
from pydicom.pixels import get_decoder, pixel_array

from transforms.io import LoadAngiogram, LoadAngiogramd, decode, files, list_angiogram_frames, memory
from transforms.io.read import read_angiogram

from _bench import Machine, interleave

REPO = Path(__file__).resolve().parents[1]
ROOT = REPO / "sample_data"
SHARED = REPO.parent / "shared" / "data" / "dicom"
CINE = ROOT / "xa_cine" / "XA_coronary_cine_96frames_jpeg_baseline.dcm"
DCA = sorted((ROOT / "dca" / "images").glob("*.dcm"))
GOALS = {"single-frame": 1.1, "cine one call": 1.25, "worst case": 1.25}


def smallest_per_syntax() -> dict:
    """{transfer syntax UID: the smallest encapsulated DICOM file of it that pydicom's default order decodes}."""
    found: dict = {}
    for path in sorted(p for root in (ROOT, SHARED) if root.is_dir() for p in root.rglob("*") if p.is_file()):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            syntax = ds.file_meta.TransferSyntaxUID
            if not syntax.is_encapsulated or path.stat().st_size >= found.get(syntax, (0, 1e18))[1]:
                continue
            pixel_array(str(path))
        except Exception:
            continue
        found[syntax] = (path, path.stat().st_size)
    return {syntax: path for syntax, (path, _) in found.items()}


def decoder_table(timed, repeats: int) -> None:
    """Times every installed plugin per transfer syntax; prints the table FASTEST_PLUGIN is chosen from."""
    print("decoders (pixel_array of the whole file; ms median / min; '=' output equals pydicom's default order):")
    for syntax, path in smallest_per_syntax().items():
        arrays = {}
        for p in ("",) + tuple(get_decoder(syntax).available_plugins):
            try:
                arrays[p] = pixel_array(str(path), decoding_plugin=p)
            except Exception as exc:
                print(f"  {syntax.name}: plugin {p} fails on {path.name} ({type(exc).__name__})")
        plugins = tuple(arrays)
        stats = timed({p: (lambda p=p, f=str(path): pixel_array(f, decoding_plugin=p)) for p in plugins}, repeats)
        cells, equal = [], []
        for p in plugins:
            a, ref = arrays[p].astype(np.int64), arrays[""].astype(np.int64)
            diff = int(np.abs(a - ref).max()) if a.shape == ref.shape else -1
            if p and diff == 0:
                equal.append(p)
            cells.append(f"{p or 'default'} {stats[p].median * 1e3:.1f}/{stats[p].min * 1e3:.1f}"
                         + (" =" if diff == 0 else f" (max diff {diff})"))
        fastest = min(equal, key=lambda p: stats[p].median, default="")
        chosen = decode.FASTEST_PLUGIN.get(syntax, "")
        print(f"  {syntax.name} ({syntax}), {path.relative_to(REPO.parent)}: " + ", ".join(cells)
              + f"; fastest equal: {fastest or 'default'}; loader: {chosen or 'pydicom order'}")


def long_cine(folder: str, times: int = 4) -> Path:
    """The cine's frames repeated `times` times in one file (with a Basic Offset Table), its mtime an hour back so
    that the loader may cache it as it caches the cine."""
    ds = pydicom.dcmread(CINE)
    frames = list(generate_frames(ds.PixelData, number_of_frames=int(ds.NumberOfFrames)))
    ds.PixelData, ds.NumberOfFrames = encapsulate(frames * times, has_bot=True), len(frames) * times
    path = Path(folder) / "long_cine.dcm"
    ds.save_as(path)
    hour_ago = time.time() - 3600
    os.utime(path, (hour_ago, hour_ago))
    return path


def per_frame_reads(path: Path, plugin: str) -> dict:
    """Timed callables: ours frame by frame with the parse cache emptied before each frame, and pydicom's one-frame
    read of each frame with `plugin`."""
    loadd, frames = LoadAngiogramd(keys="image"), list_angiogram_frames(path)

    def uncached():
        for d in frames:
            files.clear_cache()
            loadd(d)

    return {"no cache": uncached,
            "peer": lambda: [pixel_array(str(path), index=i, decoding_plugin=plugin) for i in range(len(frames))]}


def raw(plugin: str):
    def fn():
        ds = pydicom.dcmread(CINE)
        ds.pixel_array_options(decoding_plugin=plugin)
        return ds.pixel_array
    return fn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--cpu-time", action="store_true", help="time by the process's CPU time (loaded machines)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    timed = partial(interleave, clock=time.process_time if args.cpu_time else time.perf_counter)
    machine = Machine()
    threads = torch.get_num_threads()
    print(f"clock: {'process CPU time (all threads)' if args.cpu_time else 'wall'}; ours on {threads} torch threads "
          "and on 1")
    load, loadd = LoadAngiogram(), LoadAngiogramd(keys="image")
    single_frame = {"ours": lambda: [load(p) for p in DCA],
                    "peer": lambda: [pydicom.dcmread(p).pixel_array for p in DCA],
                    "read path": lambda: [read_angiogram(p) for p in DCA]}
    fresh = timed(single_frame, args.repeats * 4)
    batch = np.empty((16, 512, 512), np.float32)  # freed at once: glibc's thresholds rise as in a DataLoader worker
    del batch
    single = timed(single_frame, args.repeats * 4)
    decoder_table(timed, 3)
    cine_list = list_angiogram_frames(CINE)

    def one_call():
        files.clear_cache()
        load(CINE)

    def one_call_fresh():
        memory.clear()
        one_call()

    def one_call_serial():
        torch.set_num_threads(1)
        try:
            one_call()
        finally:
            torch.set_num_threads(threads)

    def per_frame():
        files.clear_cache()
        for d in cine_list:
            loadd(d)

    plugins = ("",) + tuple(get_decoder(pydicom.dcmread(CINE, stop_before_pixels=True).file_meta.TransferSyntaxUID)
                            .available_plugins)
    cine = timed({"ours": one_call, "ours, fresh memory": one_call_fresh, "ours, 1 thread": one_call_serial,
                  **{f"pydicom {p or 'default'}": raw(p) for p in plugins}}, args.repeats)
    best = min(plugins, key=lambda p: cine[f"pydicom {p or 'default'}"].median)
    one_peer, shown = cine[f"pydicom {best or 'default'}"], best or "default"
    frames = timed({"datalist": per_frame, **per_frame_reads(CINE, best)}, args.repeats)
    with tempfile.TemporaryDirectory() as folder:
        long = timed(per_frame_reads(long_cine(folder), best), max(3, args.repeats // 2))
    machine.finish()
    for name, stats in cine.items():
        print(f"cine in one call, {name}: {stats}")
    print(f"cine per frame: datalist {frames['datalist']}; no cache {frames['no cache']}; pydicom {best or 'default'} "
          f"frame by frame {frames['peer']}")
    print(f"pydicom's fastest plugin for the cine: {best or 'default'}")
    for state, stats in (("in the fresh process", fresh), ("after a freed batch", single)):
        per_file = {k: v.per_item(len(DCA)) for k, v in stats.items()}
        print(machine.goal_line(f"single-frame (per file, {len(DCA)} DCA files), {state}, vs dcmread().pixel_array",
                                per_file["ours"], per_file["peer"], GOALS["single-frame"]))
        read, peer = per_file["read path"], per_file["peer"]
        wrap = per_file["ours"].median - read.median
        print(f"  of which: the read path alone (read_angiogram: float32 array + meta dict) "
              f"{read.median / peer.median:.2f}x / {read.min / peer.min:.2f}x; MetaTensor construction "
              f"(LoadAngiogram minus read path) {wrap * 1e6:.0f} us a file = {wrap / peer.median:.0%} of the peer's "
              "time")
    for name, config in (("ours", f"on {threads} torch threads"),
                         ("ours, fresh memory", f"on {threads} torch threads, fresh memory"),
                         ("ours, 1 thread", "on 1 thread")):
        line = machine.goal_line(f"cine one call, ours {config}, vs pydicom {shown} in one call", cine[name], one_peer,
                                 GOALS["cine one call"])
        if args.cpu_time and name != "ours, 1 thread" and threads > 1:
            line += " (process CPU time of all threads: their cost, not their wall-time gain; see the 1-thread line)"
        print(line)
    print(machine.goal_line(f"worst case: cine per frame without cache vs pydicom {shown} frame by frame",
                            frames["no cache"], frames["peer"], GOALS["worst case"]))
    print(machine.goal_line(f"worst case on the cine 4 times as long (384 frames) vs pydicom {shown} frame by frame",
                            long["no cache"], long["peer"], GOALS["worst case"]))
    for name in ("datalist", "no cache"):
        print(f"cine per frame ({name}) vs pydicom {shown} in one call: ratio median "
              f"{frames[name].median / one_peer.median:.2f}, min-of-N {frames[name].min / one_peer.min:.2f}")
    print(f"cine per frame (datalist) vs pydicom {shown} frame by frame: ratio median "
          f"{frames['datalist'].median / frames['peer'].median:.2f}, min-of-N "
          f"{frames['datalist'].min / frames['peer'].min:.2f}")


if __name__ == "__main__":
    main()

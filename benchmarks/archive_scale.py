"""Archive scale: the pretraining data path on N-frame synthetic archives, against today's path in the same run.

Today's path (the peer): build_datalist in every rank, serial and remembered by nothing, then a CacheDataset of the
bundle's deterministic transforms with the old crop keys in every rank (float32 image, vesselness and mask; every rank
computes every frame).
Ours: the datalist checked once (rank 0, `--check-workers` processes, results remembered per file), then the
FrameCacheDataset (disk mode: one store per machine, built with the work split over the ranks).

For each N (a synthetic JPEG archive written by benchmarks/synthetic_archive.py, 60 frames per file):
    datalist check: today's, ours first run, ours rerun (each in a fresh process);
    2 gloo ranks: cache build time, time to the first batch (datalist + cache + first augmented, masked batch of 16)
        and to the end of the first training step on it (the bundle's network, loss, optimizer and iteration,
        rank-local: no DDP all-reduce), peak RSS per rank after reading the rank's share of every frame, pipeline
        images/s per worker at 224 (the bundle's augmentation; the guided masks and sigma(S(I)) are drawn in the
        training step, on the training device, with S at initialisation so that it is not trained first; 20 batches
        of 16, DataLoader num_workers 0; ours and today's run at different moments, so under load this one is
        noisy: the interleaved single-process figure is the ratio).
Today's 2-rank path holds every frame in every rank; it is run only for N <= --today-max (RAM); above that its RSS is
projected from its measured KiB per frame. Bytes per cached frame in RAM mode at 256 are measured once, over the
embedded frames (96 cine + 33 DCA), each store in a fresh process (RSS growth over the build / frames).

    OMP_NUM_THREADS=1 python benchmarks/archive_scale.py --frames 1000 5000 [20000] [--check-workers 2]
    The machine (CPU, threads, load average at the start, after each datalist check and at the end) is printed
    (benchmarks/_bench.py); the timed goal (rerun / first run) says "NOT a valid reading" on a loaded machine.
    (the RAM-mode bytes per frame are printed twice: "cold", measured as the issue measured today's 1151 KiB, and
    "warm", after a first pass over the frames, which counts only what each cache keeps)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundles" / "vasomim_pretrain"
CONFIGS = [BUNDLE / "configs" / f for f in ("train.json", "data.json", "segmentor.json")]
SAMPLE = [REPO / "sample_data" / "xa_cine", REPO / "sample_data" / "dca" / "images"]
WORKING, IMG, BATCH, PIPELINE_BATCHES = 256, 224, 16, 20
TODAY = {"crop_keys": ["image", "vesselness", "vessel_mask"], "augment_transforms#1#mode": ["bilinear", "bilinear",
                                                                                           "nearest"]}


def rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def peak_rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def parsed(ids, **overrides):
    from monai.bundle import ConfigParser

    if str(BUNDLE) not in sys.path:
        sys.path.insert(0, str(BUNDLE))  # the bundle's `scripts` package
    parser = ConfigParser()
    parser.read_config([str(c) for c in CONFIGS])
    out = tempfile.mkdtemp(prefix="archive_scale_run_")
    parser.update({"working_size": WORKING, "img_size": IMG, "progress_bar": False, "output_dir": out, **overrides})
    if "segmentor_ckpt" not in overrides:
        parser["segmentor_ckpt"] = untrained_segmentor(parser, Path(f"{out}_untrained_segmentor.pt"))
    return [parser.get_parsed_content(i) for i in ids]


def untrained_segmentor(parser, path: Path) -> str:
    """Saves the bundle's S at initialisation (seed 0) to `path`. The step's soft guidance sigma(S(I)) costs the
    same whatever S's weights, so the benchmark loads this S instead of training one on the archive first."""
    import torch

    torch.manual_seed(0)
    torch.save(parser.get_parsed_content("segmentor#network_def").state_dict(), path)
    return str(path)


def make_cache(kind, datalist, cache_dir, stand_in=False):
    from monai.data import CacheDataset
    from monai.transforms import Compose, CopyItemsd

    from transforms import FrangiVesselnessd
    from transforms.frame_cache import FrameCacheDataset

    (det,) = parsed(["deterministic_transforms"], **(TODAY if kind == "today" else {}))
    if stand_in:
        det = [CopyItemsd("image", names="vesselness") if isinstance(t, FrangiVesselnessd) else t for t in det]
    if kind == "today":
        return CacheDataset(datalist, Compose(det), cache_rate=1.0, num_workers=1, progress=False)
    mode = "ram" if kind == "ram" else "disk"
    return FrameCacheDataset(datalist, Compose(det), (WORKING, WORKING), mode=mode, cache_dir=cache_dir,
                             progress=False)


def worker_ram_bytes(kind, cache_dir, warm):
    """One process: RSS growth of caching the embedded frames, KiB per frame. Cold (the issue's measurement):
    parse caches, operator caches and the allocator's working memory grow during the build and are counted. Warm:
    every frame is first run through the deterministic transforms once (results dropped), so that only what the
    cache keeps is counted."""
    from monai.transforms import Compose

    from transforms import build_datalist

    datalist = build_datalist(SAMPLE)
    (det,) = parsed(["deterministic_transforms"])
    for entry in datalist if warm else []:
        Compose(det)(dict(entry))
    before = rss_kib()
    ds = make_cache(kind, datalist, cache_dir)
    return {"kib_per_frame": (rss_kib() - before) / len(ds), "frames": len(ds),
            "store_kib_per_frame": getattr(ds, "nbytes", 0) / 1024 / len(ds)}


def worker_pipeline(cache_dir):
    """One process: the augmentation at 224 from ours (disk store) and today's CacheDataset, over the
    embedded frames, in 5 interleaved rounds of 100 images; median images/s of each."""
    import statistics

    from transforms import build_datalist

    datalist = build_datalist(SAMPLE)
    pres = {"ours": parsed(["train#preprocessing"])[0], "today": parsed(["train#preprocessing"], **TODAY)[0]}
    caches = {"ours": make_cache("disk", datalist, cache_dir), "today": make_cache("today", datalist, None)}
    rates = {k: [] for k in caches}
    for _ in range(5):
        for name, cache in caches.items():
            start = time.perf_counter()
            for i in range(100):
                pres[name](cache[i % len(cache)])
            rates[name].append(100 / (time.perf_counter() - start))
    return {k: statistics.median(v) for k, v in rates.items()}


def worker_check(kind, root, cache_dir, workers):
    """today: one check; first: one check with the results cache emptied first; rerun: median of 5 checks."""
    import shutil
    import statistics

    from transforms import build_datalist

    def once():
        start = time.perf_counter()
        if kind == "today":
            build_datalist(root)
        else:
            build_datalist(root, workers=workers, check_cache_dir=cache_dir)
        return time.perf_counter() - start

    if kind == "first":
        shutil.rmtree(cache_dir, ignore_errors=True)
    return {"seconds": statistics.median(once() for _ in range(5 if kind == "rerun" else 1))}


def worker_ranks(kind, root, cache_dir, workers, started, stand_in=False):
    """Under torchrun: the 2-rank data path of `kind` ("today" or "disk")."""
    import torch.distributed as dist
    from monai.data import DataLoader, Dataset, DistributedSampler

    from transforms import build_datalist
    from transforms.ranks import build_datalist_once

    dist.init_process_group("gloo")
    if kind == "today":
        datalist = build_datalist(root)
    else:
        datalist = build_datalist_once(root=root, workers=workers, check_cache_dir=cache_dir)
    t_cache = time.time()
    cache = make_cache(kind, datalist, cache_dir, stand_in)
    dist.barrier()
    build_s = time.time() - t_cache
    (pre,) = parsed(["train#preprocessing"], **(TODAY if kind == "today" else {}))
    sampler = DistributedSampler(cache, shuffle=True, even_divisible=True)
    loader = DataLoader(Dataset(cache, pre), batch_size=BATCH, sampler=sampler, num_workers=0)
    batches = iter(loader)
    batch = next(batches)
    first_batch_s = time.time() - started
    first_step(batch)
    first_step_s = time.time() - started
    start = time.perf_counter()
    images = 0
    for _ in range(PIPELINE_BATCHES):
        try:
            images += len(next(batches)["image"])
        except StopIteration:
            batches = iter(loader)
    per_s = images / (time.perf_counter() - start)
    for i in sampler:
        cache[i]
    record = {"rank": dist.get_rank(), "frames": len(cache), "build_s": build_s, "first_batch_s": first_batch_s,
              "first_step_s": first_step_s,
              "images_per_s": per_s, "peak_rss_mib": peak_rss_kib() / 1024,
              "computed": len(getattr(cache, "computed", cache))}
    records = [None] * dist.get_world_size()
    dist.all_gather_object(records, record)
    dist.destroy_process_group()
    return records if record["rank"] == 0 else None


def first_step(batch: dict) -> None:
    """One pretraining step on `batch` (image and vessel_mask (B, 1, 224, 224)) with the
    bundle's own network, VasoMIM loss, optimizer and iteration (`scripts.iteration.MAEIteration`), on this rank's
    device, without DDP's gradient all-reduce."""
    from types import SimpleNamespace

    from monai.inferers import SimpleInferer

    network, loss, optimizer, prepare, iteration, device = parsed(
        ["network", "loss", "optimizer", "train#prepare_batch", "train#iteration", "device"])
    engine = SimpleNamespace(prepare_batch=prepare, state=SimpleNamespace(device=device), non_blocking=False,
                             network=network, optimizer=optimizer, optim_set_to_none=True, inferer=SimpleInferer(),
                             loss_function=loss, fire_event=lambda event: None)
    iteration(engine, batch)


def child(args: list[str], torchrun: bool = False):
    """Runs this script as a worker (in a fresh process, or 2 gloo ranks) and returns its JSON result."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"] if torchrun else []
        head = [sys.executable] + launcher
        env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        proc = subprocess.run(head + [__file__, "--out", out.name, *args], capture_output=True, text=True, env=env,
                              check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"worker {args} failed:\n{proc.stderr[-4000:]}")
        return json.loads(Path(out.name).read_text())


def ratio(name, ours, today, goal=""):
    print(f"{name}: ours {ours:.4g}, today {today:.4g}, ratio {ours / today:.3f}{goal}", flush=True)


def run_n(n, args, scratch, today_kib, today_peak, machine):
    from synthetic_archive import write_archive

    root, cache = scratch / f"archive_{n}", scratch / f"cache_{n}"
    write_archive(root, n, 60, jpeg=True)
    files = sum(1 for _ in root.rglob("*.dcm"))
    print(f"\n== N = {n} frames ({files} JPEG files of <= 60 frames)", flush=True)
    common = ["--root", str(root), "--cache", str(cache), "--check-workers", str(args.check_workers)]
    if args.stand_in:
        first = today = rerun = float("nan")
    else:
        checks = {"today": [], "first": []}
        for r in range(3):
            for k in list(checks)[:: 1 if r % 2 == 0 else -1]:
                checks[k].append(child(["--worker", "check", "--kind", k, *common])["seconds"])
        today, first = (statistics.median(checks[k]) for k in ("today", "first"))
        rerun = child(["--worker", "check", "--kind", "rerun", *common])["seconds"]
        ratio(f"N={n} datalist check, first run (s, median of 3 fresh processes alternating with today's, min "
              f"{min(checks['first']):.4g} vs {min(checks['today']):.4g}, {args.check_workers} workers) vs today's",
              first, today)
        ratio(f"N={n} datalist check, rerun (s, median of 5) vs today's", rerun, today)
        machine.finish(f"N={n} check")
        print(f"N={n} datalist check rerun / first run: {rerun / first:.4f} (goal <= 0.05: "
              f"{machine.verdict(rerun / first, 0.05)})", flush=True)
    if args.check_only:
        return None
    ours = child(["--worker", "ranks", "--kind", "disk", *common] + (["--stand-in"] if args.stand_in else []),
                 torchrun=True)
    row = {"n": n, "check": [today, first, rerun], "ours": ours}
    for r in ours:
        stand_in = " (stand-in vesselness)" if args.stand_in else ""
        print(f"N={n} ours{stand_in} rank {r['rank']}: build {r['build_s']:.1f} s ({r['computed']} frames computed), "
              "first "
              f"batch at {r['first_batch_s']:.1f} s, first step done at {r['first_step_s']:.1f} s, "
              f"{r['images_per_s']:.1f} img/s, "
              f"peak RSS {r['peak_rss_mib']:.0f} MiB",
              flush=True)
    if n <= args.today_max and not args.stand_in:
        old = child(["--worker", "ranks", "--kind", "today", *common], torchrun=True)
        row["today"] = old
        today_peak.update(n=n, mib=max(r["peak_rss_mib"] for r in old))
        for key, name in (("build_s", "cache build (s)"), ("first_batch_s", "time to first batch (s)"),
                          ("first_step_s", "time to first training step (s)"),
                          ("images_per_s", "pipeline images/s per worker at 224"), ("peak_rss_mib", "peak RSS (MiB)")):
            ratio(f"N={n} {name}, mean of 2 ranks", sum(r[key] for r in ours) / 2, sum(r[key] for r in old) / 2)
    elif today_peak and not args.stand_in:
        projected = today_peak["mib"] + (n - today_peak["n"]) * today_kib / 1024
        ratio(f"N={n} peak RSS per rank (MiB) vs today's projected (not run: its peak at N={today_peak['n']} + "
              f"{today_kib:.0f} KiB per further frame)", max(r["peak_rss_mib"] for r in ours), projected)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="*", default=[1000, 5000], help="archive sizes (none: only the "
                        "bytes per frame and pipeline lines)")
    parser.add_argument("--check-workers", type=int, default=2)
    parser.add_argument("--today-max", type=int, default=1000, help="largest N at which today's 2-rank path is run")
    parser.add_argument("--scratch", default=None, help="folder for the archives and caches (default: a temp dir)")
    parser.add_argument("--worker", choices=["ram", "pipeline", "check", "ranks"], help=argparse.SUPPRESS)
    parser.add_argument("--kind", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--warm", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--check-only", action="store_true", help="only the datalist check lines")
    parser.add_argument("--stand-in", action="store_true", help="RSS-only runs: the vesselness step is replaced by a "
                        "copy of the image (same shape and dtype, so the same store and read path) and the check, "
                        "today's peer and the RAM-mode lines are skipped")
    args = parser.parse_args()
    if args.worker:
        started = time.time()
        result = {"ram": lambda: worker_ram_bytes(args.kind, args.cache, args.warm),
                  "pipeline": lambda: worker_pipeline(args.cache),
                  "check": lambda: worker_check(args.kind, args.root, args.cache, args.check_workers),
                  "ranks": lambda: worker_ranks(args.kind, args.root, args.cache, args.check_workers, started,
                                               args.stand_in)}[
            args.worker]()
        if result is not None:
            Path(args.out).write_text(json.dumps(result))
        return
    sys.path.insert(0, str(Path(__file__).parent))
    from _bench import Machine

    machine = Machine(out=lambda line: print(line, flush=True))
    with tempfile.TemporaryDirectory(dir=args.scratch) as tmp:
        scratch = Path(tmp)
        quick = args.stand_in or args.check_only
        for warm in () if quick else ("cold", "warm"):
            ram = {k: child(["--worker", "ram", "--kind", k, "--cache", str(scratch / "ram_cache")]
                            + (["--warm"] if warm == "warm" else [])) for k in ("ram", "today")}
            kib = ram["ram"]["kib_per_frame"], ram["today"]["kib_per_frame"]
            ratio(f"bytes per cached frame at 256^2, RAM mode, {ram['ram']['frames']} embedded frames "
                  f"(KiB of RSS growth per frame, {warm}; our store itself "
                  f"{ram['ram']['store_kib_per_frame']:.0f} KiB/frame)",
                  *kib, f" (goal <= 0.25: {machine.verdict(kib[0] / kib[1], 0.25, timing=False)})")
        rate = {"ours": 1.0, "today": 1.0} if quick else child(
            ["--worker", "pipeline", "--cache", str(scratch / "pipeline_cache")])
        quick or ratio("data pipeline images/s per worker at 224 (augmentation, one process, "
                       "medians of 5 "
              "interleaved rounds)", rate["ours"], rate["today"])
        today_peak = {}
        today_kib = float("nan") if quick else ram["today"]["kib_per_frame"]
        rows = [r for r in (run_n(n, args, scratch, today_kib, today_peak, machine) for n in args.frames) if r]
    peaks = {row["n"]: max(r["peak_rss_mib"] for r in row["ours"]) for row in rows}
    low = min(peaks, default=0)
    for n, peak in peaks.items():
        print(f"disk mode peak RSS per rank, N={n} vs N={low}: {peak:.0f} vs {peaks[low]:.0f} MiB, ratio "
              f"{peak / peaks[low]:.3f} (goal <= 1.10: {machine.verdict(peak / peaks[low], 1.10, timing=False)})",
              flush=True)
    machine.finish()


if __name__ == "__main__":
    main()

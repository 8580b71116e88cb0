"""The four pretraining speed checks on any device and precision, each against its peer in the same run:

    throughput     one training step of our GuidedMAE vs MONAI's MaskedAutoEncoderViT (same sizes, batch, fused AdamW);
    frangi         transforms.frangi on the device vs skimage.filters.frangi (CPU, one thread) on real cine frames;
    guidance       the bundle's guided step (its S, masks drawn in the step, L_cons) vs a plain random-mask MAE
                   step (same model and optimizer), built by benchmarks/guidance_cost.py;
    data pipeline  augmentation + guided masking at the training size from the FrameCacheDataset (disk store) vs
                   today's float32 CacheDataset, on the embedded frames (CPU; what feeds the device).
Steps run under torch.autocast(dtype) when --dtype is bf16 or fp16. Medians (and minima) over repeats that alternate
ours and the peer, the order flipped every repeat (benchmarks/_bench.py); the machine and its load average are printed,
and a goal reads "NOT a valid reading" when the 1-min load exceeded half the cores. The CPU preset
(ViT 192-d/6 layers at 128) is the model by default; --model vit-b16 the paper's ViT-B/16 at 224; --tiny shrinks
everything (ViT 32-d/2 layers at 64, 2 repeats, 64-pixel Frangi) so that CI runs it on CPU in seconds. Each check
prints one SUMMARY line.

    python benchmarks/device_bench.py [--device cuda] [--dtype bf16] [--model vit-b16] [--tiny]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from monai.networks.nets import MaskedAutoEncoderViT

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bundles" / "vasomim_pretrain"))
from scripts import mae as mae_lib  # noqa: E402
from scripts.losses import VasoMIMLoss  # noqa: E402
from transforms import LoadAngiogram, frangi  # noqa: E402

from _bench import Machine, interleave  # noqa: E402

CINE = REPO / "sample_data" / "xa_cine" / "XA_coronary_cine_96frames_jpeg_baseline.dcm"
DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
MODELS = {
    "tiny": {"img_size": 64, "patch_size": 16, "hidden_size": 32, "mlp_dim": 64, "num_layers": 2, "num_heads": 2,
             "decoder_hidden_size": 32, "decoder_mlp_dim": 64, "decoder_num_layers": 1, "decoder_num_heads": 2},
    "cpu-preset": {"img_size": 128, "patch_size": 16, "hidden_size": 192, "mlp_dim": 768, "num_layers": 6,
                   "num_heads": 3, "decoder_hidden_size": 128, "decoder_mlp_dim": 512, "decoder_num_layers": 2,
                   "decoder_num_heads": 4},
    "vit-b16": dict(mae_lib.PRESETS["vit_base_patch16"], img_size=224),
}


def synced_clock(device):
    """time.perf_counter, after waiting for the device's queued work."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def clock():
        sync()
        return time.perf_counter()

    return clock


def interleaved(fns: dict, repeats: int, clock) -> dict:
    """Stats per name: one warm-up run each, then `repeats` rounds alternating the order (benchmarks/_bench.py)."""
    return interleave(fns, repeats, warmup=1, clock=clock)


def train_step(net, opt, x, loss_fn, autocast, mask=None):
    def step():
        opt.zero_grad(set_to_none=True)
        with autocast():
            pred, m = net(x, mask=mask) if mask is not None else net(x)
            loss = loss_fn(x, pred, m)
        loss.backward()
        opt.step()

    return step


def check_throughput(sizes, batch, device, autocast, repeats, clock):
    x = torch.rand(batch, 1, sizes["img_size"], sizes["img_size"], device=device)
    p = sizes["patch_size"]
    plain = VasoMIMLoss(None, p, use_cons=False)
    nets = {"ours": mae_lib.GuidedMAE(**sizes).to(device),
            "monai": MaskedAutoEncoderViT(in_channels=1, spatial_dims=2, qkv_bias=True, **sizes).to(device)}
    def loss(x, pred, m):
        return plain(x, pred, m)["loss"]

    steps = {k: train_step(n, torch.optim.AdamW(n.parameters(), lr=1e-4, fused=True), x, loss, autocast)
             for k, n in nets.items()}
    peer = "MONAI MAE"
    try:
        steps["monai"]()
    except RuntimeError as err:
        peer = f"MONAI MAE in fp32 (under autocast it fails: {str(err).splitlines()[0][:70]})"
        steps["monai"] = train_step(nets["monai"], torch.optim.AdamW(nets["monai"].parameters(), lr=1e-4, fused=True),
                                    x, loss, contextlib.nullcontext)
    stats = interleaved(steps, repeats, clock)
    med = {k: v.median for k, v in stats.items()}
    print(f"SUMMARY throughput: ours {batch / med['ours']:.1f} img/s, {peer} {batch / med['monai']:.1f} img/s, "
          f"ratio {med['monai'] / med['ours']:.2f}x the peer's speed, best runs "
          f"{stats['monai'].min / stats['ours'].min:.2f}x (img {sizes['img_size']}, batch {batch})", flush=True)


def check_frangi(size, batch, device, repeats, clock, machine):
    from skimage.filters import frangi as sk_frangi
    from skimage.transform import resize

    frames = LoadAngiogram()(str(CINE))[:batch].numpy()
    frames = np.stack([resize(f, (size, size), anti_aliasing=True) for f in frames]).astype(np.float32)
    images = torch.from_numpy(frames)[:, None].to(device)
    sigmas = (1, 2, 3, 4, 5)

    def ours():
        with torch.no_grad():
            frangi(images, sigmas=sigmas)

    frame = [0]

    def skimage():
        frame[0] = (frame[0] + 1) % batch
        sk_frangi(frames[frame[0]], sigmas=sigmas)

    stats = interleaved({"ours": ours, "skimage": skimage}, max(2, repeats), clock)
    machine.finish("end of frangi")
    ours_t, sk = stats["ours"].per_item(batch), stats["skimage"]
    ratio = ours_t.median / sk.median
    print(f"SUMMARY frangi: ours {ours_t.median * 1e3:.2f} ms/img on {device.type} ({size}^2, batch {batch}), skimage "
          f"{sk.median * 1e3:.1f} ms/img (CPU, 1 thread), ratio 1/{1 / ratio:.1f}, min-of-N "
          f"1/{sk.min / ours_t.min:.1f} (goal <= 1/30: {machine.verdict(max(ratio, ours_t.min / sk.min), 1 / 30)})",
          flush=True)


def check_guidance(sizes, batch, device, autocast, repeats, clock, machine):
    import guidance_cost

    _, _, seg, parser = guidance_cost.bundle_parts(guidance_cost.CONFIGS)
    steps, _ = guidance_cost.guidance_steps(sizes, batch, seg, parser["mask_ratio"], parser["guidance"], device,
                                            autocast)
    stats = interleaved(steps, repeats, clock)
    machine.finish("end of guidance")
    ratio, low = stats["guided"].median / stats["plain"].median, stats["guided"].min / stats["plain"].min
    print(f"SUMMARY guidance_cost: guided + L_cons {stats['guided'].median * 1e3:.1f} ms vs plain MAE step "
          f"{stats['plain'].median * 1e3:.1f} ms, ratio {ratio:.2f}x, min-of-N {low:.2f}x (goal <= 1.15x: "
          f"{machine.verdict(max(ratio, low), 1.15)}; img {sizes['img_size']}, batch {batch}, the bundle's S and "
          f"step masking, guidance {parser['guidance']!r})", flush=True)


def check_pipeline(img, items, clock):
    sys.path.insert(0, str(REPO / "benchmarks"))
    import archive_scale

    from transforms import build_datalist

    archive_scale.WORKING, archive_scale.IMG = max(64, img * 8 // 7), img
    datalist = build_datalist([CINE, REPO / "sample_data" / "dca" / "images"], frame_policy="every:8")
    (pre,) = archive_scale.parsed(["train#preprocessing"])
    with tempfile.TemporaryDirectory() as cache_dir:
        caches = {"ours": archive_scale.make_cache("disk", datalist, cache_dir),
                  "today": archive_scale.make_cache("today", datalist, None)}
        def passes(cache):
            return lambda: [pre(cache[i % len(cache)]) for i in range(items)]

        fns = {k: passes(c) for k, c in caches.items()}
        med = {k: v.median for k, v in interleaved(fns, 3, clock).items()}
    print(f"SUMMARY data_pipeline: ours {items / med['ours']:.0f} img/s per worker, today's CacheDataset "
          f"{items / med['today']:.0f} img/s, ratio {med['today'] / med['ours']:.2f}x today's speed (img {img}, "
          f"augmentation + guided masking, CPU)", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    ap.add_argument("--model", choices=["cpu-preset", "vit-b16"], default="cpu-preset")
    ap.add_argument("--batch", type=int, default=0, help="0: 64 on CUDA, 8 on CPU (2 with --tiny)")
    ap.add_argument("--repeats", type=int, default=0, help="0: 10 (2 with --tiny)")
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--only", nargs="*", default=["throughput", "frangi", "guidance", "pipeline"])
    args = ap.parse_args()
    device = torch.device(args.device)
    sizes = MODELS["tiny" if args.tiny else args.model]
    batch = args.batch or (2 if args.tiny else 64 if device.type == "cuda" else 8)
    repeats = args.repeats or (2 if args.tiny else 10)
    dtype = DTYPES[args.dtype]
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype else contextlib.nullcontext
    clock = synced_clock(device)
    machine = Machine(out=lambda line: print(line, flush=True))
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), dtype "
          f"{args.dtype}, model {'tiny' if args.tiny else args.model}, batch {batch}, repeats {repeats}", flush=True)
    if "throughput" in args.only:
        check_throughput(sizes, batch, device, autocast, repeats, clock)
    if "frangi" in args.only:
        check_frangi(64 if args.tiny else 512, 2 if args.tiny else 16, device, repeats, clock, machine)
    if "guidance" in args.only:
        check_guidance(sizes, batch, device, autocast, repeats, clock, machine)
    if "pipeline" in args.only:
        check_pipeline(sizes["img_size"], 8 if args.tiny else 200, clock)
    machine.finish()


if __name__ == "__main__":
    main()

"""Pretraining throughput (images/s, forward + backward + AdamW step, fp32 with SDPA attention) of the CPU presets
and ViT-B/16 at 256², as a fraction of the same run's fp32 matmul FLOP/s, and bf16 autocast vs fp32.

Usage: python benchmarks/pretrain_throughput.py [--repeats 3]. Model FLOPs are counted with
torch.utils.flop_counter.FlopCounterMode on one training step. The one-line summary is printed last.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bundles" / "vasomim_pretrain"))
from scripts import mae as mae_lib  # noqa: E402
from scripts.losses import forward_loss  # noqa: E402

CASES = [("vit_tiny_patch16", 128, 8), ("vit_small_patch16", 128, 8), ("vit_base_patch16", 256, 1)]


def matmul_flops(n=2048, repeats=5):
    a, b = torch.rand(n, n), torch.rand(n, n)
    a @ b
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2 * n**3 / statistics.median(times)


def step_fn(net, opt, x, dtype):
    def step():
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            pred, mask = net(x)
            loss = forward_loss(x, pred, mask, 16)
        loss.backward()
        opt.step()
    return step


def timed(step, repeats):
    step()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    torch.manual_seed(0)
    peak = matmul_flops()
    print(f"threads={torch.get_num_threads()} fp32 matmul 2048^3: {peak / 1e9:.1f} GFLOP/s")
    rows = []
    for preset, img, batch in CASES:
        net = mae_lib.GuidedMAE(img_size=img, **mae_lib.PRESETS[preset])
        opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-4)
        x = torch.rand(batch, 1, img, img)
        with FlopCounterMode(display=False) as counter:
            step_fn(net, opt, x, torch.float32)()
        flops = counter.get_total_flops()
        t32 = timed(step_fn(net, opt, x, torch.float32), args.repeats)
        t16 = timed(step_fn(net, opt, x, torch.bfloat16), args.repeats)
        frac = flops / t32 / peak
        rows.append((preset, img, batch / t32, frac, t32 / t16))
        print(f"{preset:18s} {img}px batch {batch:2d}: fp32 {batch / t32:7.2f} img/s, {flops / t32 / 1e9:6.1f} GFLOP/s "
              f"= {frac:.0%} of matmul peak; bf16 autocast {batch / t16:7.2f} img/s ({t32 / t16:.2f}x fp32)")
    print("SUMMARY pretrain_throughput: " + "; ".join(
        f"{p}@{i}: {ips:.1f} img/s, {frac:.0%} of fp32 matmul FLOP/s, bf16/fp32 speed {sp:.2f}x"
        for p, i, ips, frac, sp in rows))


if __name__ == "__main__":
    main()

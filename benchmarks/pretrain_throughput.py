"""Pretraining throughput (images/s) of one training step (forward + backward + fused AdamW step on a pre-built
batch, fp32, SDPA attention) for the bundle's CPU preset (configs/preset_cpu.json) and the paper's ViT-B/16 at 256² (batch 8), as a
fraction of the fp32 matmul FLOP/s (4096², same process and threads) measured interleaved with the steps.

Peer in the same loop: a stock MONAI MaskedAutoEncoderViT (same sizes, its default attention) trained the same way.
FLOPs are counted with torch.utils.flop_counter.FlopCounterMode over a whole training step (forward + backward) of
each model (the warm-up step). Medians over repeats; each repeat times the two models in alternating order (the
first one after the matmul starts with cold caches), and a step shorter than 0.5 s is timed over several in a row.

Usage: python benchmarks/pretrain_throughput.py [--repeats 5] [--repeats-base 2] [--batch-base 8]. One-line summary printed last.
"""

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from monai.bundle import ConfigParser
from monai.networks.nets import MaskedAutoEncoderViT
from torch.utils.flop_counter import FlopCounterMode

BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "vasomim_pretrain"
sys.path.insert(0, str(BUNDLE))
from scripts import mae as mae_lib  # noqa: E402
from scripts.losses import forward_loss  # noqa: E402
from _threads import add_threads_option, apply_threads

MODEL_KEYS = ("img_size", "patch_size", "hidden_size", "mlp_dim", "num_layers", "num_heads", "decoder_hidden_size",
              "decoder_mlp_dim", "decoder_num_layers", "decoder_num_heads")
MATMUL_N = 4096


def cpu_preset():
    parser = ConfigParser()
    parser.read_config([str(BUNDLE / "configs" / f) for f in ("train.json", "preset_cpu.json")])
    return {k: parser[k] for k in MODEL_KEYS}, int(parser["batch_size"])


def matmul_time(a, b):
    t = time.perf_counter()
    a @ b
    return time.perf_counter() - t


def make_step(net, x, patch):
    opt = torch.optim.AdamW([q for q in net.parameters() if q.requires_grad], lr=1e-4, betas=(0.9, 0.95), fused=True)

    def step():
        opt.zero_grad(set_to_none=True)
        pred, mask = net(x)
        forward_loss(x, pred, mask, patch).backward()
        opt.step()

    return step


def run_case(name, sizes, batch, repeats, a, b):
    torch.manual_seed(0)
    img, patch = sizes["img_size"], sizes["patch_size"]
    x = torch.rand(batch, 1, img, img)
    nets = {
        "ours": mae_lib.GuidedMAE(**sizes),
        "monai": MaskedAutoEncoderViT(in_channels=1, spatial_dims=2, qkv_bias=True, **sizes),
    }
    assert all(blk.attn.use_flash_attention for blk in [*nets["ours"].blocks[:-1], *nets["ours"].decoder_blocks[:-1]])
    steps = {k: make_step(n, x, patch) for k, n in nets.items()}
    flops = {}
    for k, step in steps.items():
        with FlopCounterMode(display=False) as counter:
            step()
        flops[k] = counter.get_total_flops()
    start = time.perf_counter()
    for step in steps.values():
        step()
    inner = max(1, math.ceil(0.5 * len(steps) / (time.perf_counter() - start)))
    times = {"matmul": [], "ours": [], "monai": []}
    for r in range(repeats):
        times["matmul"].append(matmul_time(a, b))
        order = list(steps) if r % 2 == 0 else list(steps)[::-1]
        for k in order:
            t = time.perf_counter()
            for _ in range(inner):
                steps[k]()
            times[k].append((time.perf_counter() - t) / inner)
    med = {k: statistics.median(v) for k, v in times.items()}
    peak = 2 * MATMUL_N**3 / med["matmul"]
    row = {"peak": peak}
    print(f"{name}: img {img} batch {batch} repeats {repeats} x {inner} steps; matmul {MATMUL_N}² fp32 {peak / 1e9:.1f} GFLOP/s")
    for k in ("ours", "monai"):
        rate = flops[k] / med[k]
        row[k] = (batch / med[k], rate / peak)
        print(f"  {k:5s}: {med[k] * 1e3:8.1f} ms/step, {batch / med[k]:7.2f} img/s, {flops[k] / 1e9:7.1f} GFLOP/step, "
              f"{rate / 1e9:6.1f} GFLOP/s = {rate / peak:.0%} of matmul")
    print(f"  ratio line {name}: ours/MONAI speed {med['monai'] / med['ours']:.2f}x, fraction of matmul "
          f"{row['ours'][1]:.2f} ({'met' if row['ours'][1] >= 0.8 else 'NOT met'} >= 0.8 for ViT-B@256)")
    return row


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--repeats-base", type=int, default=2, help="repeats for ViT-B/16 (keeps the run < 2 min)")
    ap.add_argument("--batch-base", type=int, default=8)
    add_threads_option(ap)
    args = ap.parse_args()
    apply_threads(args)
    a, b = torch.rand(MATMUL_N, MATMUL_N), torch.rand(MATMUL_N, MATMUL_N)
    matmul_time(a, b)
    sizes, batch = cpu_preset()
    base = dict(mae_lib.PRESETS["vit_base_patch16"], img_size=256)
    cases = [("cpu-preset@128", sizes, batch, args.repeats), ("vit-b16@256", base, args.batch_base, args.repeats_base)]
    rows = [(name, run_case(name, s, bt, r, a, b)) for name, s, bt, r in cases]
    print(f"loadavg at end={os.getloadavg()[0]:.2f}")
    frac_b = rows[-1][1]["ours"][1]
    print("SUMMARY pretrain_throughput: " + "; ".join(
        f"{n}: {r['ours'][0]:.1f} img/s = {r['ours'][1]:.0%} of matmul FLOP/s (MONAI MAE {r['monai'][0]:.1f} img/s, "
        f"{r['monai'][1]:.0%})" for n, r in rows)
        + f"; ViT-B/16@256 goal >= 0.8: {'met' if frac_b >= 0.8 else 'NOT met'}")


if __name__ == "__main__":
    main()

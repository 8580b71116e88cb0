"""bf16 autocast vs fp32: the loss curve of a short VasoMIM pretraining run (guided masks + L_cons through S,
AdamW) under bf16 autocast, against fp32 with the same seed, batches and masks, relative to the fp32 seed-to-seed
spread (same batches and masks, another initialisation seed). ViT-tiny/16 at 64², CPU.

Usage: python benchmarks/bf16_loss_curve.py [--steps 30]. Goal: bf16 within the fp32 seed-to-seed noise.
The one-line summary is printed last.
"""

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from monai.networks.nets import UNet

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bundles" / "vasomim_pretrain"))
from scripts import mae as mae_lib  # noqa: E402
from scripts.losses import VasoMIMLoss  # noqa: E402
from transforms import AnatomyGuidedMask  # noqa: E402

from _threads import add_threads_option, apply_threads

IMG, BATCH = 64, 8


def make_batches(steps):
    """Smooth random images (B, 1, 64, 64) with dark 'vessel' lines, their vessel masks and guided masks (B, L)."""
    g = torch.Generator().manual_seed(123)
    masker = AnatomyGuidedMask(16, 0.75, beta=0.5)
    masker.set_random_state(0)
    batches = []
    for _ in range(steps):
        x = F.interpolate(torch.rand(BATCH, 1, 8, 8, generator=g), size=IMG, mode="bilinear", align_corners=False)
        vessel = torch.zeros(BATCH, 1, IMG, IMG)
        for i in range(BATCH):
            for _ in range(3):
                r, c = torch.randint(4, IMG - 4, (2,), generator=g).tolist()
                vessel[i, 0, r - 1:r + 1, :] = 1 if c % 2 else vessel[i, 0, r - 1:r + 1, :]
                vessel[i, 0, :, c - 1:c + 1] = 1
        x = (x * (1 - 0.6 * vessel)).clamp(0, 1)
        batches.append((x, torch.stack([masker(v)[0] for v in vessel])))
    return batches


def curve(batches, seed, dtype):
    torch.manual_seed(seed)
    net = mae_lib.GuidedMAE(img_size=IMG, **mae_lib.PRESETS["vit_tiny_patch16"])
    torch.manual_seed(0)
    seg = UNet(2, 1, 1, channels=(8, 16, 32), strides=(2, 2), num_res_units=0, norm="batch")
    loss_fn = VasoMIMLoss(seg, 16, use_cons=True)
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-3, betas=(0.9, 0.95), fused=True)
    losses = []
    for x, masks in batches:
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            pred, mask = net(x, mask=masks)
            loss = loss_fn(x, pred, mask)["loss"]
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    curve.pred_dtype = pred.dtype
    return torch.tensor(losses)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=30)
    add_threads_option(ap)
    args = ap.parse_args()
    apply_threads(args)
    batches = make_batches(args.steps)
    fp32 = curve(batches, 0, torch.float32)
    bf16 = curve(batches, 0, torch.bfloat16)
    print(f"decoder prediction dtype under autocast: {curve.pred_dtype}")
    fp32_b = curve(batches, 1, torch.float32)
    diff, spread = (bf16 - fp32).abs(), (fp32_b - fp32).abs()
    for i in range(0, args.steps, max(1, args.steps // 10)):
        print(f"step {i:3d}: fp32 {fp32[i]:.4f}  bf16 {bf16[i]:.4f}  fp32(seed 1) {fp32_b[i]:.4f}")
    print(f"last: fp32 {fp32[-1]:.4f}  bf16 {bf16[-1]:.4f}  fp32(seed 1) {fp32_b[-1]:.4f}")
    rel = diff.max() / spread.max()
    print(f"max |bf16 - fp32| = {diff.max():.4f} (mean {diff.mean():.4f}); fp32 seed-to-seed max spread "
          f"{spread.max():.4f} (mean {spread.mean():.4f})")
    print(f"SUMMARY bf16_loss_curve: max |loss_bf16 - loss_fp32| over {args.steps} steps = {rel:.2f}x the fp32 "
          f"seed-to-seed spread ({'within noise' if rel <= 1 else 'NOT within noise'}), ViT-tiny/16 64² batch {BATCH}")


if __name__ == "__main__":
    main()

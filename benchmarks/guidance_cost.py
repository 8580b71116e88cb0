"""Cost of VasoMIM's guidance: one pretraining step with anatomy-guided masking + L_cons (S forward/backward included)
vs a plain random-mask MAE step of the same model and batch, measured in the same run (median over repeats).

Usage: python benchmarks/guidance_cost.py [--preset vit_tiny_patch16] [--img 128] [--batch 8] [--repeats 15]
Goal: ratio <= 1.15x. The one-line summary is printed last.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from monai.networks.nets import BasicUNet

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bundles" / "vasomim_pretrain"))
from scripts import mae as mae_lib  # noqa: E402
from scripts.losses import VasoMIMLoss  # noqa: E402

from transforms import AnatomyGuidedMask  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="vit_small_patch16", choices=sorted(mae_lib.PRESETS))
    ap.add_argument("--img", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--features", default="16,16,32,64,128,16", help="BasicUNet features of S (bundle default)")
    args = ap.parse_args()
    torch.manual_seed(0)
    net = mae_lib.GuidedMAE(img_size=args.img, **mae_lib.PRESETS[args.preset])
    seg = BasicUNet(spatial_dims=2, in_channels=1, out_channels=1, features=tuple(int(f) for f in args.features.split(",")))
    guided_loss = VasoMIMLoss(seg, 16, use_cons=True)
    plain_loss = VasoMIMLoss(None, 16, use_cons=False)
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-4)
    x = torch.rand(args.batch, 1, args.img, args.img)
    vessel = (torch.rand(args.batch, 1, args.img, args.img) > 0.9).float()
    masker = AnatomyGuidedMask(16, 0.75, beta=0.5)
    masker.set_random_state(0)

    def guided_step():
        t0 = time.perf_counter()
        masks = torch.stack([masker(v)[0] for v in vessel])
        t_mask = time.perf_counter() - t0
        opt.zero_grad()
        pred, mask = net(x, mask=masks)
        t1 = time.perf_counter()
        out = guided_loss(x, pred, mask)
        out["loss"].backward()
        opt.step()
        return t_mask, t1

    def plain_step():
        opt.zero_grad()
        pred, mask = net(x)
        out = plain_loss(x, pred, mask)
        out["loss"].backward()
        opt.step()

    def seg_cost():
        recon = x.clone().requires_grad_(True)
        with torch.no_grad():
            seg(x)
        torch.nn.functional.binary_cross_entropy_with_logits(seg(recon), torch.rand_like(x)).backward()

    for _ in range(2):
        guided_step(), plain_step(), seg_cost()
    plain, guided, seg_only, mask_only = [], [], [], []
    for _ in range(args.repeats):
        t = time.perf_counter(); plain_step(); plain.append(time.perf_counter() - t)
        t = time.perf_counter(); t_mask, _ = guided_step(); guided.append(time.perf_counter() - t); mask_only.append(t_mask)
        t = time.perf_counter(); seg_cost(); seg_only.append(time.perf_counter() - t)
    p, g, s, m = (statistics.median(v) for v in (plain, guided, seg_only, mask_only))
    print(f"threads={torch.get_num_threads()} preset={args.preset} img={args.img} batch={args.batch} repeats={args.repeats}")
    print(f"plain MAE step   : {p * 1e3:8.1f} ms (median)")
    print(f"guided + L_cons  : {g * 1e3:8.1f} ms (median)")
    print(f"  S fwd x2 + bwd : {s * 1e3:8.1f} ms ({s / g:.0%} of the guided step)")
    print(f"  guided masking : {m * 1e3:8.1f} ms ({m / g:.0%} of the guided step)")
    ratio = g / p
    print(f"SUMMARY guidance_cost: guided+L_cons / plain MAE step = {ratio:.2f}x (goal <= 1.15x: "
          f"{'met' if ratio <= 1.15 else 'NOT met'}), S share {s / g:.0%}, masking share {m / g:.0%}, "
          f"{args.preset} {args.img}px batch {args.batch}")


if __name__ == "__main__":
    main()

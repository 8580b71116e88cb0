"""Cost of VasoMIM's guidance: one pretraining step with anatomy-guided masking + L_cons (S forward on I without
grad, S forward + input-gradient backward on I') vs a plain random-mask MAE step of the same model, batch, mask ratio
and optimizer (fused AdamW, as the bundle), measured alternately in the same run (benchmarks/_bench.py: the order
flips every repeat), medians and minima over repeats; the goal lines say "NOT a valid reading" on a loaded machine.
The guided step draws its masks as the bundle's training step does (`scripts.masking.StepMasking`): with the default
guidance "mixed" (0.5·m + 0.5·σ(S(I))), one call of S on the whole batch gives the guidance map and L_cons's target.

S is the bundle's segmentor built from its training configs (+ preset_cpu.json for the CPU case). Its share is timed
on its own (same inputs) in the same loop, as the loss runs it (`fast_frozen_copy`: BatchNorms folded, PReLU as
LeakyReLU) and as trained. Cases: the bundle CPU preset (128², its batch) and the paper's ViT-B/16 at 224².

Usage: python benchmarks/guidance_cost.py [--repeats 15] [--repeats-base 2] [--batch-base 4].
Goal: ratio <= 1.15x. Summary printed last.
"""

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from monai.bundle import ConfigParser

BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "vasomim_pretrain"
CONFIGS = ["train.json", "data.json", "segmentor.json"]
sys.path.insert(0, str(BUNDLE))
from scripts import mae as mae_lib  # noqa: E402
from scripts.losses import VasoMIMLoss, consistency_loss, freeze  # noqa: E402
from scripts.masking import StepMasking  # noqa: E402

from _bench import Machine, interleave  # noqa: E402
from _threads import add_threads_option, apply_threads  # noqa: E402

GOAL = 1.15
MODEL_KEYS = ("img_size", "patch_size", "hidden_size", "mlp_dim", "num_layers", "num_heads", "decoder_hidden_size",
              "decoder_mlp_dim", "decoder_num_layers", "decoder_num_heads")


def bundle_parts(config_files, **overrides):
    """The bundle's MAE sizes, batch size and (untrained) segmentor S from its config files."""
    parser = ConfigParser()
    parser.read_config([str(BUNDLE / "configs" / f) for f in config_files])
    parser.update(overrides)
    sizes = {k: parser[k] for k in MODEL_KEYS}
    return sizes, int(parser["batch_size"]), parser.get_parsed_content("segmentor#network_def"), parser


def guidance_steps(sizes, batch, seg, mask_ratio, guidance, device="cpu",
                   autocast=contextlib.nullcontext):
    """The two steps a case compares, on `device`: {"plain": a random-mask MAE step, "guided": the bundle's step
    (`scripts.masking.StepMasking`, then L_rec + L_cons)}, the same model, batch, mask ratio and fused AdamW, masking,
    forward and loss under `autocast()` as `scripts.iteration.MAEIteration` runs them. Also returns the guided step's
    parts the S timings use: (x (B, 1, H, W), masking, guided loss, list of the masking times in seconds)."""
    torch.manual_seed(0)
    img, p = sizes["img_size"], sizes["patch_size"]
    net = mae_lib.GuidedMAE(**sizes, masking_ratio=mask_ratio).to(device)
    guided_loss = VasoMIMLoss(seg, p, use_cons=True).to(device)
    plain_loss = VasoMIMLoss(None, p, use_cons=False)
    opt = torch.optim.AdamW([q for q in net.parameters() if q.requires_grad], lr=1e-4, betas=(0.9, 0.95), fused=True)
    x = torch.rand(batch, 1, img, img, device=device)
    vessel = (torch.rand(batch, 1, img, img, device=device) > 0.9).float()
    masking = StepMasking(p, mask_ratio, beta=0.5, guidance=guidance, segmentor=seg, seed=0)
    masking_times = []

    def plain_step():
        opt.zero_grad(set_to_none=True)
        with autocast():
            pred, mask = net(x)
            loss = plain_loss(x, pred, mask)["loss"]
        loss.backward()
        opt.step()

    def guided_step():
        opt.zero_grad(set_to_none=True)
        with autocast():
            t = time.perf_counter()
            mask, ids_keep, ids_restore, soft = masking(x, vessel)
            masking_times.append(time.perf_counter() - t)
            pred, mask = net(x, mask=mask, ids_keep=ids_keep, ids_restore=ids_restore)
            loss = guided_loss(x, pred, mask, soft)["loss"]
        loss.backward()
        opt.step()

    return {"plain": plain_step, "guided": guided_step}, (x, masking, guided_loss, masking_times)


def run_case(name, sizes, batch, seg, repeats, mask_ratio, guidance, machine):
    img = sizes["img_size"]
    steps, (x, masking, guided_loss, masking_times) = guidance_steps(sizes, batch, seg, mask_ratio, guidance)
    times = {"masking": masking_times}
    soft_x = masking.probability(x) if guidance == "mixed" else None

    def s_pass(segmentor):
        recon = x.clone().requires_grad_(True)
        consistency_loss(segmentor, x, recon, soft_x)[0].backward()

    def s_only():
        s_pass(guided_loss.segmentor)

    as_trained = freeze(seg)

    def s_as_trained():
        s_pass(as_trained)

    steps.update({"S": s_only, "S as trained": s_as_trained})
    for f in steps.values():
        f()
    for v in times.values():
        v.clear()
    stats = interleave(steps, repeats, warmup=0)
    med = {k: v.median for k, v in stats.items()}
    med.update({k: statistics.median(v) for k, v in times.items()})
    ratio = med["guided"] / med["plain"]
    low = stats["guided"].min / stats["plain"].min
    machine.finish(f"end of {name}")
    print(f"{name}: img {img} batch {batch} repeats {repeats} mask ratio {mask_ratio} guidance {guidance!r}")
    print(f"  plain MAE step  : {med['plain'] * 1e3:8.1f} ms")
    print(f"  guided + L_cons : {med['guided'] * 1e3:8.1f} ms  ratio {ratio:.2f}x")
    passes = "fwd+bwd I'" if soft_x is not None else "fwd I, fwd+bwd I'"
    print(f"  S in L_cons ({passes}): {med['S'] * 1e3:6.1f} ms = {med['S'] / med['guided']:.0%} of the guided step")
    print(f"  S as trained (not the fast copy): {med['S as trained'] * 1e3:6.1f} ms; fast copy/as trained "
          f"{med['S'] / med['S as trained']:.2f}x")
    what = "σ(S(I)) + guidance map + masks" if soft_x is not None else "guided masks"
    print(f"  {what}: {med['masking'] * 1e3:8.1f} ms = {med['masking'] / med['guided']:.0%} of the guided step")
    print(f"  min of {repeats}: plain {stats['plain'].min * 1e3:.1f} ms, guided {stats['guided'].min * 1e3:.1f} ms, "
          f"ratio {low:.2f}x")
    print(f"  ratio line {name}: guided/plain = {ratio:.2f}x, min-of-N {low:.2f}x "
          f"({machine.verdict(max(ratio, low), GOAL)} <= {GOAL}x)")
    return ratio, low, med["S"] / med["guided"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=15, help="repeats of the CPU-preset case (its steps are short)")
    ap.add_argument("--repeats-base", type=int, default=2, help="repeats of the ViT-B/16 case (keeps the run < 2 min)")
    ap.add_argument("--batch-base", type=int, default=4)
    ap.add_argument("--preset-channels", type=json.loads, action="append", metavar="JSON",
                    help="S channels for the CPU-preset case instead of the bundle's (repeatable, e.g. "
                         "'[4, 8, 16, 32]'); each is run as its own case, and the ViT-B/16 case is skipped")
    add_threads_option(ap)
    args = ap.parse_args()
    apply_threads(args)
    machine = Machine()
    results = []
    cases = [("cpu-preset", [*CONFIGS, "preset_cpu.json"], None, args.repeats, {}),
             ("vit-b16@224", CONFIGS, args.batch_base, args.repeats_base, {})]
    if args.preset_channels:
        cases = [(f"cpu-preset S{ch}", cases[0][1], None, args.repeats, {"segmentor_channels": ch})
                 for ch in args.preset_channels]
    for name, files, batch_override, repeats, overrides in cases:
        sizes, batch, seg, parser = bundle_parts(files, **overrides)
        print(f"  (S = {type(seg).__name__} channels {parser['segmentor_channels']} for {name})")
        ratio, low, share = run_case(name, sizes, batch_override or batch, seg, repeats, parser["mask_ratio"],
                                     parser["guidance"] if parser["guided"] else "mask", machine)
        results.append((name, ratio, low, share))
    machine.finish()
    print(f"loadavg at end={os.getloadavg()[0]:.2f}")
    print("SUMMARY guidance_cost: " + "; ".join(
        f"{n}: {r:.2f}x, min-of-N {lo:.2f}x ({machine.verdict(max(r, lo), GOAL)}, goal <= {GOAL}x), S share {s:.0%}"
        for n, r, lo, s in results))


if __name__ == "__main__":
    main()

"""How small the frozen segmentor S of the CPU preset can be: each S size is trained as the bundle trains it
(`segmentor#stage`, `preset_cpu.json`, on the embedded sample's pseudo-masks), then scored at 128² on the 40 labelled
DCA-like angiograms (``xca_dca80_train``; S never sees a label): Dice of σ(S(I)) > 0.5 against the label and against
the image's own pseudo-mask m, and mean |σ(S(I)) - σ(S_ref(I))| against the preset's S of the same seed. The
pseudo-mask's own Dice against the label is printed as the reference S learns from.

    python experiments/segmentor_size.py [--channels '[4, 8, 16]' ...] [--seeds 0 1] [--data-root ../shared/data]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from monai.bundle import ConfigParser
from pseudo_mask_quality import labelled

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundles" / "vasomim_pretrain"
CONFIGS = [str(BUNDLE / "configs" / f) for f in ("train.json", "data.json", "segmentor.json", "preset_cpu.json")]
SIZE = 128


def labelled_128(data: Path):
    """[(image (1, 1, 128, 128) float32, pseudo-mask (128, 128) bool, label (128, 128) bool)] of xca_dca80_train,
    the pseudo-mask with the preset's parameters."""
    parser = ConfigParser()
    parser.read_config(CONFIGS)
    return [(x[None], m, y) for x, m, y in labelled(data, SIZE, parser["vesselness_sigmas"],
                                                     parser["pseudo_mask_fov_threshold"],
                                                     parser["pseudo_mask_percentile"])]


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float((a & b).sum()) / max(float(a.sum() + b.sum()), 1.0)


def train_s(channels, seed: int, scratch: Path) -> torch.nn.Module:
    """S of `channels`, trained by the bundle's segmentor stage (preset) with `seed`, frozen, on the CPU."""
    parser = ConfigParser()
    parser.read_config(CONFIGS)
    parser.update({"segmentor_channels": channels, "seed": seed, "progress_bar": False,
                   "output_dir": str(scratch / f"run_{'_'.join(map(str, channels))}_{seed}"),
                   "cache_dir": str(scratch / "cache")})
    sys.path.insert(0, str(BUNDLE))
    try:
        torch.manual_seed(seed)
        return parser.get_parsed_content("segmentor#stage").get().cpu()
    finally:
        sys.path.remove(str(BUNDLE))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--channels", type=json.loads, action="append", metavar="JSON")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    args = ap.parse_args()
    reference = list(ConfigParser.load_config_files(CONFIGS)["segmentor_channels"])
    sizes = [reference] + [c for c in (args.channels or [[4, 8, 16], [8, 16, 32]]) if c != reference]
    images = labelled_128(Path(args.data_root))
    m_vs_label = statistics.mean(dice(m, y) for _, m, y in images)
    print(f"pseudo-mask m vs label: Dice {m_vs_label:.3f} (the target S is trained on), {len(images)} images")
    rows = {tuple(c): [] for c in sizes}
    with tempfile.TemporaryDirectory() as scratch:
        for seed in args.seeds:
            probs = {}
            for channels in sizes:
                s = train_s(channels, seed, Path(scratch))
                with torch.no_grad():
                    probs[tuple(channels)] = [torch.sigmoid(s(x))[0, 0].numpy() for x, _, _ in images]
            for channels in sizes:
                p = probs[tuple(channels)]
                rows[tuple(channels)].append((
                    statistics.mean(dice(q > 0.5, y) for q, (_, _, y) in zip(p, images)),
                    statistics.mean(dice(q > 0.5, m) for q, (_, m, _) in zip(p, images)),
                    statistics.mean(float(np.abs(q - r).mean()) for q, r in zip(p, probs[tuple(reference)]))))
    for channels, values in rows.items():
        v = np.array(values)
        print(f"S {list(channels)}: Dice vs label {v[:, 0].mean():.3f} ± {v[:, 0].std():.3f}, vs pseudo-mask "
              f"{v[:, 1].mean():.3f} ± {v[:, 1].std():.3f}, mean |σ - σ_ref| {v[:, 2].mean():.4f} "
              f"({len(values)} seeds; ratio of Dice vs label to the preset's S: "
              f"{v[:, 0].mean() / np.array(rows[tuple(reference)])[:, 0].mean():.3f})")


if __name__ == "__main__":
    main()

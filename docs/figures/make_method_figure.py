"""The method on one real frame: input -> Frangi -> pseudo-mask -> guided mask -> reconstruction -> segmentation.

Every panel comes from the bundles' own configs: the pretraining bundle's deterministic transforms (loader, resize,
Frangi, pseudo-mask) and guided mask, its MAE (`network_def`) loaded from a pretraining run's `models/model.pt`, and
the segmentation bundle's preprocessing and `network_def` loaded from a fine-tuning run's `model.pt`. With no runs
given, both bundles are first run with their CPU presets on the embedded sample data (a few CPU-minutes; fine-tuning
for 40 epochs at lr 5e-4 and batch 4, the reproduction study's values, which the preset now has too):

    python docs/figures/make_method_figure.py                       # runs both bundles into --work, then draws
    python docs/figures/make_method_figure.py --pretrain_run DIR --seg_model FILE

Writes docs/figures/method.png (and prints the frame, the models and the segmentation's DSC against its label).
Case 7 is drawn as before the field-of-view step, when it was one of the few sample cases whose pseudo-mask was a
vessel (on 18 of the 33 the strongest Frangi component was the rim of the circular field of view); with the step,
74% of its pseudo-mask's pixels at the preset's 128² are labelled vessel (0.54-0.90 over the 33 cases). Case 7 is in
the fine-tuning split (the validation cases are 1, 6, 8, 11, 24, 26 and 27).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from monai.bundle import ConfigParser  # noqa: E402
from monai.transforms import Compose, SelectItemsd  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
PRETRAIN, SEG = REPO / "bundles" / "vasomim_pretrain", REPO / "bundles" / "vasomim_seg"
PRETRAIN_CONFIGS = [PRETRAIN / "configs" / f for f in ("train.json", "data.json", "segmentor.json", "preset_cpu.json")]
SEG_CONFIGS = [SEG / "configs" / "train.json", SEG / "configs" / "preset_cpu.json"]
DCA = REPO / "sample_data" / "dca"


def run_bundles(work: Path, seg_epochs: int) -> tuple[Path, Path]:
    """Runs the CPU presets of both bundles on the embedded sample data; returns (pretraining run, seg model.pt)."""
    pretrain_run, seg_models = work / "pretrain", work / "seg" / "models"
    if not (pretrain_run / "models" / "model.pt").exists():
        subprocess.run([sys.executable, "-m", "monai.bundle", "run", "training",
                        "--meta_file", str(PRETRAIN / "configs" / "metadata.json"),
                        "--config_file", str([str(c) for c in PRETRAIN_CONFIGS]),
                        "--output_dir", str(pretrain_run)], check=True)
    if not (seg_models / "model.pt").exists():
        subprocess.run([sys.executable, "-m", "monai.bundle", "run", "training",
                        "--meta_file", str(SEG / "configs" / "metadata.json"),
                        "--config_file", str([str(c) for c in SEG_CONFIGS]),
                        "--pretrained_ckpt", str(pretrain_run / "models" / "model.pt"),
                        "--ckpt_dir", str(seg_models), "--output_dir", str(work / "seg" / "eval"),
                        "--max_epochs", str(seg_epochs), "--learning_rate", "5e-4", "--batch_size", "4"], check=True)
    return pretrain_run, seg_models / "model.pt"


def bundle_parser(root: Path, configs: list[Path]) -> ConfigParser:
    """The bundle's parsed configs, with its `scripts` package importable (each bundle has its own)."""
    for name in [m for m in sys.modules if m == "scripts" or m.startswith("scripts.")]:
        del sys.modules[name]
    sys.path.insert(0, str(root))
    parser = ConfigParser()
    parser.read_config([str(c) for c in configs])
    parser["bundle_root"] = str(root)
    return parser


def pretraining_panels(image_path: Path, pretrain_run: Path, beta: float, seed: int) -> dict:
    """Input, Frangi, pseudo-mask and the frozen segmentor's σ(S(I)) (W, H) at the working size; guided mask (the
    bundle's guidance: 0.5·m + 0.5·σ(S(I)) for "mixed") and MAE reconstruction at img_size."""
    parser = bundle_parser(PRETRAIN, PRETRAIN_CONFIGS)
    parser["output_dir"] = str(pretrain_run)
    keep_all = [t for t in parser.get_parsed_content("deterministic_transforms") if not isinstance(t, SelectItemsd)]
    data = Compose(keep_all)({"image": str(image_path), "frame": None})  # the vesselness too, which is not cached
    patch = parser.get_parsed_content("patch_size")
    from scripts.losses import reconstruct
    from scripts.masking import StepMasking

    segmentor = parser.get_parsed_content("segmentor#network_def")
    segmentor.load_state_dict(torch.load(pretrain_run / "models" / "segmentor.pt", map_location="cpu"))
    guidance = "mixed" if parser.get_parsed_content("train#soft_guidance") else "mask"
    masking = StepMasking(patch, parser["mask_ratio"], beta=beta, guidance=guidance, segmentor=segmentor, seed=seed)
    mask, ids_keep, ids_restore, _ = masking(data["image"][None], data["vessel_mask"][None])
    mask, ids_keep, ids_restore = mask[0], ids_keep[0], ids_restore[0]
    with torch.no_grad():
        soft = torch.sigmoid(segmentor.eval()(data["image"][None]))[0]

    mae = parser.get_parsed_content("network_def")
    mae.load_state_dict(torch.load(pretrain_run / "models" / "model.pt", map_location="cpu"))
    mae.eval()
    image = data["image"][None]
    with torch.no_grad():
        pred, mask = mae(image, mask=mask[None], ids_keep=ids_keep[None], ids_restore=ids_restore[None])
    recon = reconstruct(image, pred, patch, parser.get_parsed_content("norm_pix_loss"))[0, 0]
    grid = image.shape[-2] // patch, image.shape[-1] // patch
    pixel_mask = mask.reshape(*grid).repeat_interleave(patch, 0).repeat_interleave(patch, 1)
    return {
        "input": data["image"][0], "frangi": data["vesselness"][0], "pseudo-mask": data["vessel_mask"][0],
        "segmentor": soft[0], "guidance": guidance,
        "masked": data["image"][0] * (1 - pixel_mask),
        "pasted": data["image"][0] * (1 - pixel_mask) + recon.clamp(0, 1) * pixel_mask,
        "vessel_share": float((data["vessel_mask"][0] * pixel_mask).sum() / data["vessel_mask"][0].sum()),
    }


def segmentation_panel(image_path: Path, label_path: Path, seg_model: Path) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(image, predicted mask, DSC against the label), (W, H) at the segmentation bundle's img_size."""
    parser = bundle_parser(SEG, SEG_CONFIGS)
    data = Compose(parser.get_parsed_content("train#deterministic_transforms"))(
        {"image": str(image_path), "label": str(label_path), "frame": None})
    net = parser.get_parsed_content("network_def")
    state = torch.load(seg_model, map_location="cpu")
    net.load_state_dict(state.get("model", state))
    net.eval()
    with torch.no_grad():
        pred = (torch.sigmoid(net(data["image"][None]))[0, 0] > 0.5).float()
    label = data["label"][0] > 0.5
    dsc = float(2 * (pred.bool() & label).sum() / (pred.sum() + label.sum()))
    return data["image"][0], pred, dsc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrain_run", type=Path, help="output_dir of a pretraining run (models/model.pt)")
    parser.add_argument("--seg_model", type=Path, help="model.pt of a fine-tuning run")
    parser.add_argument("--work", type=Path, default=REPO / "docs" / "figures" / "runs", help="where to run bundles")
    parser.add_argument("--seg_epochs", type=int, default=40)
    parser.add_argument("--case", default="7", help="DCA sample case (images/CASE.dcm, labels/CASE.png)")
    parser.add_argument("--beta", type=float, default=0.5, help="guidance strength of the drawn mask (β_E)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "figures" / "method.png")
    args = parser.parse_args()
    if args.pretrain_run is None or args.seg_model is None:
        args.pretrain_run, args.seg_model = run_bundles(args.work, args.seg_epochs)
    image_path, label_path = DCA / "images" / f"{args.case}.dcm", DCA / "labels" / f"{args.case}.png"
    p = pretraining_panels(image_path, args.pretrain_run, args.beta, args.seed)
    seg_image, seg, dsc = segmentation_panel(image_path, label_path, args.seg_model)

    fig, axes = plt.subplots(1, 7, figsize=(15.4, 2.6), dpi=100)
    panels = [
        ("input (MONOCHROME2, [0, 1])", p["input"], "gray", None),
        ("Frangi vesselness", p["frangi"], "magma", None),
        ("pseudo-mask m (field of view)", p["pseudo-mask"], "gray", None),
        ("segmentor σ(S(I))", p["segmentor"], "magma", None),
        (f"guided mask ({p['guidance']}, β = {args.beta:g})", p["masked"], "gray", None),
        ("reconstruction (masked patches)", p["pasted"], "gray", None),
        (f"segmentation (DSC {dsc:.2f})", seg_image, "gray", seg),
    ]
    for ax, (title, img, cmap, overlay) in zip(axes, panels):
        ax.imshow(np.asarray(img).T, cmap=cmap, interpolation="nearest")
        if overlay is not None:
            ax.imshow(np.ma.masked_equal(np.asarray(overlay).T, 0), cmap="autumn", alpha=0.6, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    fig.tight_layout(pad=0.3)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB) from {image_path.relative_to(REPO)}; "
          f"masked patches hold {p['vessel_share']:.0%} of the pseudo-mask; segmentation DSC {dsc:.3f} "
          f"against {label_path.relative_to(REPO)}; MAE {args.pretrain_run}, segmenter {args.seg_model}")


if __name__ == "__main__":
    main()

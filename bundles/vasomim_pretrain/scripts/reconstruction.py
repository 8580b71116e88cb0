"""Writes MAE reconstructions of angiograms as PNG panels (inference.json)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from ignite.engine import Engine, Events
from PIL import Image

from transforms.flags import as_flag


class ReconstructionWriter:
    """At each iteration of an evaluator whose network is a ``scripts.mae.MAEReconstructor`` given the batch's
    ``mask``, writes recon_{i:05d}.png per image: [input | masked input | reconstruction I' | I' with the visible
    patches pasted back], rows = y; and index.csv (i, source image, frame). Refuses to replace an existing file
    unless overwrite=True.

    Reads ``output["image"]`` (B, 1, D1, D2), ``output["pred"]`` = I' (B, 1, D1, D2) and ``batch[mask_key]`` (B, L).

    Args:
        output_dir: folder for the PNGs.
        patch_size: P of the MAE.
        datalist: the evaluator's data list, in loader order (for index.csv).
    """

    def __init__(self, output_dir, patch_size: int, datalist=(), overwrite: bool = False, mask_key: str = "mask"):
        self.dir, self.patch, self.datalist = Path(output_dir), int(patch_size), list(datalist)
        self.overwrite, self.mask_key = as_flag(overwrite, "overwrite"), mask_key
        self.count = 0

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._start)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def _start(self, engine: Engine) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.count = 0
        if not self.overwrite and any(self.dir.glob("recon_*.png")):
            raise FileExistsError(f"{self.dir} already holds reconstructions: pass --overwrite true or another folder")
        with (self.dir / "index.csv").open("w", newline="") as f:
            csv.writer(f).writerow(["index", "image", "frame"])

    def __call__(self, engine: Engine) -> None:
        out = engine.state.output
        imgs = torch.as_tensor(out["image"]).float().cpu()
        recon = torch.as_tensor(out["pred"]).detach().float().cpu()
        mask = torch.as_tensor(engine.state.batch[self.mask_key]).float().cpu()
        grid = (imgs.shape[-2] // self.patch, imgs.shape[-1] // self.patch)
        pixel_mask = mask.reshape(-1, 1, *grid).repeat_interleave(self.patch, 2).repeat_interleave(self.patch, 3)
        pasted = imgs * (1 - pixel_mask) + recon * pixel_mask
        rows = []
        for b in range(imgs.shape[0]):
            panel = torch.cat([imgs[b], imgs[b] * (1 - pixel_mask[b]), recon[b], pasted[b]], dim=-2)
            arr = (panel[0].clamp(0, 1).T.numpy() * 255).round().astype(np.uint8)
            Image.fromarray(arr).save(self.dir / f"recon_{self.count:05d}.png")
            entry = self.datalist[self.count] if self.count < len(self.datalist) else {}
            rows.append([self.count, entry.get("image", ""), entry.get("frame", "")])
            self.count += 1
        with (self.dir / "index.csv").open("a", newline="") as f:
            csv.writer(f).writerows(rows)

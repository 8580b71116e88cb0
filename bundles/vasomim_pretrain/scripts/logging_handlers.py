"""Per-epoch metrics log (JSON lines) and TensorBoard images of the pretraining run."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import torch
from ignite.engine import Engine, Events

SCALARS = ("loss", "loss_rec", "loss_cons", "beta", "lr")


def scalars(output: dict) -> dict:
    """The scalar entries of the iteration output: L, L_rec, L_cons, beta, lr as floats."""
    return {k: float(output[k]) for k in SCALARS if output.get(k) is not None}


def log_iteration(engine: Engine, logger_name: str = "monai.handlers.StatsHandler") -> None:
    """StatsHandler's iteration line for :func:`scalars`, with the lr as %.2e (the others %.4f, which shows a
    warmup lr of 4e-5 as 0.0000): ``Epoch: e/E, Iter: i/I -- beta: 0.0500 loss: 2.3953 ... lr: 4.02e-05``."""
    values = scalars(engine.state.output)
    if not values:
        return
    length = engine.state.epoch_length
    it = engine.state.iteration if length is None else (engine.state.iteration - 1) % length + 1
    text = " ".join(f"{k}: {v:.2e}" if k == "lr" else f"{k}: {v:.4f}" for k, v in sorted(values.items()))
    logging.getLogger(logger_name).info(
        f"Epoch: {engine.state.epoch}/{engine.state.max_epochs}, Iter: {it}/{length} -- {text}")


class EpochMetricsLog:
    """Appends one JSON line per epoch to `path`: epoch, iterations, mean of loss / loss_rec / loss_cons over the
    epoch, beta and lr at the epoch's last iteration. Rank 0 only."""

    def __init__(self, path, rank: int = 0):
        self.path, self.rank = Path(path), int(rank)
        self._sums: dict = {}
        self._n = 0

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._accumulate)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._write)

    def _reset(self, engine: Engine) -> None:
        self._sums, self._n, self._last = {}, 0, {}

    def _accumulate(self, engine: Engine) -> None:
        values = scalars(engine.state.output)
        for k in ("loss", "loss_rec", "loss_cons"):
            if k in values:
                self._sums[k] = self._sums.get(k, 0.0) + values[k]
        self._n += 1
        self._last = values

    def _write(self, engine: Engine) -> None:
        if self.rank != 0 or self._n == 0:
            return
        record = {"epoch": engine.state.epoch, "iterations": self._n}
        record.update({k: v / self._n for k, v in self._sums.items()})
        record.update({k: self._last[k] for k in ("beta", "lr") if k in self._last})
        if not all(math.isfinite(v) for v in record.values() if isinstance(v, float)):
            record["finite"] = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")


class ReconstructionImages:
    """Every `interval` epochs, writes the first image of the last batch to TensorBoard: input, masked input,
    reconstruction I', S(I) and S(I') (sigmoid), each (1, D1, D2) in [0, 1], shown transposed (rows = y) as a
    radiologist views it."""

    def __init__(self, summary_writer, patch_size: int, interval: int = 1, tag: str = "pretrain"):
        self.writer, self.patch, self.interval, self.tag = summary_writer, int(patch_size), int(interval), tag

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED(every=self.interval), self)

    def __call__(self, engine: Engine) -> None:
        out = engine.state.output
        img = out["image"][0].float().cpu()
        p = self.patch
        grid = (img.shape[-2] // p, img.shape[-1] // p)
        mask = out["mask"][0].float().cpu().reshape(grid).repeat_interleave(p, 0).repeat_interleave(p, 1)
        panels = {"input": img, "masked_input": img * (1 - mask), "reconstruction": out["recon"][0].float().cpu()}
        for key in ("seg_img", "seg_recon"):
            if out.get(key) is not None:
                panels[key] = torch.sigmoid(out[key][0].float().cpu())
        step = engine.state.epoch
        for name, im in panels.items():
            self.writer.add_image(f"{self.tag}/{name}", im.clamp(0, 1).transpose(-1, -2), step, dataformats="CHW")
        self.writer.flush()

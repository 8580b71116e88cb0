"""The vessel segmentor S of the consistency loss: trained on the pseudo-masks when its checkpoint is missing, then
frozen."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from ignite.engine import Events

from .checkpoints import atomic_save
from .losses import freeze

logger = logging.getLogger(__name__)


class SegmentorStage:
    """First stage of `training`: provides the frozen segmentor S.

    get() loads `checkpoint` if the file exists; otherwise it runs `trainer` (a SupervisedTrainer fitting S to the
    pseudo-masks with 0.5 BCE + 0.5 Dice), writes the state dict atomically to `checkpoint` (rank 0), and then
    freezes S (eval mode, no parameter gradients; gradients still flow through S to its input).

    Args:
        network: S, (B, 1, D1, D2) -> logits (B, 1, D1, D2).
        trainer: the engine that trains S; run only when the checkpoint is missing.
        checkpoint: path of S's state dict.
        rank: DDP rank (only rank 0 writes).
    """

    def __init__(self, network: torch.nn.Module, trainer, checkpoint, rank: int = 0):
        self.network, self.trainer, self.checkpoint, self.rank = network, trainer, Path(checkpoint), int(rank)
        self._ready = False
        self._reset()

    def get(self) -> torch.nn.Module:
        """The frozen S (trained or loaded on the first call)."""
        if not self._ready:
            if self.checkpoint.is_file():
                logger.info("segmentor: loading %s", self.checkpoint)
                state = torch.load(self.checkpoint, map_location="cpu", weights_only=True)
                self.network.load_state_dict(state)
            else:
                logger.info("segmentor: %s missing, training S on the pseudo-masks", self.checkpoint)
                self.trainer.add_event_handler(Events.EPOCH_STARTED, self._reset)
                self.trainer.add_event_handler(Events.ITERATION_COMPLETED, self._count)
                self.trainer.run()
                self._log_fit()
                if self.rank == 0:
                    atomic_save(self.network.state_dict(), self.checkpoint)
            freeze(self.network)
            self._ready = True
        return self.network

    def _reset(self, engine=None) -> None:
        self._fit = {"loss": 0.0, "batches": 0, "marked": 0.0, "target": 0.0, "pixels": 0.0}

    def _count(self, engine) -> None:
        out = engine.state.output
        self._fit["loss"] += float(out["loss"])
        self._fit["batches"] += 1
        self._fit["marked"] += float((out["pred"].detach() > 0).sum())
        self._fit["target"] += float((out["label"].detach() > 0.5).sum())
        self._fit["pixels"] += float(out["label"].numel())

    def _log_fit(self) -> None:
        """One line on how well S fits the pseudo-masks over its last epoch: its mean loss, and the share of pixels
        it marks (sigmoid > 0.5) against the share the pseudo-masks mark (a flat S marks far more, or none)."""
        fit, pixels = self._fit, max(self._fit["pixels"], 1.0)
        logger.info("segmentor: trained %d epochs; last epoch: mean loss %.4f, S marks %.1f%% of pixels as vessel, "
                    "the pseudo-masks %.1f%%", self.trainer.state.epoch, fit["loss"] / max(fit["batches"], 1),
                    100 * fit["marked"] / pixels, 100 * fit["target"] / pixels)

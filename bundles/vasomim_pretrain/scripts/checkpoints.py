"""Resumable, atomic checkpoints: save every epoch, resume from the latest, export the MAE state dict at the end."""

from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path

import torch
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint, DiskSaver
from monai.handlers import CheckpointLoader

from transforms.flags import as_flag

CHECKPOINT_PATTERN = "checkpoint_epoch={global_step}.pt"
_EPOCH = re.compile(r"^checkpoint_epoch=(\d+)\.pt$")
logger = logging.getLogger(__name__)


def latest_checkpoint(save_dir) -> Path | None:
    """The checkpoint_epoch=N.pt with the largest N in save_dir, or None (temporary files are ignored)."""
    folder = Path(save_dir)
    found = [(int(m.group(1)), p) for p in folder.glob("checkpoint_epoch=*.pt") if (m := _EPOCH.match(p.name))]
    return max(found)[1] if found else None


def unwrap(network: torch.nn.Module) -> torch.nn.Module:
    """The module inside DistributedDataParallel / DataParallel, else the network itself."""
    return getattr(network, "module", network)


def atomic_save(obj, path) -> Path:
    """torch.save to a temporary file in the same folder, then os.replace: a killed run never leaves a torn file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


class AtomicCheckpointSaver:
    """Saves save_dict (e.g. model, optimizer, lr_scheduler) plus the engine it is attached to (under trainer_key)
    every `interval` epochs to save_dir/checkpoint_epoch=N.pt through Ignite's DiskSaver(atomic=True) (temporary
    file + os.replace), keeping the last n_saved. MONAI's CheckpointSaver uses DiskSaver(atomic=False), so a kill
    during a write could leave a truncated checkpoint; this one cannot. Rank 0 writes under DDP.
    """

    def __init__(self, save_dir, save_dict: dict, interval: int = 1, n_saved: int | None = 2,
                 trainer_key: str = "trainer"):
        self.save_dir, self.save_dict, self.interval, self.n_saved = save_dir, save_dict, int(interval), n_saved
        self.trainer_key = trainer_key

    def attach(self, engine: Engine) -> None:
        to_save = {k: unwrap(v) if isinstance(v, torch.nn.Module) else v for k, v in self.save_dict.items()}
        to_save[self.trainer_key] = engine
        checkpoint = Checkpoint(
            to_save,
            DiskSaver(str(self.save_dir), require_empty=False, atomic=True, create_dir=True),
            filename_pattern=CHECKPOINT_PATTERN,
            n_saved=self.n_saved,
            global_step_transform=lambda e, _: e.state.epoch,
        )
        engine.add_event_handler(Events.EPOCH_COMPLETED(every=self.interval), checkpoint)


class ResumeFromLatest:
    """When enabled, loads the latest checkpoint_epoch=N.pt of save_dir with MONAI's CheckpointLoader at STARTED:
    load_dict (model, optimizer, LR schedule) plus the engine's own state under trainer_key (epoch, iteration), so
    training continues at epoch N + 1 with the same beta (recomputed from the epoch) and LR. Without a checkpoint
    it logs a warning and starts from scratch.
    """

    def __init__(self, save_dir, load_dict: dict, enabled: bool = False, map_location=None,
                 trainer_key: str = "trainer"):
        self.save_dir, self.enabled, self.trainer_key = save_dir, as_flag(enabled, "resume"), trainer_key
        self.load_dict = {k: unwrap(v) if isinstance(v, torch.nn.Module) else v for k, v in load_dict.items()}
        self.map_location = map_location
        self.loaded_from: Path | None = None

    def attach(self, engine: Engine) -> None:
        if not self.enabled:
            return
        path = latest_checkpoint(self.save_dir)
        if path is None:
            logger.warning("resume: no checkpoint in %s, starting from epoch 1", self.save_dir)
            return
        self.loaded_from = path
        load_dict = {**self.load_dict, self.trainer_key: engine}
        CheckpointLoader(load_path=str(path), load_dict=load_dict, map_location=self.map_location).attach(engine)


class SaveStateDict:
    """Writes the raw state dict of `network` (DDP wrapper removed) to `path` atomically when training completes
    (rank 0 only): models/model.pt, the file the segmentation bundle and inference.json load."""

    def __init__(self, network: torch.nn.Module, path, rank: int = 0):
        self.network, self.path, self.rank = network, path, int(rank)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine | None = None) -> None:
        if self.rank == 0:
            atomic_save(unwrap(self.network).state_dict(), self.path)

"""Output folder policy shared by the bundles: a run never silently replaces an earlier run's outputs, and never
touches its input files.

Two entry points, both usable from a bundle config as plain functions:

* :func:`prepare_output_dir`: a run that owns its whole folder (pretraining): a non-empty folder is refused unless the
  run resumes it or overwrites it.
* :func:`check_outputs`: a run that writes known files into a folder it may share with other runs (fine-tuning,
  evaluation, inference): only existing files of this run's kind are refused, unless overwritten or continued.
"""

from __future__ import annotations

import fnmatch
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

from monai.handlers import CheckpointLoader

from .flags import as_flag

logger = logging.getLogger("transforms.run_folder")


def prepare_output_dir(output_dir, artefacts: Sequence[str], overwrite=False, resume=False, inputs=(),
                       rank: int = 0) -> str:
    """Checks and creates the folder of a run that owns it; returns it as an absolute path string.

    Args:
        output_dir: the run folder.
        artefacts: names (relative to output_dir) of the files and folders the run writes.
        overwrite: delete ``artefacts`` first (other files are left alone) so that a non-empty folder is accepted.
        resume: accept a non-empty folder as is (the run continues from its checkpoints).
        inputs: paths the run reads (data folders, the bundle); none may lie inside ``artefacts`` when overwriting.
        rank: the DDP rank; only rank 0 checks and deletes.

    Raises:
        FileExistsError: output_dir is a file, or a non-empty folder without resume or overwrite.
        ValueError: an input lies inside the artefacts that overwrite would delete.
    """
    out = Path(output_dir).resolve()
    if rank != 0:
        return str(out)
    overwrite, resume = as_flag(overwrite, "overwrite"), as_flag(resume, "resume")
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"output_dir {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not resume:
        if not overwrite:
            raise FileExistsError(
                f"output_dir {out} is not empty: pass --resume true to continue that run, --overwrite true to replace "
                "it, or choose another --output_dir"
            )
        for p in (Path(i).resolve() for i in inputs if i):
            if any(p.is_relative_to(out / a) for a in artefacts):
                raise ValueError(f"refusing to overwrite {out}: input {p} lies inside its run artefacts")
        for name in artefacts:
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    out.mkdir(parents=True, exist_ok=True)
    return str(out)


def check_outputs(output_dir, artefacts: Sequence[str], overwrite=False, inputs=(), handlers=None,
                  folder_id: str = "output_dir") -> str:
    """Refuses to start a run that would replace files an earlier run wrote; returns output_dir as an absolute path
    string. Nothing is created or deleted.

    Args:
        output_dir: the folder the run writes into (it may hold other files, e.g. TensorBoard events).
        artefacts: names or glob patterns (relative to output_dir, e.g. "model.pt", "*_overlay.png") of the files
            the run writes.
        overwrite: let the run replace existing artefacts (they are replaced as the run writes them, not deleted
            beforehand).
        inputs: files the run reads; None entries are skipped. An input in output_dir whose name matches an
            artefact is never replaced, even with overwrite.
        handlers: the run's Ignite handlers, or None. An existing artefact that a MONAI ``CheckpointLoader`` among
            them loads is a checkpoint the run continues and updates in place (MONAI Label's BundleTrainTask adds
            one for ``models/model.pt`` when a train request has pretrained=True); it is not refused.
        folder_id: the config id of output_dir, named in the error message.

    Raises:
        FileExistsError: existing artefacts that are neither continued nor allowed by overwrite.
        ValueError: an input would be replaced.
    """
    out = Path(output_dir).resolve()
    overwrite = as_flag(overwrite, "overwrite")
    for p in (Path(i).resolve() for i in inputs if i):
        if p.parent == out and any(fnmatch.fnmatch(p.name, a) for a in artefacts):
            raise ValueError(f"input {p} has the name of an output of this run in {out}: it is never replaced; "
                             f"choose another --{folder_id}")
    existing = sorted({p.resolve() for a in artefacts for p in out.glob(a) if p.is_file()}) if out.is_dir() else []
    loaded = {Path(h.load_path).resolve() for h in handlers or () if isinstance(h, CheckpointLoader)}
    continued = [p for p in existing if p in loaded]
    replaced = [p for p in existing if p not in loaded]
    for p in continued:
        logger.info(f"continuing from {p}: it is loaded at the start and updated in place")
    if replaced and not overwrite:
        names = ", ".join(p.name for p in replaced[:5])
        names += f" and {len(replaced) - 5} more" if len(replaced) > 5 else ""
        hint = (" To continue from a checkpoint there, load it with a CheckpointLoader in the run's handlers (MONAI "
                "Label's BundleTrainTask does so with pretrained=True)." if handlers is not None else "")
        raise FileExistsError(f"{out} already holds {len(replaced)} output file(s) of an earlier run that this run "
                              f"would replace: {names}. Pass --overwrite true to replace them, or choose another "
                              f"--{folder_id}.{hint}")
    if replaced:
        logger.warning(f"overwrite: this run replaces {len(replaced)} earlier output file(s) in {out}")
    return str(out)

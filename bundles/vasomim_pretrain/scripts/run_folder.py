"""Output folder policy: a run never silently overwrites an earlier run, and never touches its input data."""

from __future__ import annotations

import shutil
from pathlib import Path

RUN_ARTEFACTS = ("checkpoints", "models", "tb", "metrics.jsonl", "datalist_manifest.json")


def prepare_output_dir(output_dir, overwrite: bool = False, resume: bool = False, inputs=(), rank: int = 0) -> str:
    """Checks and creates the run folder; returns it as a string.

    A non-empty output_dir is refused (FileExistsError) unless resume=True (continue it) or overwrite=True (the
    run's own artefacts RUN_ARTEFACTS are deleted first; other files are left alone). Input paths (data folders,
    the bundle) may not lie inside output_dir when overwriting. Only rank 0 checks and deletes under DDP.
    """
    out = Path(output_dir).resolve()
    if rank != 0:
        return str(out)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"output_dir {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not resume:
        if not overwrite:
            raise FileExistsError(
                f"output_dir {out} is not empty: pass --resume true to continue that run, --overwrite true to replace "
                "it, or choose another --output_dir"
            )
        for p in (Path(i).resolve() for i in inputs if i):
            if any(p.is_relative_to(out / a) for a in RUN_ARTEFACTS):
                raise ValueError(f"refusing to overwrite {out}: input {p} lies inside its run artefacts")
        for name in RUN_ARTEFACTS:
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    out.mkdir(parents=True, exist_ok=True)
    return str(out)

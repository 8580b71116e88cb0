"""Study steps: each is one ``python -m monai.bundle run ...`` subprocess, skipped when its ``done.json`` exists, so
an interrupted study resumes where it stopped.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PRE = REPO / "bundles" / "vasomim_pretrain"
SEG = REPO / "bundles" / "vasomim_seg"
PRETRAIN_CONFIGS = ["train.json", "data.json", "segmentor.json"]


def child_cpu() -> float:
    """CPU seconds (user + system) used so far by finished child processes."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def shown(path: Path) -> str:
    """``path`` relative to the repository when it lies inside it, else as given."""
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def run_step(step_dir: Path, cmd: list[str], threads: int, log: Path) -> dict:
    """Runs ``cmd`` once: skipped if ``step_dir/done.json`` exists. Returns the step record (cpu_s, wall_s, cmd)."""
    done = step_dir / "done.json"
    if done.exists():
        return json.loads(done.read_text())
    step_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
    printable = " ".join(a if a and " " not in a and "'" not in a else json.dumps(a) for a in cmd)
    print(f"[{time.strftime('%H:%M:%S')}] {shown(step_dir)}: {printable}", flush=True)
    cpu0, t0 = child_cpu(), time.time()
    with open(step_dir / "log.txt", "w") as f:
        rc = subprocess.call(cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT)
    record = {"cmd": printable, "cpu_s": child_cpu() - cpu0, "wall_s": time.time() - t0, "rc": rc}
    with open(log, "a") as f:
        f.write(json.dumps({"step": str(shown(step_dir)), **record}) + "\n")
    if rc != 0:
        raise RuntimeError(f"step {step_dir} failed (rc {rc}); see {step_dir / 'log.txt'}")
    done.write_text(json.dumps(record, indent=1))
    return record


def rerun(step_dir: Path) -> dict:
    """``{"overwrite": True}`` when ``step_dir`` holds a failed attempt (no done.json), so the bundle may replace it."""
    return {"overwrite": True} if step_dir.exists() and not (step_dir / "done.json").exists() else {}


def bundle_cmd(bundle: Path, run_id: str, configs: list[str], overrides: dict) -> list[str]:
    """``python -m monai.bundle run <run_id>`` on ``bundle`` with a list of config files and ``--key value`` pairs."""
    cfg = "[" + ",".join(f"'{bundle / 'configs' / c}'" for c in configs) + "]"
    meta = str(bundle / "configs" / "metadata.json")
    cmd = [sys.executable, "-m", "monai.bundle", "run", run_id, "--meta_file", meta, "--config_file", cfg]
    for key, value in overrides.items():
        cmd += [f"--{key}", value if isinstance(value, str) else repr(value)]
    return cmd

"""benchmarks/device_check.sh in its CPU/tiny mode (what CI runs; on a CUDA machine it runs ViT-B/16 in bf16)."""

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_device_check_tiny_prints_the_four_summary_lines():
    proc = subprocess.run(["bash", str(REPO / "benchmarks" / "device_check.sh"), "--tiny"], cwd=REPO,
                          capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
                          check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = proc.stdout.split("---- summary (--device cpu --dtype bf16 --tiny)\n")[1].splitlines()
    assert [line.split(":")[0] for line in summary] == [
        "SUMMARY throughput", "SUMMARY frangi", "SUMMARY guidance_cost", "SUMMARY data_pipeline"]
    assert all("ratio" in line for line in summary)

"""vasomim_pretrain bundle end to end with `python -m monai.bundle run` (tiny model, a few sample angiograms)."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import PRETRAIN_TRAIN

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundles" / "vasomim_pretrain"
CONFIGS = BUNDLE / "configs"
TINY = ["--img_size", "64", "--working_size", "64", "--hidden_size", "32", "--mlp_dim", "64", "--num_layers", "2",
        "--num_heads", "2", "--decoder_hidden_size", "32", "--decoder_mlp_dim", "64", "--decoder_num_layers", "1",
        "--decoder_num_heads", "2", "--segmentor_channels", "[4,8,16]", "--segmentor_epochs", "1",
        "--warmup_epochs", "1", "--num_workers", "0", "--cache_workers", "1", "--progress_bar", "false"]


def config_list(*names):
    return str([str(CONFIGS / n) for n in (*PRETRAIN_TRAIN, "preset_cpu.json", *names)])


def bundle_cmd(run_id, data, out, *extra, configs=()):
    cmd = [sys.executable, "-m", "monai.bundle", "run"] + ([run_id] if run_id else [])
    return cmd + ["--meta_file", str(CONFIGS / "metadata.json"), "--config_file", config_list(*configs),
                  "--dataset_dir", str(data), "--output_dir", str(out), *TINY, *extra]


ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def run(cmd, cwd, check=True, timeout=240):
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=ENV)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


def metrics(out):
    records = {}
    for line in (Path(out) / "metrics.jsonl").read_text().splitlines():
        r = json.loads(line)
        records[r["epoch"]] = r
    return records


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """4 real DCA angiograms (one in a subfolder: the datalist walks folders) and a non-image file."""
    root = tmp_path_factory.mktemp("angiograms")
    (root / "sub").mkdir()
    for n in (1, 2, 3):
        shutil.copy(REPO / "sample_data" / "dca" / "images" / f"{n}.dcm", root)
    shutil.copy(REPO / "sample_data" / "dca" / "images" / "4.dcm", root / "sub")
    (root / "notes.txt").write_text("not an image")
    return root


def beta_at(epoch, max_epochs, b0=0.0, b1=0.5):
    return b0 + epoch / max_epochs * (b1 - b0)


def test_training_from_repo_root_then_resume_from_another_cwd(data, tmp_path):
    out = tmp_path / "run"
    inputs_before = {p: p.read_bytes() for p in data.rglob("*") if p.is_file()}
    run(bundle_cmd("training", data, out, "--max_epochs", "3", "--batch_size", "2", "--blr", "0.05"), cwd=REPO)
    m = metrics(out)
    assert sorted(m) == [1, 2, 3]
    assert all(torch.isfinite(torch.tensor([r["loss"], r["loss_rec"], r["loss_cons"]])).all() for r in m.values())
    assert m[3]["loss"] < m[1]["loss"], f"loss did not decrease: {[m[e]['loss'] for e in m]}"
    assert all(r["loss_cons"] > 0 for r in m.values())
    assert [m[e]["beta"] for e in (1, 2, 3)] == [pytest.approx(beta_at(e, 3)) for e in (1, 2, 3)]
    state = torch.load(out / "models" / "model.pt", weights_only=True)
    assert "blocks.2.weight" in state and "patch_embedding.patch_embeddings.weight" in state
    assert {"checkpoint_epoch=2.pt", "checkpoint_epoch=3.pt"} <= {p.name for p in (out / "checkpoints").iterdir()}
    assert (out / "models" / "segmentor.pt").is_file() and any((out / "tb").iterdir())
    assert {p: p.read_bytes() for p in data.rglob("*") if p.is_file()} == inputs_before

    refused = run(bundle_cmd("training", data, out, "--max_epochs", "3"), cwd=REPO, check=False)
    assert refused.returncode != 0 and "not empty" in (refused.stdout + refused.stderr)
    assert sorted(metrics(out)) == [1, 2, 3]

    other = tmp_path / "elsewhere"
    other.mkdir()
    proc = run(bundle_cmd(None, data, out, "--max_epochs", "5", "--batch_size", "2", "--resume", "true"), cwd=other)
    log = proc.stdout + proc.stderr
    assert "Restored all variables from" in log and "checkpoint_epoch=3.pt" in log
    assert "training S on the pseudo-masks" not in log, "the segmentor should be loaded on resume, not retrained"
    m = metrics(out)
    assert sorted(m) == [1, 2, 3, 4, 5]
    assert [m[e]["beta"] for e in (4, 5)] == [pytest.approx(beta_at(e, 5)) for e in (4, 5)]
    ckpt = torch.load(out / "checkpoints" / "checkpoint_epoch=5.pt", weights_only=False)
    assert ckpt["trainer"]["iteration"] == 5 * 2 and ckpt["trainer"]["epoch_length"] == 2
    assert ckpt["lr_scheduler"]["last_epoch"] == 5 * 2

    infer = [sys.executable, "-m", "monai.bundle", "run", "--meta_file", str(CONFIGS / "metadata.json"),
             "--config_file", str([str(CONFIGS / n) for n in ("inference.json", "preset_cpu.json")]),
             "--input_dir", str(data), "--output_dir", str(out), *TINY]
    run(infer, cwd=other)
    recon = sorted((out / "reconstructions").glob("recon_*.png"))
    assert len(recon) == 4
    assert (out / "models" / "encoder.pt").is_file()


def test_kill_9_mid_epoch_then_resume(data, tmp_path):
    """SIGKILL as soon as the first checkpoint exists (during epoch 2 or later); the resumed run continues at the
    right epoch, beta, optimizer state and LR schedule (4 images, batch 1: 4 iterations per epoch)."""
    out = tmp_path / "run"
    cmd = bundle_cmd("training", data, out, "--max_epochs", "6", "--batch_size", "1", "--segmentor_epochs", "1")
    log_path = tmp_path / "killed_run.log"
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT, env=ENV)
    first = out / "checkpoints" / "checkpoint_epoch=1.pt"
    deadline = time.time() + 180
    while not first.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert first.exists(), f"no checkpoint before the run ended or timed out: {log_path.read_text()[-3000:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = sorted(int(p.stem.split("=")[1]) for p in (out / "checkpoints").glob("checkpoint_epoch=*.pt"))
    assert not (out / "models" / "model.pt").exists() and done[-1] < 6, "the run finished before it was killed"
    last = done[-1]
    for p in (out / "checkpoints").glob("checkpoint_epoch=*.pt"):
        torch.load(p, weights_only=False)
    before = torch.load(out / "checkpoints" / f"checkpoint_epoch={last}.pt", weights_only=False)

    resumed = run(cmd + ["--resume", "true"], cwd=REPO)
    log = resumed.stdout + resumed.stderr
    assert f"checkpoint_epoch={last}.pt" in log
    iters = 4
    m = metrics(out)
    assert sorted(m) == list(range(1, 7))
    assert [m[e]["beta"] for e in range(last + 1, 7)] == [pytest.approx(beta_at(e, 6)) for e in range(last + 1, 7)]
    assert before["trainer"]["epoch_length"] == iters and before["trainer"]["iteration"] == last * iters
    final = torch.load(out / "checkpoints" / "checkpoint_epoch=6.pt", weights_only=False)
    assert final["trainer"]["iteration"] == 6 * iters
    assert final["lr_scheduler"]["last_epoch"] == 6 * iters
    steps = {int(s["step"]) for s in final["optimizer"]["state"].values()}
    assert steps == {6 * iters}, f"optimizer steps {steps}: state was not restored (expected {6 * iters})"
    assert (out / "models" / "model.pt").is_file()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_multi_gpu_config_on_two_torchrun_nodes_over_loopback(data, tmp_path):
    """Two torchrun "nodes" of one rank each on 127.0.0.1 (gloo), as a user starts them on two machines
    (docs/README: --nnodes 2 --node_rank i --rdzv_endpoint host:port), with the disk frame cache: the datalist is
    checked by rank 0 only, each frame is cached once on the machine, each rank trains on its half."""
    out, cache, port = tmp_path / "ddp", tmp_path / "cache", free_port()
    env = {**ENV, "VASOMIM_CACHE_DIR": str(cache)}
    procs = []
    for node in (0, 1):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", f"--node_rank={node}", "--nproc_per_node=1",
               f"--rdzv_endpoint=127.0.0.1:{port}", "-m", "monai.bundle", "run", "training",
               "--meta_file", str(CONFIGS / "metadata.json"), "--config_file", config_list("multi_gpu_train.json"),
               "--dataset_dir", str(data), "--output_dir", str(out), *TINY, "--max_epochs", "2", "--batch_size", "1",
               "--cache_mode", "disk", "--check_workers", "2"]
        procs.append(subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                      env=env))
    logs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs[0][-4000:] + logs[1][-4000:]
    m = metrics(out)
    assert sorted(m) == [1, 2]
    assert all(r["iterations"] == 2 for r in m.values()), "4 images, batch 1, 2 ranks: 2 iterations per rank"
    assert (out / "models" / "model.pt").is_file()
    assert not any(k.startswith("module.") for k in torch.load(out / "models" / "model.pt", weights_only=True))
    pattern = r"frame cache \S+: 4 frames, (\d+) computed by this rank"
    computed = [int(n) for log in logs for n in re.findall(pattern, log)]
    assert sorted(computed) == [2, 2], f"each of the 4 frames must be cached once, split over the ranks: {computed}"
    assert len(list(cache.glob("datalist_check-*.json"))) == 1 and len([d for d in cache.iterdir() if d.is_dir()]) == 1

"""Shared fixtures: the seg bundle path, tiny network overrides, a tiny pretraining checkpoint, small data folders."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SEG_BUNDLE = REPO / "bundles" / "vasomim_seg"
SAMPLE = REPO / "sample_data"
XA_CINE = SAMPLE / "xa_cine" / "XA_coronary_cine_96frames_jpeg_baseline.dcm"
DCA = SAMPLE / "dca"

TEST_CACHE = Path(tempfile.mkdtemp(prefix="vasomim-test-cache-"))
os.environ["VASOMIM_CACHE_DIR"] = str(TEST_CACHE)
"""The bundles' datalist-check and frame caches go here, never to the user's ~/.cache, during tests."""


@pytest.fixture(scope="session", autouse=True)
def _remove_test_cache():
    yield
    shutil.rmtree(TEST_CACHE, ignore_errors=True)


TINY_NET = {"img_size": 64, "patch_size": 8, "num_layers": 2, "hidden_size": 32, "mlp_dim": 64, "num_heads": 2,
            "qkv_bias": True, "base_channels": 8}
"""Tiny sizes of the seg bundle's default network, VesselViTAdapter (bundle top-level ids; patch 8, so 8 x 8 tokens)."""

TINY_UNETR = {"img_size": 64, "num_layers": 2, "hidden_size": 32, "mlp_dim": 64, "num_heads": 2, "feature_size": 8,
              "qkv_bias": True}
"""Tiny sizes of VesselUNETR (the ``unetr.json`` overlay; patch 16, so 4 x 4 tokens)."""

TINY_TRAIN = {**TINY_NET, "batch_size": 2, "num_workers": 0, "max_epochs": 2, "val_fraction": 0.25,
              "learning_rate": 0.001}


def tiny_mae(seed: int = 0) -> torch.nn.Module:
    """A MONAI MaskedAutoEncoderViT with TINY_NET encoder sizes (the GuidedMAE state-dict layout)."""
    from monai.networks.nets import MaskedAutoEncoderViT

    torch.manual_seed(seed)
    return MaskedAutoEncoderViT(
        in_channels=1, img_size=TINY_NET["img_size"], patch_size=16, hidden_size=TINY_NET["hidden_size"],
        mlp_dim=TINY_NET["mlp_dim"], num_layers=TINY_NET["num_layers"], num_heads=TINY_NET["num_heads"],
        decoder_hidden_size=32, decoder_mlp_dim=64, decoder_num_layers=1, decoder_num_heads=2, spatial_dims=2,
        qkv_bias=TINY_NET["qkv_bias"],
    )


@pytest.fixture(scope="session")
def tiny_pretrain_ckpt(tmp_path_factory) -> Path:
    """Path of a raw MAE state dict (random weights, distinct from any fresh init) for the tiny encoder."""
    path = tmp_path_factory.mktemp("pretrain") / "model.pt"
    mae = tiny_mae(seed=7)
    with torch.no_grad():
        for p in mae.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    torch.save(mae.state_dict(), path)
    return path


@pytest.fixture(scope="session")
def dca_dir() -> Path:
    """The embedded labelled angiograms (images/<n>.dcm, labels/<n>.png)."""
    if not (DCA / "images").is_dir() or not any((DCA / "images").iterdir()):
        pytest.fail(f"embedded sample data missing: {DCA}")
    return DCA


@pytest.fixture(scope="session")
def small_dca_dir(tmp_path_factory, dca_dir) -> Path:
    """A copy of 4 labelled pairs (3 train / 1 val with TINY_TRAIN's val_fraction)."""
    root = tmp_path_factory.mktemp("dca4")
    for sub in ("images", "labels"):
        (root / sub).mkdir()
    for n in ("1", "2", "3", "4"):
        shutil.copy(dca_dir / "images" / f"{n}.dcm", root / "images" / f"{n}.dcm")
        shutil.copy(dca_dir / "labels" / f"{n}.png", root / "labels" / f"{n}.png")
    return root


def bundle_copy(tmp_path: Path) -> Path:
    """A fresh copy of the seg bundle (configs, scripts, docs) in ``tmp_path/vasomim_seg`` with an empty models/."""
    dst = tmp_path / "vasomim_seg"
    shutil.copytree(SEG_BUNDLE, dst, ignore=shutil.ignore_patterns("__pycache__", "models", "eval"))
    (dst / "models").mkdir()
    return dst


def monai_bundle(args: list[str], cwd: Path, overrides: dict | None = None, timeout: int = 600,
                 check: bool = True, nproc: int = 0) -> subprocess.CompletedProcess:
    """Runs ``python -m monai.bundle <args> --<id> <json value> ...`` in ``cwd`` (under ``torch.distributed.run``
    with ``nproc`` processes when nproc > 0); returns the completed process."""
    launcher = ["-m", "torch.distributed.run", f"--nproc_per_node={nproc}"] if nproc else []
    cmd = [sys.executable, *launcher, "-m", "monai.bundle", *args]
    for key, value in (overrides or {}).items():
        cmd += [f"--{key}", repr(value) if not isinstance(value, str) else value]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


def local_contrast(image, mask) -> float:
    """Mean intensity of the 4-pixel ring around ``mask`` minus the mean inside it; both (D1, D2)."""
    from scipy.ndimage import binary_dilation

    ring = binary_dilation(mask, iterations=4) & ~mask
    return float(image[ring].mean() - image[mask].mean())


def seg_module(name: str):
    """Imports ``scripts.<name>`` from the seg bundle without leaving a ``scripts`` package in ``sys.modules``
    (the pretrain bundle has its own ``scripts``; MONAI Label also unloads it)."""
    import importlib

    def owned():
        return [k for k in sys.modules if k == "scripts" or k.startswith("scripts.")]

    saved = {k: sys.modules.pop(k) for k in owned()}
    sys.path.insert(0, str(SEG_BUNDLE))
    try:
        return importlib.import_module(f"scripts.{name}")
    finally:
        sys.path.remove(str(SEG_BUNDLE))
        for k in owned():
            del sys.modules[k]
        sys.modules.update(saved)


def tiny_seg_net(**overrides) -> torch.nn.Module:
    """The seg bundle's default network (VesselViTAdapter) at TINY_NET sizes, updated with ``overrides``."""
    return seg_module("adapter").VesselViTAdapter(**{**TINY_NET, **overrides})


PRETRAIN_BUNDLE = REPO / "bundles" / "vasomim_pretrain"
PRETRAIN_TINY = {"img_size": 64, "hidden_size": 32, "mlp_dim": 64, "num_layers": 2, "num_heads": 2,
                 "decoder_hidden_size": 32, "decoder_mlp_dim": 64, "decoder_num_layers": 1, "decoder_num_heads": 2}
"""Tiny MAE sizes for the pretraining bundle's inference.json (top-level ids)."""
PRETRAIN_TRAIN = ("train.json", "data.json", "segmentor.json")
"""The pretraining bundle's training configs, composed in this order (presets and multi_gpu_train.json after them)."""


def copy_bundle_alone(bundle: Path, dst_root: Path) -> Path:
    """A copy of ``bundle`` alone in ``dst_root/<name>`` (no sample data next to it), with an empty models/ and
    without run outputs, as a user or the model zoo gets it."""
    dst = dst_root / bundle.name
    shutil.copytree(bundle, dst, ignore=shutil.ignore_patterns("__pycache__", "models", "eval", "output"))
    (dst / "models").mkdir()
    return dst


def network_weights(bundle_dir: Path, overrides: dict, config: str = "configs/inference.json",
                    path: str = "models/model.pt") -> Path:
    """Writes the state dict of a fresh ``network_def`` parsed from ``config`` (with ``overrides``) to
    ``bundle_dir/path``, run in a subprocess from inside the bundle folder (as the model zoo makes models/model.pt)."""
    code = (
        "import sys, torch\n"
        "from monai.bundle import ConfigParser\n"
        "sys.path.insert(0, '.')\n"
        "torch.manual_seed(0)\n"
        f"p = ConfigParser(); p.read_config({config!r}); p.read_meta('configs/metadata.json')\n"
        f"for k, v in {overrides!r}.items(): p[k] = v\n"
        f"torch.save(p.get_parsed_content('network_def').state_dict(), {path!r})\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=bundle_dir, check=True, capture_output=True, timeout=300)
    return bundle_dir / path


def read_outcome(fn):
    """`fn()` with the loader's parse cache emptied first, or the reason of the AngiogramReadError it raised."""
    from transforms import AngiogramReadError
    from transforms.io import files

    files.clear_cache()
    try:
        return fn()
    except AngiogramReadError as exc:
        return exc.reason


@pytest.fixture
def two_threads():
    """torch on two threads for the test, its thread count restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@contextmanager
def bundle_scripts(bundle: Path):
    """Makes ``scripts`` the package of ``bundle`` (both bundles have one) and restores sys.modules afterwards."""

    def owned():
        return [k for k in sys.modules if k == "scripts" or k.startswith("scripts.")]

    saved = {k: sys.modules.pop(k) for k in owned()}
    sys.path.insert(0, str(bundle))
    try:
        yield
    finally:
        sys.path.remove(str(bundle))
        for k in owned():
            del sys.modules[k]
        sys.modules.update(saved)

"""The MONAI model zoo's checks (ci/verify_bundle.py --mode full) on both bundles, through the `monai.bundle` entry
points that script calls, run from inside a copy of each bundle folder alone (tiny networks), plus what a user of a
copied-out bundle does next: ONNX export, inference on a DICOM given by --input_dir, and training without data."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import (
    PRETRAIN_BUNDLE,
    PRETRAIN_TINY,
    PRETRAIN_TRAIN,
    REPO,
    SEG_BUNDLE,
    TINY_NET,
    XA_CINE,
    copy_bundle_alone,
    monai_bundle,
    network_weights,
)

SCHEMA = SEG_BUNDLE / "docs" / "meta_schema_20240725.json"
BUNDLES = {"vasomim_pretrain": (PRETRAIN_BUNDLE, PRETRAIN_TINY), "vasomim_seg": (SEG_BUNDLE, TINY_NET)}
META, INFER = "configs/metadata.json", "configs/inference.json"
TRAIN_CONFIGS = {"vasomim_pretrain": PRETRAIN_TRAIN, "vasomim_seg": ("train.json",)}
# packages a bundle needs without an import statement naming them, and why
INDIRECT = {
    "einops": "MONAI's SABlock/PatchEmbeddingBlock (einops.layers.torch)",
    "tensorboard": "torch.utils.tensorboard.SummaryWriter in the training config",
    "pylibjpeg-libjpeg": "pydicom's JPEG decoder for compressed XA (the sample cine is JPEG baseline)",
    "pylibjpeg-openjpeg": "pydicom's JPEG 2000 decoder",
    "pylibjpeg-rle": "pydicom's fast RLE decoder",
    "pytorch-ignite": "the engines and handlers in the configs",
    "vasomim-monai": "the `transforms` package, outside the bundle folder",
}
SEG_ONLY_INDIRECT = {"nibabel": "MONAI SaveImage writes the NIfTI masks"}
DECLARED_ELSEWHERE = {"torch", "monai", "numpy"}  # pytorch_version, monai_version, numpy_version


@pytest.fixture(scope="module", params=sorted(BUNDLES))
def bundle(request, tmp_path_factory):
    """(name, copied bundle folder with a zoo-style models/model.pt from its network_def, network overrides)."""
    src, tiny = BUNDLES[request.param]
    dst = copy_bundle_alone(src, tmp_path_factory.mktemp(request.param))
    overrides = {**tiny, "_meta_#network_data_format#inputs#image#spatial_shape": [tiny["img_size"]] * 2}
    network_weights(dst, tiny)
    return request.param, dst, overrides


def test_metadata_against_offline_schema(bundle, tmp_path):
    _, root, _ = bundle
    schema = tmp_path / "schema.json"
    shutil.copy(SCHEMA, schema)  # verify_metadata downloads to `filepath` only when nothing is there
    proc = monai_bundle(["verify_metadata", "--meta_file", META, "--filepath", str(schema)], cwd=root)
    assert "metadata is verified with no error" in proc.stdout + proc.stderr


def third_party_imports(files) -> set[str]:
    names = set()
    for f in files:
        for node in ast.walk(ast.parse(Path(f).read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"__future__", "scripts", "transforms"}


def test_metadata_declares_every_package_and_monai_keeps_them(bundle):
    name, root, _ = bundle
    meta = json.loads((root / META).read_text())
    declared = set(meta["required_packages_version"])
    dists = packages_distributions()
    files = [*root.glob("scripts/*.py"), *(REPO / "transforms").glob("*.py")]
    imported = {dists[m][0].lower() for m in third_party_imports(files)} - DECLARED_ELSEWHERE
    needed = imported | set(INDIRECT) | (set(SEG_ONLY_INDIRECT) if name == "vasomim_seg" else set())
    assert needed <= declared, f"undeclared: {sorted(needed - declared)}"
    # MONAI 1.6.1 renames optional_packages_version to required_packages_version when it parses metadata, replacing
    # the required list (e.g. in the TorchScript export); the bundles therefore declare only required packages
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_meta(str(root / META))
    assert parser["_meta_#required_packages_version"] == meta["required_packages_version"]


def test_net_in_out(bundle):
    _, root, overrides = bundle
    proc = monai_bundle(["verify_net_in_out", "network_def", "--meta_file", META, "--config_file", INFER,
                         "--device", "cpu"], cwd=root, overrides=overrides)
    assert "data shape of network is verified with no error" in proc.stdout + proc.stderr


def reference_output(root: Path, overrides: dict, x: torch.Tensor, seed: int) -> torch.Tensor:
    """The eager network_def with models/model.pt on x, run in a subprocess from the bundle folder."""
    torch.save(x, root / "x.pt")
    code = (
        "import sys, torch\nfrom monai.bundle import ConfigParser\nsys.path.insert(0, '.')\n"
        f"p = ConfigParser(); p.read_config({INFER!r}); p.read_meta({META!r})\n"
        f"for k, v in {overrides!r}.items(): p[k] = v\n"
        "net = p.get_parsed_content('network_def'); net.load_state_dict(torch.load('models/model.pt')); net.eval()\n"
        f"torch.manual_seed({seed})\n"
        "with torch.no_grad(): torch.save(net(torch.load('x.pt')), 'ref.pt')\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True, capture_output=True, timeout=300)
    return torch.load(root / "ref.pt")


def test_torchscript_export_loads_and_matches_eager(bundle):
    _, root, overrides = bundle
    monai_bundle(["ckpt_export", "network_def", "--filepath", "models/model.ts", "--ckpt_file", "models/model.pt",
                  "--meta_file", META, "--config_file", INFER], cwd=root, overrides=overrides)
    extra = {"metadata.json": "", "inference.json": ""}
    ts = torch.jit.load(str(root / "models" / "model.ts"), _extra_files=extra)
    assert json.loads(extra["metadata.json"])["version"] == json.loads((root / META).read_text())["version"]
    size = overrides["img_size"]
    x = torch.rand(2, 1, size, size, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(3)  # the pretraining network draws its mask with torch's RNG: same seed, same mask
    with torch.no_grad():
        out = ts(x)
    assert out.shape == (2, 1, size, size) and out.dtype == torch.float32
    torch.testing.assert_close(out, reference_output(root, overrides, x, seed=3), rtol=1e-4, atol=1e-5)


def test_onnx_export_runs_in_onnxruntime(bundle):
    import onnxruntime as ort

    name, root, overrides = bundle
    monai_bundle(["onnx_export", "network_def", "--filepath", "models/model.onnx", "--ckpt_file", "models/model.pt",
                  "--meta_file", META, "--config_file", INFER], cwd=root, overrides=overrides)
    size = overrides["img_size"]
    x = torch.rand(1, 1, size, size, generator=torch.Generator().manual_seed(2))
    session = ort.InferenceSession(str(root / "models" / "model.onnx"), providers=["CPUExecutionProvider"])
    out = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    assert out.shape == (1, 1, size, size) and out.dtype == np.float32 and np.isfinite(out).all()
    if name == "vasomim_seg":
        np.testing.assert_allclose(out, reference_output(root, overrides, x, seed=0).numpy(), rtol=1e-3, atol=1e-4)
    else:  # the mask is drawn inside the graph, by onnxruntime's RNG: the reconstruction is an image in [0, 1]
        assert 0.0 <= out.min() and out.max() <= 1.0 and out.std() > 0


def test_inference_on_a_dicom_given_by_input_dir(bundle, tmp_path):
    name, root, overrides = bundle
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(XA_CINE, inputs)
    out = tmp_path / "out"
    extra = {"max_frames": 2} if name == "vasomim_seg" else {"model_path": str(root / "models" / "model.pt")}
    monai_bundle(["run", "--config_file", INFER, "--meta_file", META], cwd=root,
                 overrides={**overrides, "input_dir": str(inputs), "output_dir": str(out), **extra})
    if name == "vasomim_seg":
        assert len(list(out.glob("*_vessels.nii.gz"))) == 2 and len(list(out.glob("*_vessels_seg.dcm"))) == 1
    else:
        assert len(list((out / "reconstructions").glob("recon_*.png"))) == 1
        assert (out / "models" / "encoder.pt").is_file()


def test_training_without_sample_data_asks_for_dataset_dir(bundle):
    name, root, overrides = bundle
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    configs = str([f"configs/{c}" for c in TRAIN_CONFIGS[name]])
    proc = monai_bundle(["run", "training", "--config_file", configs, "--meta_file", META], cwd=root,
                        overrides=overrides, check=False)
    log = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert log.count("pass --dataset_dir") == 1, log[-3000:]
    assert sorted(p.relative_to(root) for p in root.rglob("*") if "__pycache__" not in p.parts) == [
        p for p in before if "__pycache__" not in p.parts]

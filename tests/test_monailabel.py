"""The vasomim_seg bundle under MONAI Label 0.8.5's real BundleInferTask and BundleTrainTask.

MONAI Label imports ``torchvision.utils`` at module level (for helpers this bundle never calls). PyPI has only CUDA
builds of torchvision, which do not load next to the CPU torch used here, so when torchvision is absent the test
registers a stand-in ``torchvision.utils`` whose functions raise if called.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import sys
import types

import nibabel as nib
import numpy as np
import pytest
import torch

from conftest import DCA, TINY_NET, TINY_TRAIN, XA_CINE, bundle_copy, tiny_seg_net


def _torchvision_stand_in():
    if importlib.util.find_spec("torchvision") is not None:
        return

    def unavailable(*args, **kwargs):
        raise RuntimeError("torchvision is not installed")

    utils = types.ModuleType("torchvision.utils")
    utils.make_grid = utils.save_image = unavailable
    package = types.ModuleType("torchvision")
    package.utils = utils
    sys.modules.setdefault("torchvision", package)
    sys.modules.setdefault("torchvision.utils", utils)


_torchvision_stand_in()
pytest.importorskip("monailabel", reason="install with: pip install --no-deps monailabel==0.8.5 (see tests/run.sh)")
from monailabel.tasks.infer.bundle import BundleInferTask  # noqa: E402
from monailabel.tasks.train.bundle import BundleTrainTask  # noqa: E402


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory, tiny_pretrain_ckpt):
    """A bundle copy whose configs use the tiny network, with a models/model.pt and the tiny pretrain checkpoint."""
    bundle = bundle_copy(tmp_path_factory.mktemp("monailabel"))
    for name in ("train.json", "inference.json"):
        path = bundle / "configs" / name
        config = json.loads(path.read_text())
        config.update(TINY_NET)
        if name == "train.json":
            config.update({k: TINY_TRAIN[k] for k in ("num_workers", "batch_size")},
                          pretrained_ckpt=str(tiny_pretrain_ckpt))
        path.write_text(json.dumps(config, indent=2))
    meta_path = bundle / "configs" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    for part in ("inputs", "outputs"):
        for item in meta["network_data_format"][part].values():
            item["spatial_shape"] = [TINY_NET["img_size"]] * 2
    meta_path.write_text(json.dumps(meta, indent=2))
    torch.manual_seed(0)
    torch.save(tiny_seg_net().state_dict(), bundle / "models" / "model.pt")
    return bundle


@pytest.mark.parametrize("image", [DCA / "images" / "1.dcm", XA_CINE], ids=["single_frame", "cine"])
def test_bundle_infer_task_segments_a_dicom(tiny_bundle, image):
    task = BundleInferTask(str(tiny_bundle), {})
    assert task.is_valid() and task.labels == {"vessel": 1} and task.dimension == 2
    result_file, result_json = task({"image": str(image), "device": "cpu", "result_extension": ".nii.gz"})
    import pydicom

    ds = pydicom.dcmread(image, stop_before_pixels=True)
    mask = np.asarray(nib.load(result_file).dataobj).squeeze()
    assert mask.shape == (ds.Columns, ds.Rows)
    assert set(np.unique(mask).tolist()) <= {0, 1}
    assert result_json["label_names"] == {"vessel": 1}


class FolderDatastore:
    """The one Datastore method BundleTrainTask calls: datalist() -> [{"image", "label"}, ...]."""

    def __init__(self, root):
        self.root = root

    def datalist(self):
        return [{"image": str(p), "label": str(self.root / "labels" / f"{p.stem}.png")}
                for p in sorted((self.root / "images").glob("*.dcm"))]


TRAIN_REQUEST = {"model": "vasomim_seg", "max_epochs": 1, "val_split": 0.25, "device": "cpu", "multi_gpu": False}


@contextlib.contextmanager
def bundle_run_isolated():
    """Restores sys.path and drops the bundle's ``scripts`` package when BundleTrainTask raises mid-run (it removes
    the bundle from sys.path only on success)."""
    path = list(sys.path)
    try:
        yield
    finally:
        sys.path[:] = path
        for k in [k for k in sys.modules if k == "scripts" or k.startswith("scripts.")]:
            del sys.modules[k]


def test_bundle_train_task_continues_and_updates_model_pt_twice(tiny_bundle, small_dca_dir, caplog, capfd):
    task = BundleTrainTask(str(tiny_bundle), {})
    assert task.is_valid()
    model = tiny_bundle / "models" / "model.pt"
    for _ in range(2):
        before, mtime = model.read_bytes(), model.stat().st_mtime_ns
        caplog.clear()
        with caplog.at_level("INFO"):
            task({**TRAIN_REQUEST, "pretrained": True}, FolderDatastore(small_dca_dir))
        out, err = capfd.readouterr()
        log = caplog.text + out + err  # the bundle's logging.conf replaces the root handlers with stdout
        assert "pretrained encoder tensors" in log
        assert "Restored all variables" in log  # MONAI Label's own CheckpointLoader in train#handlers
        assert f"continuing from {model.resolve()}" in log
        assert model.stat().st_mtime_ns > mtime and model.read_bytes() != before


class SkipsLoaderWithoutPretrained(BundleTrainTask):
    """A BundleTrainTask whose pretrained=False adds no CheckpointLoader (0.8.5 fails on os.path.exists(None))."""

    def _load_checkpoint(self, model_pytorch, pretrained, train_handlers):
        if pretrained:
            super()._load_checkpoint(model_pytorch, pretrained, train_handlers)


class OverwritesWithoutPretrained(SkipsLoaderWithoutPretrained):
    """An app that lets pretrained=False replace models/model.pt (the documented opt-in)."""

    def _update_overrides(self, overrides):
        overrides["overwrite"] = True
        return overrides


def test_bundle_train_task_without_pretrained_keeps_model_pt(tiny_bundle, small_dca_dir):
    model = tiny_bundle / "models" / "model.pt"
    before = model.read_bytes()
    request, datastore = {**TRAIN_REQUEST, "pretrained": False}, FolderDatastore(small_dca_dir)
    with pytest.raises(TypeError, match="NoneType"):
        BundleTrainTask(str(tiny_bundle), {})(request, datastore)
    assert model.read_bytes() == before
    with bundle_run_isolated(), pytest.raises(RuntimeError) as refused:
        SkipsLoaderWithoutPretrained(str(tiny_bundle), {})(request, datastore)
    assert isinstance(refused.value.__cause__, FileExistsError)
    assert "model.pt" in str(refused.value.__cause__) and "pretrained=True" in str(refused.value.__cause__)
    assert model.read_bytes() == before
    OverwritesWithoutPretrained(str(tiny_bundle), {})(request, datastore)
    assert model.read_bytes() != before

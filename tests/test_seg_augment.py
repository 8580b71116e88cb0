"""The seg bundle's ``augment.json`` overlay: CheXWorld's fine-tuning augmentation and learning-rate warm-up."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np

from conftest import DCA, SEG_BUNDLE, TINY_TRAIN, local_contrast, monai_bundle

CONFIGS = SEG_BUNDLE / "configs"

DRAWS = """
import sys
import numpy as np
from monai.bundle import ConfigParser
from monai.utils import set_determinism
sys.path.insert(0, '.')
p = ConfigParser()
p.read_meta("configs/metadata.json")
p.read_config(["configs/train.json", "configs/augment.json"])
p["img_size"] = 128
pre = p.get_parsed_content("train#preprocessing")
item = {"image": sys.argv[1], "label": sys.argv[2]}
base = item
for t in p.get_parsed_content("train#deterministic_transforms"):
    base = t(base)
draws = []
for seed in range(8):
    set_determinism(seed)
    draws.append(pre(dict(item)))
np.savez(sys.argv[3], names=[type(t).__name__ for t in pre.transforms], images=[np.asarray(base["image"][0])]
         + [np.asarray(d["image"][0]) for d in draws], labels=[np.asarray(base["label"][0])]
         + [np.asarray(d["label"][0]) for d in draws])
"""


def test_augment_overlay_draws_the_authors_transforms_and_keeps_labels_on_the_vessels(tmp_path):
    """Eight seeded draws: the label stays binary and on the dark vessels of its image (vessels darker than the
    4-pixel ring around them, as without augmentation; a transposed label, moved apart from its image, is not),
    and the augmentation changes the image."""
    out = tmp_path / "draws.npz"
    subprocess.run([sys.executable, "-c", DRAWS, str(DCA / "images" / "1.dcm"), str(DCA / "labels" / "1.png"),
                    str(out)], cwd=SEG_BUNDLE, capture_output=True, text=True, timeout=300, check=True)
    found = np.load(out)
    assert found["names"].tolist()[-4:] == ["RandFlipd", "RandAffined", "RandScaleIntensityd", "RandShiftIntensityd"]
    (base, *images), (base_label, *labels) = found["images"], found["labels"]
    plain = local_contrast(base, base_label > 0.5)
    assert plain > 0.03
    for image, label in zip(images, labels):
        assert np.unique(label).tolist() in ([0.0, 1.0], [0.0])
        contrast = local_contrast(image, label > 0.5)
        assert contrast > 0.5 * plain and local_contrast(image, (label > 0.5).T) < 0.5 * contrast, contrast
    assert sum(not np.allclose(image, base) for image in images) >= 6


def test_augment_overlay_trains_with_a_linear_warm_up_then_the_cosine_decay(tmp_path, small_dca_dir):
    """Four epochs with warm-up over half of them: the learning rate logged after each epoch rises, then falls."""
    proc = monai_bundle(
        ["run", "training", "--config_file", f"['{CONFIGS / 'train.json'}','{CONFIGS / 'augment.json'}']",
         "--meta_file", str(CONFIGS / "metadata.json"), "--logging_file", str(CONFIGS / "logging.conf")],
        cwd=tmp_path,
        overrides={**TINY_TRAIN, "max_epochs": 4, "warmup_fraction": 0.5, "dataset_dir": str(small_dca_dir),
                   "ckpt_dir": str(tmp_path / "models"), "output_dir": str(tmp_path / "eval")})
    lrs = [float(v) for v in re.findall(r"Current learning rate: ([0-9.e-]+)", proc.stdout + proc.stderr)]
    assert len(lrs) == 4, lrs
    assert 0 < lrs[0] < lrs[1] and lrs[3] < lrs[2] < lrs[1], lrs
    assert abs(lrs[0] / lrs[1] - 0.5) < 1e-6 and abs(lrs[2] / lrs[1] - 0.5) < 1e-6, lrs
    assert (tmp_path / "models" / "model.pt").is_file()

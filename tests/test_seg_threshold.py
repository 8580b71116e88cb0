"""vasomim_seg bundle: the operating point (``threshold`` id, ``scripts.threshold.VesselMaskd``)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from conftest import SEG_BUNDLE, seg_module

threshold = seg_module("threshold")

PROBABILITIES = torch.tensor([[[0.2, 0.5, 0.69, 0.7, 0.9]]])


@pytest.mark.parametrize("value, expected", [(0.5, [0, 1, 1, 1, 1]), (0.7, [0, 0, 0, 1, 1]), ("0.3", [0, 1, 1, 1, 1])])
def test_vessel_mask_is_vessel_where_the_probability_reaches_the_threshold(value, expected):
    out = threshold.VesselMaskd("pred", threshold=value)({"pred": PROBABILITIES})["pred"]
    assert out.shape == PROBABILITIES.shape
    assert out.flatten().tolist() == expected


@pytest.mark.parametrize("value", [0, 1, 1.5, -0.1, 70, "high", None])
def test_vessel_mask_rejects_a_threshold_outside_0_1(value):
    with pytest.raises(ValueError, match="threshold must be"):
        threshold.VesselMaskd("pred", threshold=value)


PARSE = """
import json, sys
from monai.bundle import ConfigParser
sys.path.insert(0, '.')
out = {}
for name, files, section in (("train", ["train.json"], "train#postprocessing"),
                             ("evaluate", ["train.json", "evaluate.json"], "validate#postprocessing"),
                             ("inference", ["inference.json"], "postprocessing")):
    for value in (None, 0.7, 1.5):
        p = ConfigParser()
        p.read_meta("configs/metadata.json")
        p.read_config([f"configs/{f}" for f in files])
        if value is not None:
            p["threshold"] = value
        try:
            masks = [t for t in p.get_parsed_content(section).transforms if type(t).__name__ == "VesselMaskd"]
            out[f"{name} {value}"] = [m.threshold[0] for m in masks]
        except Exception as exc:
            out[f"{name} {value}"] = repr(exc) + repr(exc.__cause__)
print(json.dumps(out))
"""


def test_threshold_id_sets_the_operating_point_of_training_evaluation_and_inference():
    """``--threshold`` reaches the one binarisation of each entry point, and a bad value stops it with the reason."""
    proc = subprocess.run([sys.executable, "-c", PARSE], cwd=SEG_BUNDLE, capture_output=True, text=True, timeout=300,
                          check=True)
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    for name in ("train", "evaluate", "inference"):
        assert found[f"{name} None"] == [0.5], name
        assert found[f"{name} 0.7"] == [0.7], name
        assert "threshold must be in (0, 1)" in found[f"{name} 1.5"], name

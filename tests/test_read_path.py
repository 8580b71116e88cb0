"""The read path of one file goes down the modules of `transforms.io` and returns: each module is entered once."""

import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from transforms.io import LoadAngiogram, files

ROOT = Path(__file__).resolve().parents[1] / "sample_data"
CINE = ROOT / "xa_cine" / "XA_coronary_cine_96frames_jpeg_baseline.dcm"
DCA = sorted((ROOT / "dca" / "images").glob("*.dcm"))


def module_entries(fn) -> Counter:
    """How many times a call of `fn` enters each module of transforms.io from another module."""
    entries: Counter = Counter()

    def profile(frame, event, arg):
        if event != "call":
            return
        callee = frame.f_globals.get("__name__", "")
        caller = frame.f_back.f_globals.get("__name__", "") if frame.f_back else ""
        if callee.startswith("transforms.io") and callee != caller:
            entries[callee] += 1

    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return entries


@pytest.mark.parametrize("case", ["native dicom", "cine frame", "whole cine", "png"])
def test_each_module_is_entered_at_most_once(case, tmp_path):
    files.clear_cache()
    path, frame = {"native dicom": (DCA[0], None), "cine frame": (CINE, 5), "whole cine": (CINE, None)}.get(
        case, (tmp_path / "frame.png", None))
    if case == "png":
        Image.fromarray(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64).astype(np.uint8)).save(path)
    load = LoadAngiogram()
    entries = module_entries(lambda: load(path, frame))
    expected = {"transforms.io.loaders", "transforms.io.read", "transforms.io.files", "transforms.io.decode",
                "transforms.io.normalise"} | ({"transforms.io.header"} if case != "png" else set())
    assert set(entries) == expected
    assert max(entries.values()) == 1, entries

"""The read path of one file goes down the modules of `transforms.io` and returns: no call goes up a layer, and each
module above the per-frame work is entered once."""

import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from transforms.io import LoadAngiogram, files

ROOT = Path(__file__).resolve().parents[1] / "sample_data"
CINE = ROOT / "xa_cine" / "XA_coronary_cine_96frames_jpeg_baseline.dcm"
DCA = sorted((ROOT / "dca" / "images").glob("*.dcm"))


LAYERS = ["transforms.io.loaders", "transforms.io.read", "transforms.io.files", "transforms.io.header",
          "transforms.io.decode", "transforms.io.normalise", "transforms.io.memory"]
PER_FRAME = {"transforms.io.decode", "transforms.io.normalise"}  # entered once per frame for a whole file


def module_calls(fn) -> Counter:
    """How many times a call of `fn` enters each module of transforms.io from another module: {(caller, callee): n}.
    Calls from outside transforms.io (the caller's code, transforms._parallel's pieces) have the caller "outside"."""
    calls: Counter = Counter()

    def profile(frame, event, arg):
        if event != "call":
            return
        callee = frame.f_globals.get("__name__", "")
        caller = frame.f_back.f_globals.get("__name__", "") if frame.f_back else ""
        if callee.startswith("transforms.io") and callee != caller:
            calls[caller if caller in LAYERS else "outside", callee] += 1

    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return calls


@pytest.mark.parametrize("case", ["native dicom", "cine frame", "whole cine", "png"])
def test_calls_go_down_the_layers_and_each_upper_layer_is_entered_once(case, tmp_path):
    """One torch thread, so that every call is in this thread and seen. The read path goes loaders -> read -> files ->
    header, read -> decode -> normalise: no call goes up a layer; the upper layers are entered once, decode and
    normalise at most once per frame (a whole file is decoded and normalised frame by frame)."""
    files.clear_cache()
    path, frame = {"native dicom": (DCA[0], None), "cine frame": (CINE, 5), "whole cine": (CINE, None)}.get(
        case, (tmp_path / "frame.png", None))
    if case == "png":
        Image.fromarray(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64).astype(np.uint8)).save(path)
    load = LoadAngiogram()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        loaded = []  # kept, so that freeing it (memory's finalizer) is not counted as a call of the read path
        calls = module_calls(lambda: loaded.append(load(path, frame)))
    finally:
        torch.set_num_threads(threads)
    dicom_only = {"transforms.io.header", "transforms.io.memory"}
    expected = {"transforms.io.loaders", "transforms.io.read", "transforms.io.files", "transforms.io.decode",
                "transforms.io.normalise"} | (dicom_only if case != "png" else set())
    assert {callee for _, callee in calls} == expected
    assert all(LAYERS.index(caller) < LAYERS.index(callee) for caller, callee in calls if caller != "outside"), calls
    entries = Counter()
    for (_, callee), n in calls.items():
        entries[callee] += n
    frames = 96 if case == "whole cine" else 1
    assert all(n == 1 for m, n in entries.items() if m not in PER_FRAME), entries
    assert all(n <= frames + 1 for m, n in entries.items() if m in PER_FRAME), entries

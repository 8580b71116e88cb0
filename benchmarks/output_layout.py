"""What MONAI's (W, H) orientation costs the loader and what comes after it, on the sample cine's 96 frames (512²).

The decoded uint8 frames are normalised to float32 [0, 1] in two layouts, each followed by what a pipeline does next:
    (a) transposed into a C-contiguous (N, W, H) array, as `transforms.io` does (`normalise.normalise`);
    (b) in storage order into (N, H, W), returned as its transposed view (N, W, H), as MONAI's PILReader returns
        its arrays: the same values (checked), other strides.
Consumers: none; `F.interpolate(..., mode="area")` to 128² (the pretraining bundle's Resized in the CPU preset);
a C-contiguous copy (what a frame store or `.view()` needs); Frangi on 16 of the frames at full size (torch's
convolution takes any strides). Each (layout, consumer) pair is timed interleaved with the other layout (the
`_bench` harness), on one torch thread (a DataLoader worker's setting); the ratio (b)/(a) is printed per consumer.
This measures a lever of issue #19 without changing the loader: its output stays (a).

    python benchmarks/output_layout.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from transforms.io import decode, files, normalise
from transforms.vesselness import frangi

from _bench import Machine, interleave

CINE = Path(__file__).resolve().parents[1] / "sample_data" / "xa_cine" / "XA_coronary_cine_96frames_jpeg_baseline.dcm"


def transposed(frames: list) -> np.ndarray:
    """(a): (N, W, H) C-contiguous, written transposed."""
    out = np.empty((len(frames), frames[0].shape[1], frames[0].shape[0]), np.float32)
    for k, arr in enumerate(frames):
        normalise.normalise(CINE, arr, False, k, out=out[k])
    return out


def storage_order(frames: list) -> np.ndarray:
    """(b): (N, H, W) written in storage order, returned as the (N, W, H) view: `normalise.normalise` of each frame's
    transposed view, whose own transposition then writes storage order (the same division as (a))."""
    out = np.empty((len(frames),) + frames[0].shape, np.float32)
    for k, arr in enumerate(frames):
        normalise.normalise(CINE, arr.T, False, k, out=out[k])
    return out.transpose(0, 2, 1)


CONSUMERS = {
    "none": lambda x: x,
    "interpolate to 128² (area)": lambda x: F.interpolate(torch.from_numpy(x)[:, None], size=(128, 128), mode="area"),
    "C-contiguous copy": np.ascontiguousarray,
    "Frangi, 16 frames": lambda x: frangi(torch.from_numpy(x[:16])[:, None]),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    machine = Machine()
    image = files.open_angiogram(CINE)
    frames = decode.decode_frames(CINE, image, range(image.header.frames))
    assert np.array_equal(transposed(frames), storage_order(frames))
    results = {}
    for name, consume in CONSUMERS.items():
        results[name] = interleave({"a": lambda c=consume: c(transposed(frames)),
                                    "b": lambda c=consume: c(storage_order(frames))}, args.repeats)
    machine.finish()
    for name, stats in results.items():
        a, b = stats["a"], stats["b"]
        print(f"{name}: (a) transposed {a}; (b) storage order + view {b}; ratio b/a median {b.median / a.median:.2f}, "
              f"min-of-N {b.min / a.min:.2f}")


if __name__ == "__main__":
    main()

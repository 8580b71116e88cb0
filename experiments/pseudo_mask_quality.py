"""How well the pretraining pseudo-mask m finds vessels: its precision and recall against the 40 labelled DCA-like
angiograms (``xca_dca80_train``), at the CPU preset's working size (128², Frangi σ 1-3) and the paper's (256²,
σ 1-4), with the field-of-view step (``fov_threshold`` 0.1, the bundle default) and without it (the border alone).

    python experiments/pseudo_mask_quality.py [--data-root ../shared/data]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from transforms import FrangiVesselness, LoadAngiogram, VesselPseudoMaskd


def labelled(data: Path, size: int, sigmas: list[int], fov_threshold: float | None, percentile: float = 92.0):
    """Yields (image (1, size, size) float32, pseudo-mask (size, size) bool, label (size, size) bool) for each of the
    40 labelled DCA-like angiograms (``xca_dca80_train``), the pseudo-mask made as the pretraining bundle makes it."""
    load, frangi = LoadAngiogram(), FrangiVesselness(sigmas=sigmas)
    pseudo = VesselPseudoMaskd(border=max(1, round(20 * size / 512)), image_key="image", percentile=percentile,
                               fov_threshold=fov_threshold)
    for path in sorted((data / "xca_dca80_train" / "images").glob("*.png")):
        x = torch.nn.functional.interpolate(torch.as_tensor(load(str(path)))[None].float(), size=(size, size),
                                            mode="area")[0]
        m = pseudo({"image": x, "vesselness": frangi(x)})["vessel_mask"][0].numpy() > 0
        label = Image.fromarray(np.array(Image.open(data / "xca_dca80_train" / "labels" / path.name)).T)
        yield x, m, np.array(label.resize((size, size), Image.NEAREST)) > 127


def scores(data: Path, size: int, sigmas: list[int], fov_threshold: float | None) -> np.ndarray:
    """(N, 2) precision and recall of the pseudo-mask of each image against its label, both at ``size``²."""
    rows = []
    for _, m, label in labelled(data, size, sigmas, fov_threshold):
        rows.append(((m & label).sum() / max(m.sum(), 1), (m & label).sum() / max(label.sum(), 1)))
    return np.array(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    data = Path(ap.parse_args().data_root)
    for size, sigmas in ((128, [1, 2, 3]), (256, [1, 2, 3, 4])):
        old, new = scores(data, size, sigmas, None), scores(data, size, sigmas, 0.1)
        for name, r in (("border only", old), ("field of view", new)):
            print(f"{size}²  {name:13s}: precision {r[:, 0].mean():.2f}  recall {r[:, 1].mean():.2f}  "
                  f"images with precision < 0.3: {(r[:, 0] < 0.3).sum()} of {len(r)}")
        gain = new[:, 0].mean() / old[:, 0].mean()
        print(f"ratio line {size}²: precision field of view / border only = {gain:.2f}x, "
              f"recall {new[:, 1].mean() / old[:, 1].mean():.2f}x")


if __name__ == "__main__":
    main()

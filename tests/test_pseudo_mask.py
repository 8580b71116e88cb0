"""Vessel pseudo-mask: border, percentile, strongest 4-connected component, empty input."""

from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from monai.data import MetaTensor
from skimage.measure import label

from transforms.pseudo_mask import VesselPseudoMask, VesselPseudoMaskd
from transforms.vesselness import FrangiVesselness

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "dca" / "images" / "2.dcm"


@pytest.fixture(scope="module")
def vesselness() -> MetaTensor:
    """(1, W, H) Frangi response of a real angiogram, MONAI orientation."""
    pixels = pydicom.dcmread(SAMPLE).pixel_array.astype(np.float32) / 255.0
    image = MetaTensor(torch.from_numpy(pixels.T.copy())[None], meta={"filename_or_obj": str(SAMPLE)})
    return FrangiVesselness(sigmas=range(1, 5))(image)


def _interior(shape, border):
    inside = np.zeros(shape, dtype=bool)
    inside[border:-border, border:-border] = True
    return inside


def test_mask_is_binary_border_free_single_component_at_strongest_response(vesselness):
    border = 20
    mask = VesselPseudoMaskd(keys="vesselness", border=border)({"vesselness": vesselness})["vessel_mask"]
    assert isinstance(mask, MetaTensor) and mask.shape == vesselness.shape and mask.dtype == torch.float32
    assert mask.meta["filename_or_obj"] == str(SAMPLE)
    m = mask[0].numpy()
    assert set(np.unique(m)) == {0.0, 1.0}
    assert not m[~_interior(m.shape, border)].any()
    labels, count = label(m > 0, connectivity=1, return_num=True)
    assert count == 1
    response = np.where(_interior(m.shape, border), vesselness[0].numpy(), 0)
    assert m.flat[np.argmax(response)] == 1
    # the component is the whole 4-connected piece of the thresholded map, not a part of it
    everything = VesselPseudoMask(border=border, keep="all")(vesselness)[0].numpy() > 0
    pieces = label(everything, connectivity=1)
    np.testing.assert_array_equal(m > 0, pieces == pieces.flat[np.argmax(response)])
    assert everything.sum() > m.sum()


@pytest.mark.parametrize("percentile", [92.0, 80.0])
def test_fraction_kept_before_component_step(vesselness, percentile):
    border = 20
    everything = VesselPseudoMask(border=border, percentile=percentile, keep="all")(vesselness)[0].numpy()
    inside = _interior(everything.shape, border)
    fraction = everything[inside].mean()
    assert abs(fraction - (100 - percentile) / 100) < 0.005
    assert not everything[~inside].any()


def test_connectivity_two_merges_diagonal_neighbours():
    response = np.zeros((1, 12, 12), dtype=np.float32)
    response[0, 4, 4], response[0, 5, 5], response[0, 6, 6] = 3.0, 2.0, 1.0
    four = VesselPseudoMask(border=1, percentile=0.0, connectivity=1)(response)
    eight = VesselPseudoMask(border=1, percentile=0.0, connectivity=2)(response)
    assert isinstance(four, np.ndarray) and four.sum() == 1 and four[0, 4, 4] == 1
    assert eight.sum() == 3


def test_empty_response_gives_empty_mask():
    for response in (torch.zeros(1, 64, 64), torch.zeros(1, 30, 30)):
        mask = VesselPseudoMask(border=20)(response)
        assert mask.shape == response.shape and mask.sum() == 0
    d = VesselPseudoMaskd(keys=["v", "w"], output_key=["m", "n"], allow_missing_keys=True)({"v": torch.zeros(1, 8, 8)})
    assert set(d) == {"v", "m"} and d["m"].sum() == 0


def test_bad_arguments():
    with pytest.raises(ValueError):
        VesselPseudoMask(keep="largest")
    with pytest.raises(ValueError):
        VesselPseudoMask(percentile=120)
    with pytest.raises(ValueError):
        VesselPseudoMask()(torch.zeros(64, 64))


def test_field_of_view_keeps_the_mask_off_a_circular_field_edge():
    """A bright disc on a dark frame (a circular field of view) with one dark vessel inside: the disc's rim answers
    the vesselness filter; with the image given, the pseudo-mask is the vessel, without it the rim."""
    from transforms import FrangiVesselness, VesselPseudoMaskd, field_of_view

    yy, xx = np.mgrid[:128, :128]
    image = np.where((yy - 64) ** 2 + (xx - 64) ** 2 < 58**2, 0.9, 0.02)
    vessel = (np.abs(xx - 64) <= 1) & (np.abs(yy - 64) < 30)
    image = np.where(vessel, 0.5, image).astype(np.float32)[None]
    near_vessel = (np.abs(xx - 64) <= 6) & (np.abs(yy - 64) < 36)
    vesselness = FrangiVesselness(sigmas=[1, 2, 3])(torch.as_tensor(image))
    fov = field_of_view(image[0], threshold=0.1, margin=5)
    assert fov[64, 64] and not fov[2, 2] and not fov[64, 124]
    d = {"image": torch.as_tensor(image), "vesselness": vesselness}
    with_fov = VesselPseudoMaskd(border=5, image_key="image")(d)["vessel_mask"][0].numpy() > 0
    without = VesselPseudoMaskd(border=5)(d)["vessel_mask"][0].numpy() > 0
    assert (with_fov & vessel).sum() > 0.9 * vessel.sum() and (with_fov & near_vessel).sum() == with_fov.sum()
    assert (without & near_vessel).sum() < 0.5 * without.sum()
    with pytest.raises(ValueError, match="differs"):
        VesselPseudoMaskd(border=5, image_key="image")({"image": torch.zeros(1, 64, 64), "vesselness": vesselness})

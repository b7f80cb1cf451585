"""Tissue detection on a drawn slide: accuracy, artefacts, holes, specks, resolution independence."""

from __future__ import annotations

import numpy as np
import pytest

from wsi_engine.tissue import TissueConfig, detect_tissue

LEVEL0 = (32000, 24000)  # the drawn 8 × 6 mm field at 0.25 µm/px


def test_detected_mask_matches_drawn_tissue(scene, mask_iou):
    view = scene.at(8.0)
    found = detect_tissue(view.rgb, 8.0, TissueConfig(), LEVEL0)
    assert found.mask.shape == view.truth.shape and found.mask.dtype == bool
    assert mask_iou(found.mask, view.truth) >= 0.9
    assert found.downsample == (32.0, 32.0) and found.mpp == 8.0 and found.source == "detected"
    rgba = np.dstack([view.rgb, np.full(view.truth.shape, 255, dtype=np.uint8)])
    assert np.array_equal(detect_tissue(rgba, 8.0, TissueConfig(), LEVEL0).mask, found.mask)


def test_pen_marks_and_black_borders_are_not_tissue(scene):
    view = scene.at(8.0)
    found = detect_tissue(view.rgb, 8.0, TissueConfig(), LEVEL0)
    assert not (found.mask & view.artefacts).any()
    unguarded = detect_tissue(
        view.rgb, 8.0, TissueConfig(exclude_pen=False, exclude_dark=False), LEVEL0
    )
    assert (
        unguarded.mask & view.artefacts
    ).sum() > 0.5 * view.artefacts.sum()  # the rules are what removes them


def test_large_hole_kept_small_hole_filled_speck_dropped(scene):
    view = scene.at(8.0)
    found = detect_tissue(view.rgb, 8.0, TissueConfig(), LEVEL0).mask
    assert not found[view.px("big_hole")]
    assert found[view.px("small_hole")]
    assert not found[view.px("speck")]
    no_holes = detect_tissue(view.rgb, 8.0, TissueConfig(keep_holes=False), LEVEL0).mask
    assert no_holes[view.px("big_hole")]
    keep_specks = detect_tissue(view.rgb, 8.0, TissueConfig(min_tissue_area_um2=0), LEVEL0).mask
    assert keep_specks[view.px("speck")]


def test_same_preset_gives_same_physical_result_at_4_8_16_um(scene, mask_iou):
    areas = {}
    for mpp in (4.0, 8.0, 16.0):
        view = scene.at(mpp)
        found = detect_tissue(view.rgb, mpp, TissueConfig(), LEVEL0)
        assert mask_iou(found.mask, view.truth) >= 0.9, mpp
        assert not found.mask[view.px("big_hole")] and not found.mask[view.px("speck")], mpp
        areas[mpp] = found.mask.sum() * mpp**2
    truth_um2 = scene.truth.sum() * scene.mpp**2
    assert max(areas.values()) / min(areas.values()) < 1.03
    assert all(abs(area / truth_um2 - 1) < 0.03 for area in areas.values())


@pytest.mark.parametrize("value", [238, 255])
def test_blank_slide_gives_no_tissue(value):
    rng = np.random.default_rng(1)
    blank = np.clip(value + rng.normal(0, 3, (300, 400, 3)), 0, 255).astype(np.uint8)
    found = detect_tissue(blank, 8.0, TissueConfig(), (12800, 9600))
    assert found.mask.shape == (300, 400) and not found.mask.any()


def test_fixed_threshold(scene, mask_iou):
    view = scene.at(8.0)
    fixed = detect_tissue(view.rgb, 8.0, TissueConfig(method="fixed", threshold=20), LEVEL0)
    assert mask_iou(fixed.mask, view.truth) >= 0.9
    too_high = detect_tissue(view.rgb, 8.0, TissueConfig(method="fixed", threshold=250), LEVEL0)
    assert not too_high.mask.any()


def test_fixed_method_needs_a_threshold():
    with pytest.raises(ValueError, match="needs a threshold"):
        TissueConfig(method="fixed")


@pytest.mark.parametrize("seed", range(6))
def test_closing_is_the_euclidean_disk_closing(seed):
    """The fast closing equals its definition by distance transforms on the padded mask."""
    from scipy import ndimage as ndi

    from wsi_engine.tissue.detect import _close

    rng = np.random.default_rng(seed)
    shape = tuple(int(s) for s in rng.integers(20, 240, 2))
    mask = ndi.gaussian_filter(rng.random(shape), rng.uniform(1, 4)) > rng.uniform(0.47, 0.53)
    radius = float(rng.uniform(1, 15))
    pad = int(np.ceil(radius)) + 1
    padded = np.pad(mask, pad)
    dilated = ndi.distance_transform_edt(~padded) <= radius
    expected = (ndi.distance_transform_edt(dilated) > radius)[pad:-pad, pad:-pad]
    closed = _close(mask, radius)
    assert closed.sum() > mask.sum() * 0.9  # not trivially empty
    np.testing.assert_array_equal(closed, expected)

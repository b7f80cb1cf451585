"""TissueMask.fraction_in_boxes (summed-area table with fractional edges) and segmentation_size."""

from __future__ import annotations

import numpy as np
import pytest

from wsi_engine.tissue import TissueMask, segmentation_size


def left_half_mask() -> TissueMask:
    """4 × 4 mask px, left two columns tissue, 10 level-0 px per mask px (slide 40 × 40 level-0 px)."""
    mask = np.zeros((4, 4), dtype=bool)
    mask[:, :2] = True
    return TissueMask(mask, (10.0, 10.0), 2.5, "detected")


@pytest.mark.parametrize(
    ("x", "y", "size", "expected"),
    [
        (0, 0, 20, 1.0),  # inside the tissue half
        (20, 20, 20, 0.0),  # inside the background half
        (10, 0, 20, 0.5),  # straddles the edge on whole mask px
        (5, 0, 10, 1.0),  # fractional mask px, all tissue
        (15, 7, 10, 0.5),  # half of a box across the edge at fractional mask px
        (17, 0, 4, 0.75),  # 3 of 4 level-0 columns left of x = 20
        (-10, 0, 20, 0.5),  # half outside the slide: outside counts as background
        (30, 30, 20, 0.0),  # partly outside, background
        (100, 100, 20, 0.0),  # wholly outside
        (0, 0, 40, 0.5),  # the whole slide
    ],
)
def test_fraction_hand_computed(x, y, size, expected):
    fractions = left_half_mask().fraction_in_boxes(np.array([[x, y]]), size)
    assert fractions.dtype == np.float32 and fractions.shape == (1,)
    assert fractions[0] == pytest.approx(expected, abs=1e-6)


def test_fraction_matches_brute_force_on_level0_grid():
    rng = np.random.default_rng(3)
    mask = rng.random((23, 31)) < 0.4
    dsx, dsy = 5, 3  # anisotropic, integer so level-0 pixels can be counted
    level0 = np.repeat(np.repeat(mask, dsy, axis=0), dsx, axis=1)
    tissue = TissueMask(mask, (float(dsx), float(dsy)), 1.0, "detected")
    size = 11
    xy = rng.integers(-8, level0.shape[1], (200, 2))
    xy[:, 1] = rng.integers(-8, level0.shape[0], 200)
    padded = np.pad(level0, size)
    expected = [padded[y + size : y + 2 * size, x + size : x + 2 * size].mean() for x, y in xy]
    np.testing.assert_allclose(tissue.fraction_in_boxes(xy, size), expected, atol=1e-5)


def test_fraction_of_no_boxes_is_empty():
    assert left_half_mask().fraction_in_boxes(np.empty((0, 2)), 20).shape == (0,)


def test_spanning_sets_downsample_and_mpp():
    tissue = TissueMask.spanning(np.ones((250, 400)), (100_000, 62_500), 0.25, "mask:m.png")
    assert tissue.downsample == (250.0, 250.0) and tissue.mpp == 62.5
    assert tissue.mask.dtype == bool and tissue.level0_size == (100_000, 62_500)


def test_segmentation_size():
    assert segmentation_size((100_000, 80_000), 0.25, 8.0) == (3125, 2500)
    assert segmentation_size((1001, 999), 0.5, 8.0) == (63, 62)
    assert segmentation_size((500, 300), 10.0, 8.0) == (500, 300)  # never above level 0
    assert segmentation_size((10, 10), 0.25, 8.0) == (1, 1)

"""Score canvas: placement, overlap averaging, smoothing, tissue masking."""

from __future__ import annotations

import numpy as np

from wsi_engine.heatmap.scoremap import canvas_shape, paint_patches, score_canvas, smooth


def test_overlapping_patches_are_averaged_exactly() -> None:
    # two 4-px patches at downsample 1 overlapping on a 2-px band; a third elsewhere
    coords = np.array([[0, 0], [2, 0], [0, 6]])
    canvas = paint_patches(coords, np.array([1.0, 3.0, 7.0]), 4, (10, 8), 1.0)
    expected = np.full((10, 8), np.nan)
    expected[0:4, 0:2] = 1.0
    expected[0:4, 2:4] = 2.0  # mean of 1 and 3
    expected[0:4, 4:6] = 3.0
    expected[6:10, 0:4] = 7.0
    np.testing.assert_array_equal(canvas, expected)


def test_patch_squares_map_to_canvas_pixels_at_a_downsample() -> None:
    # level-0 patch of 64 px at downsample 16 → 4 canvas px; slide 100 x 50 → canvas 4 x 7
    assert canvas_shape((100, 50), 16) == (4, 7)
    canvas = paint_patches(np.array([[32, 0]]), np.array([0.5]), 64, (4, 7), 16.0)
    assert np.argwhere(np.isfinite(canvas)).tolist() == [
        [r, c] for r in range(4) for c in range(2, 6)
    ]
    # a patch smaller than one canvas pixel still paints one
    tiny = paint_patches(np.array([[40, 40]]), np.array([1.0]), 2, (4, 7), 16.0)
    assert np.isfinite(tiny).sum() == 1


def test_smoothing_keeps_constants_and_holes() -> None:
    canvas = np.full((20, 20), 2.0)
    canvas[:, :5] = np.nan
    smoothed = smooth(canvas, 3.0)
    assert np.isnan(smoothed[:, :5]).all()
    np.testing.assert_allclose(smoothed[:, 5:], 2.0)
    step = np.where(np.arange(20) < 10, 0.0, 1.0)[None, :].repeat(20, 0)
    blurred = smooth(step, 2.0)
    assert 0 < blurred[0, 9] < 0.5 < blurred[0, 10] < 1


def test_tissue_mask_removes_colour_outside_tissue() -> None:
    mask = np.zeros((2, 2), bool)
    mask[0, 0] = True  # mask at downsample 8: only level-0 [0, 8) x [0, 8) is tissue
    canvas = score_canvas(np.array([[0, 0]]), np.array([1.0]), 16, (4, 4), 4.0, tissue=(mask, 8.0))
    assert np.argwhere(np.isfinite(canvas)).tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]

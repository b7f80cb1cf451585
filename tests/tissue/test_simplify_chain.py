"""The tissue outline's Douglas-Peucker simplification keeps exactly scikit-image's points."""

from __future__ import annotations

import numpy as np
from skimage.measure import approximate_polygon, find_contours

from wsi_engine.tissue.geojson import simplify_chain


def test_simplify_chain_equals_scikit_image_on_mask_contours():
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[:60, :60]
    compared = 0
    for _ in range(40):
        mask = np.zeros((60, 60), dtype=np.float32)
        for _ in range(5):
            r, c, radius = rng.integers(5, 55), rng.integers(5, 55), rng.integers(3, 15)
            mask[(rows - r) ** 2 + (cols - c) ** 2 < radius**2] = 1
        for contour in find_contours(np.pad(mask, 1), 0.5):
            for tolerance in (0.5, 2.0):
                expected = approximate_polygon(contour, tolerance)
                np.testing.assert_array_equal(simplify_chain(contour, tolerance), expected)
                compared += 1
    assert compared > 100


def test_simplify_chain_drops_collinear_points_and_keeps_corners():
    square = np.array([[0, 0], [0, 1], [0, 2], [1, 2], [2, 2], [2, 1], [2, 0], [1, 0], [0, 0]])
    simplified = simplify_chain(square.astype(float), 0.5)
    assert simplified.tolist() == [[0, 0], [0, 2], [2, 2], [2, 0], [0, 0]]

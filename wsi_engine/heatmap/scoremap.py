"""Per-patch values → a 2-D score canvas aligned with the slide.

A canvas covers the whole slide at ``downsample`` level-0 px per canvas px:
canvas pixel (i, j) is the square [j·d, (j+1)·d) × [i·d, (i+1)·d) of level 0.
A patch paints every canvas pixel whose centre lies inside its square (at
least one pixel, so tiny patches never vanish); where patches overlap the
canvas holds the mean of their values; pixels no patch covers are NaN.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import gaussian_filter


def canvas_shape(dimensions: tuple[int, int], downsample: float) -> tuple[int, int]:
    """(height, width) in canvas px covering a slide of level-0 ``dimensions`` (w, h)."""
    width, height = dimensions
    return max(1, math.ceil(height / downsample)), max(1, math.ceil(width / downsample))


def paint_patches(
    coords: np.ndarray,
    values: np.ndarray,
    patch_size_level0: float,
    shape: tuple[int, int],
    downsample: float,
) -> np.ndarray:
    """(H, W) float64 canvas: mean of the ``values`` of the patches covering each pixel, NaN elsewhere.

    ``coords`` (N, 2) level-0 x, y of patch top-left corners; ``values`` (N,).
    Sums and counts are accumulated with 2-D difference arrays, so the cost is
    O(N + H·W) whatever the patch size and overlap.
    """
    height, width = shape
    coords = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    keep = np.isfinite(values)
    coords, values = coords[keep], values[keep]
    x0, x1 = _pixel_span(coords[:, 0], patch_size_level0, downsample, width)
    y0, y1 = _pixel_span(coords[:, 1], patch_size_level0, downsample, height)
    inside = (x1 > x0) & (y1 > y0)
    x0, x1, y0, y1, values = x0[inside], x1[inside], y0[inside], y1[inside], values[inside]
    total = _box_sum(shape, x0, x1, y0, y1, values)
    count = _box_sum(shape, x0, x1, y0, y1, np.ones_like(values))
    covered = count > 0.5
    canvas = np.full(shape, np.nan)
    canvas[covered] = total[covered] / np.rint(count[covered])
    return canvas


def _pixel_span(
    start: np.ndarray, size: float, downsample: float, limit: int
) -> tuple[np.ndarray, np.ndarray]:
    """[first, stop) canvas px whose centres fall in [start, start + size) level-0 px, clipped to the canvas."""
    first = np.ceil(start / downsample - 0.5).astype(np.int64)
    stop = np.maximum(np.ceil((start + size) / downsample - 0.5).astype(np.int64), first + 1)
    return np.clip(first, 0, limit), np.clip(stop, 0, limit)


def _box_sum(
    shape: tuple[int, int],
    x0: np.ndarray,
    x1: np.ndarray,
    y0: np.ndarray,
    y1: np.ndarray,
    weights: np.ndarray,
) -> np.ndarray:
    """Sum over boxes [y0, y1) × [x0, x1) of their ``weights``, via a cumulated difference array."""
    diff = np.zeros((shape[0] + 1, shape[1] + 1))
    np.add.at(diff, (y0, x0), weights)
    np.add.at(diff, (y0, x1), -weights)
    np.add.at(diff, (y1, x0), -weights)
    np.add.at(diff, (y1, x1), weights)
    return diff.cumsum(axis=0).cumsum(axis=1)[: shape[0], : shape[1]]


def smooth(canvas: np.ndarray, sigma_px: float) -> np.ndarray:
    """NaN-aware Gaussian smoothing (normalised convolution); NaN pixels stay NaN.

    ``sigma_px`` is the standard deviation in canvas px (µm / (mpp · downsample)).
    """
    if sigma_px <= 0:
        return canvas
    valid = np.isfinite(canvas)
    weight = gaussian_filter(valid.astype(np.float64), sigma_px, mode="constant")
    total = gaussian_filter(np.where(valid, canvas, 0.0), sigma_px, mode="constant")
    out = np.full_like(canvas, np.nan)
    out[valid] = total[valid] / weight[valid]
    return out


def mask_on_canvas(
    mask: np.ndarray, mask_downsample: float, shape: tuple[int, int], downsample: float
) -> np.ndarray:
    """(H, W) bool: the tissue ``mask`` (level-0 px per mask px = ``mask_downsample``) sampled at canvas pixel centres."""
    rows = _sample_index(shape[0], downsample, mask_downsample, mask.shape[0])
    cols = _sample_index(shape[1], downsample, mask_downsample, mask.shape[1])
    return np.asarray(mask, dtype=bool)[np.ix_(rows, cols)]


def _sample_index(
    n: int, downsample: float, source_downsample: float, source_len: int
) -> np.ndarray:
    centres = (np.arange(n) + 0.5) * downsample
    return np.clip((centres / source_downsample).astype(np.int64), 0, source_len - 1)


def score_canvas(
    coords: np.ndarray,
    values: np.ndarray,
    patch_size_level0: float,
    shape: tuple[int, int],
    downsample: float,
    *,
    tissue: tuple[np.ndarray, float] | None = None,
    smooth_sigma_px: float = 0.0,
) -> np.ndarray:
    """Painted, optionally smoothed canvas, NaN outside ``tissue`` = (mask, mask downsample) when given."""
    canvas = smooth(
        paint_patches(coords, values, patch_size_level0, shape, downsample), smooth_sigma_px
    )
    if tissue is not None:
        canvas[~mask_on_canvas(tissue[0], tissue[1], shape, downsample)] = np.nan
    return canvas

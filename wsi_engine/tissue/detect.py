"""Classical tissue detection on a low-resolution RGB image of the whole slide.

Every length is given in µm (areas in µm²) by :class:`TissueConfig` and turned
into pixels with the image's µm/px, so one preset gives the same physical
result at any segmentation resolution. Steps, on an image at ``mpp`` µm/px:

1. **HSV.** Value ``V = max(R, G, B)``, saturation ``S = 255·(V − min)/V``
   (0..255, 0 for black) and, for the pen rule, whether the hue lies in a window.
2. **Exclusions** (pixels forced to background, before the threshold):

   * ``exclude_dark``: ``V < 40`` (scanner borders, unscanned black areas,
     dust): the saturation of near-black pixels is mostly noise.
   * ``exclude_pen``: blue/green marker ink, hue in [70°, 240°] (H&E tissue is
     pink to purple, hue ≥ 250° or ≤ 40°; low-saturation background may fall in
     the window too, harmlessly), and black/grey ink, ``V < 100`` with
     ``S < 77`` (0.3). Turn it off for stains with blue/green hues (IHC
     haematoxylin counterstain can be as blue as a marker).
3. **Threshold** on ``S``: Otsu's threshold of the histogram of the
   non-excluded pixels, but never below :data:`OTSU_FLOOR` (15): on a blank or
   pale image Otsu splits the background noise, so a floor keeps it from
   inventing tissue (a blank slide gives an empty mask). Method ``fixed`` uses
   ``threshold`` instead.
4. **Median filter** of width ``median_blur_um / mpp`` px (rounded to an odd
   ``k``; square window). A median of ``S`` followed by the threshold equals a
   majority vote of the thresholded pixels (tissue where more than half of the
   ``k×k`` window is above the threshold), which is what is computed: O(N)
   for any ``k``. Excluded pixels vote background.
5. **Closing** with a disk of radius ``closing_um / mpp`` px (Euclidean
   distance transforms, exact and O(N) for any radius; tissue touching the
   image edge is not eroded).
6. **Small pieces** (8-connected) under ``min_tissue_area_um2`` (``/ mpp²``
   px) are dropped.
7. **Holes** (background 4-connected pockets inside tissue) under
   ``min_hole_area_um2`` are filled; all holes are filled when ``keep_holes``
   is False.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from wsi_engine.tissue.config import TissueConfig
from wsi_engine.tissue.mask import EIGHT_CONNECTED, TissueMask, mask_downsample

OTSU_FLOOR = 15
"""Lowest saturation threshold (0..255) Otsu may choose: background noise stays below it."""

DARK_VALUE = 40
PEN_HUE_DEG = (70.0, 240.0)
BLACK_INK_VALUE = 100
BLACK_INK_SATURATION = 77


def detect_tissue(
    image: np.ndarray, mpp: float, config: TissueConfig, level0_size: tuple[int, int]
) -> TissueMask:
    """Tissue mask of ``image`` ((h, w, 3|4) uint8 RGB[A] of the whole slide at ``mpp`` µm/px).

    ``level0_size`` (w, h) of the slide sets the mask's downsample. A slide
    without tissue gives an all-False mask.
    """
    if image.ndim != 3 or image.shape[2] not in (3, 4) or image.dtype != np.uint8:
        raise ValueError(f"expected an (h, w, 3) uint8 RGB image, got {image.shape} {image.dtype}")
    channels = _channels(image[..., :3])
    saturation = _saturation(*channels[3:])
    excluded = _excluded(channels, saturation, config)
    threshold = _threshold(saturation, excluded, config)
    tissue = (saturation > threshold) & ~excluded
    tissue = _majority(tissue, _odd_width(config.median_blur_um / mpp))
    tissue = _close(tissue, config.closing_um / mpp)
    tissue = _drop_small_pieces(tissue, config.min_tissue_area_um2 / mpp**2)
    max_hole_px = np.inf if not config.keep_holes else config.min_hole_area_um2 / mpp**2
    tissue = _fill_holes(tissue, max_hole_px)
    return TissueMask(tissue, mask_downsample(level0_size, tissue.shape), float(mpp), "detected")


def _channels(rgb: np.ndarray) -> tuple[np.ndarray, ...]:
    """R, G, B, value and chroma (max − min) as int16 arrays."""
    r, g, b = (rgb[..., channel].astype(np.int16) for channel in range(3))
    value = np.maximum(np.maximum(r, g), b)
    return r, g, b, value, value - np.minimum(np.minimum(r, g), b)


def _saturation(value: np.ndarray, chroma: np.ndarray) -> np.ndarray:
    """HSV saturation scaled to 0..255 (uint8, rounded; 0 for black)."""
    scaled = np.float32(255) * chroma / np.maximum(value, 1).astype(np.float32)
    return np.rint(scaled).astype(np.uint8)


def _hue_in_pen_window(r, g, b, value, chroma) -> np.ndarray:
    """Hue within PEN_HUE_DEG, from the hue formula per largest channel without computing hue.

    Green largest: hue = 60·((B − R)/C + 2), from 60° to 180°; blue largest:
    hue = 60·((R − G)/C + 4), from 180° to 300°; red largest never qualifies.
    """
    low, high = PEN_HUE_DEG
    green_max = (g == value) & (r < g) & (b - r >= np.float32(low / 60 - 2) * chroma)
    blue_max = (b == value) & (r < b) & (g < b) & (r - g <= np.float32(high / 60 - 4) * chroma)
    return green_max | blue_max


def _excluded(
    channels: tuple[np.ndarray, ...], saturation: np.ndarray, config: TissueConfig
) -> np.ndarray:
    """Pixels forced to background: near-black, and pen ink (see the module docstring)."""
    value = channels[3]
    excluded = np.zeros(saturation.shape, dtype=bool)
    if config.exclude_dark:
        excluded |= value < DARK_VALUE
    if config.exclude_pen:
        excluded |= _hue_in_pen_window(*channels)
        excluded |= (value < BLACK_INK_VALUE) & (saturation < BLACK_INK_SATURATION)
    return excluded


def _threshold(saturation: np.ndarray, excluded: np.ndarray, config: TissueConfig) -> float:
    """Saturation threshold (tissue is above it): fixed, or Otsu on the non-excluded pixels with a floor."""
    if config.method == "fixed":
        return float(config.threshold)
    counts = np.bincount(saturation[~excluded], minlength=256)
    if (
        np.count_nonzero(counts) < 2
    ):  # one saturation level (or none): nothing to split, the floor decides
        return float(OTSU_FLOOR)
    return max(float(OTSU_FLOOR), float(otsu_threshold(counts)))


def otsu_threshold(counts: np.ndarray) -> int:
    """Otsu's threshold of a histogram of integer levels 0..len-1 (at least two levels used).

    The level maximising the between-class variance, the first on ties; the
    sums run in the same precision as scikit-image's ``threshold_otsu(hist=...)``
    (float32 weights), which gives the same level (tested) without importing
    ``skimage.filters`` (half a second).
    """
    used = np.flatnonzero(counts)
    levels = np.arange(used[0], used[-1] + 1)
    weights = np.asarray(counts)[levels].astype(np.float32)
    below = np.cumsum(weights)
    above = np.cumsum(weights[::-1])[::-1]
    mean_below = np.cumsum(weights * levels) / below
    mean_above = (np.cumsum((weights * levels)[::-1]) / above[::-1])[::-1]
    variance = below[:-1] * above[1:] * (mean_below[:-1] - mean_above[1:]) ** 2
    return int(levels[np.argmax(variance)])


def _odd_width(width_px: float) -> int:
    """Odd window width (px) for ``width_px``: 2·⌊w/2⌋ + 1 (1 = no filtering)."""
    return 2 * int(width_px / 2) + 1


def _majority(tissue: np.ndarray, width: int) -> np.ndarray:
    """Binary median: True where more than half of the ``width × width`` window is True."""
    if width <= 1:
        return tissue
    return ndi.uniform_filter(tissue.astype(np.float32), size=width, mode="reflect") > 0.5


def _close(tissue: np.ndarray, radius_px: float) -> np.ndarray:
    """Morphological closing with a disk of ``radius_px`` (dilation then erosion).

    Exactly ``distance_transform_edt(~t) <= r`` followed by ``distance_transform_edt(d) > r`` on
    the mask padded by ``ceil(r) + 1``, computed as unions of shifted row-wise maxima, several
    times faster than the two distance transforms.
    """
    if radius_px < 1 or not tissue.any():
        return tissue
    pad = int(np.ceil(radius_px)) + 1
    dilated = _dilate_disk(np.pad(tissue, pad), radius_px)
    closed = ~_dilate_disk(~dilated, radius_px)
    return closed[pad:-pad, pad:-pad]


def _dilate_disk(mask: np.ndarray, radius_px: float) -> np.ndarray:
    """Pixels within Euclidean distance ``radius_px`` of a True pixel of ``mask`` (outside = False).

    The union, over row offsets ``dy``, of the row-wise dilation by ``floor(sqrt(r² - dy²))``
    shifted by ``dy``; ``mask`` must have more than ``2 r`` rows.
    """
    out = np.zeros_like(mask)
    rows, reach = mask.shape[0], int(np.floor(radius_px))
    by_width: dict[int, np.ndarray] = {}
    for dy in range(-reach, reach + 1):
        width = int(np.floor(np.sqrt(radius_px * radius_px - dy * dy)))
        if width not in by_width:
            by_width[width] = ndi.maximum_filter1d(
                mask.view(np.uint8), size=2 * width + 1, axis=1, mode="constant", cval=0
            ).view(bool)
        rows_dilated = by_width[width]
        if dy >= 0:
            out[dy:] |= rows_dilated[: rows - dy]
        else:
            out[:dy] |= rows_dilated[-dy:]
    return out


def _drop_small_pieces(tissue: np.ndarray, min_area_px: float) -> np.ndarray:
    """Remove 8-connected tissue pieces with fewer than ``min_area_px`` pixels."""
    labels, count = ndi.label(tissue, structure=EIGHT_CONNECTED)
    if count == 0:
        return tissue
    keep = np.bincount(labels.ravel()) >= min_area_px
    keep[0] = False
    return keep[labels]


def _fill_holes(tissue: np.ndarray, max_hole_px: float) -> np.ndarray:
    """Fill background pockets (4-connected, not touching the edge) smaller than ``max_hole_px`` pixels."""
    holes = ndi.binary_fill_holes(tissue) & ~tissue
    labels, count = ndi.label(holes)
    if count == 0:
        return tissue
    fill = np.bincount(labels.ravel()) < max_hole_px
    fill[0] = False
    return tissue | fill[labels]

"""Cut patches out of region reads and bring them to the stored size.

Each region of :func:`~wsi_engine.tiling.regions.plan_regions` is read once
at the grid's read level; each patch is the ``window``-px square at its
read-level position. When ``window == patch_size`` the square is copied as is,
so ``lossless`` stores hold exactly the pixels an independent
``read_region(coords, read_level, (S, S))`` returns. Otherwise it is resized
to ``patch_size`` px by the geometry's ``resample`` method:

* ``jpeg-scaled`` (window = 2, 4 or 8 × patch_size): the region is read
  reduced that many times (:meth:`~wsi_engine.slide.SlideReader.read_region_scaled`:
  JPEG tiles decoded at that scale by libjpeg where the reader can, else
  decoded pixels averaged), and the patch is cut from it as is;
* ``area``: the mean of each block of window/patch_size px (Pillow's
  ``reduce`` for whole ratios, its area-weighted ``BOX`` filter otherwise);
* ``lanczos``: Pillow's Lanczos filter (a = 3), whose kernel Pillow widens by
  the scale factor when shrinking: antialiased, sharper than area averaging.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from PIL import Image

from wsi_engine.slide import SlideReader
from wsi_engine.slide.reader import reduce_area
from wsi_engine.tiling.grid import GridGeometry, Resample
from wsi_engine.tiling.regions import plan_regions


def for_reader(geometry: GridGeometry, reader: SlideReader) -> GridGeometry:
    """``geometry`` with ``jpeg-scaled`` narrowed to ``area`` where ``reader`` does not decode
    the read level's tiles at that scale (the pixels are the same: the store says which)."""
    if geometry.resample != "jpeg-scaled" or reader.scaled_decoding(
        geometry.read_level, geometry.reduction or 1
    ):
        return geometry
    return replace(geometry, resample="area")


def resize_patch(pixels: np.ndarray, size: int, resample: Resample = "lanczos") -> np.ndarray:
    """``pixels`` (h, w, 3) uint8 resized to (size, size, 3) by ``resample``
    (``jpeg-scaled`` windows that were not read reduced are averaged like ``area``)."""
    if pixels.shape[:2] == (size, size):
        return pixels
    if resample == "lanczos":
        return np.asarray(Image.fromarray(pixels).resize((size, size), Image.Resampling.LANCZOS))
    factor = pixels.shape[0] // size
    if pixels.shape[:2] == (factor * size, factor * size):
        return reduce_area(pixels, factor)
    return np.asarray(Image.fromarray(pixels).resize((size, size), Image.Resampling.BOX))


def extract_patches(
    reader: SlideReader, geometry: GridGeometry, coords: np.ndarray, region_size: int
) -> np.ndarray:
    """(N, S, S, 3) uint8 RGB patches at level-0 ``coords`` (N, 2), read region by region."""
    level = geometry.read_level
    level_xy = geometry.to_level(coords)
    size = geometry.patch_size
    window = geometry.window
    factor = (geometry.reduction or 1) if geometry.resample == "jpeg-scaled" else 1
    out = np.empty((len(level_xy), size, size, 3), dtype=np.uint8)
    regions = plan_regions(
        level_xy, window, region_size, reader.tile_size(level), reader.level_dimensions[level]
    )
    cut = window // factor  # px of the (reduced) region per patch
    for region in regions:
        # patches start at multiples of factor (their stride is one): so does the region read,
        # and it spans whole blocks (past the level's edge, white px no patch uses)
        x, y = region.x - region.x % factor, region.y - region.y % factor
        origin = geometry.to_level0(np.array([x, y]))
        location = (int(origin[0]), int(origin[1]))
        right, bottom = region.x + region.width - x, region.y + region.height - y
        extent = (-(-right // factor) * factor, -(-bottom // factor) * factor)
        if factor > 1:
            pixels = reader.read_region_scaled(location, level, extent, factor)
        else:
            pixels = reader.read_region(location, level, extent)
        for index in region.patches:
            ox = (int(level_xy[index, 0]) - x) // factor
            oy = (int(level_xy[index, 1]) - y) // factor
            out[index] = resize_patch(pixels[oy : oy + cut, ox : ox + cut], size, geometry.resample)
    return out

"""Cut patches out of region reads and bring them to the stored size.

Each region of :func:`~wsi_engine.tiling.regions.plan_regions` is read once
at the grid's read level; each patch is the ``window``-px square at its
read-level position. When ``window == patch_size`` the square is copied as is,
so ``lossless`` stores hold exactly the pixels an independent
``read_region(coords, read_level, (S, S))`` returns. Otherwise it is resized
to ``patch_size`` px with Pillow's Lanczos filter (a = 3), whose kernel Pillow
widens by the scale factor when shrinking: antialiased, sharp, in C.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from wsi_engine.slide import SlideReader
from wsi_engine.tiling.grid import GridGeometry
from wsi_engine.tiling.regions import plan_regions

RESAMPLING = Image.Resampling.LANCZOS


def resize_patch(pixels: np.ndarray, size: int) -> np.ndarray:
    """``pixels`` (h, w, 3) uint8 resized to (size, size, 3) with :data:`RESAMPLING`."""
    if pixels.shape[:2] == (size, size):
        return pixels
    return np.asarray(Image.fromarray(pixels).resize((size, size), RESAMPLING))


def extract_patches(
    reader: SlideReader, geometry: GridGeometry, coords: np.ndarray, region_size: int
) -> np.ndarray:
    """(N, S, S, 3) uint8 RGB patches at level-0 ``coords`` (N, 2), read region by region."""
    level = geometry.read_level
    level_xy = geometry.to_level(coords)
    size = geometry.patch_size
    window = geometry.window
    out = np.empty((len(level_xy), size, size, 3), dtype=np.uint8)
    regions = plan_regions(
        level_xy, window, region_size, reader.tile_size(level), reader.level_dimensions[level]
    )
    for region in regions:
        origin = geometry.to_level0(np.array([region.x, region.y]))
        pixels = reader.read_region(
            (int(origin[0]), int(origin[1])), level, (region.width, region.height)
        )
        for index in region.patches:
            ox = int(level_xy[index, 0]) - region.x
            oy = int(level_xy[index, 1]) - region.y
            out[index] = resize_patch(pixels[oy : oy + window, ox : ox + window], size)
    return out

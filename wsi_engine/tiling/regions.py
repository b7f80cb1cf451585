"""Group patches into large reads aligned to the slide's source tiles.

One ``read_region`` per patch decodes every source tile a patch touches, over
and over for neighbouring patches; one read per region decodes each tile of
the region once and cuts many patches from it (the reference notes measured
about 3x with tiffslide). :func:`plan_regions` assigns each patch to the
``region_size``-px cell (read-level px) holding its top-left corner; the
region of a cell is the bounding box of its patches' windows, widened to whole
source tiles (``tile_size``) and clipped to the level. A region is therefore at
most about ``region_size + window + 2 tiles`` px on a side, which bounds the
memory of a worker whatever the slide size. Patches keep their order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Region:
    """A rectangle of the read level (px) and the indices of the patches cut from it."""

    x: int
    y: int
    width: int
    height: int
    patches: np.ndarray
    """indices into the patch list given to :func:`plan_regions`, ascending"""


def plan_regions(
    level_xy: np.ndarray,
    window: int,
    region_size: int,
    tile_size: tuple[int, int] | None,
    level_size: tuple[int, int],
) -> list[Region]:
    """Regions covering the windows at ``level_xy`` ((N, 2) read-level px), in order of first patch.

    ``tile_size`` (w, h) of the source tiles at the read level, ``None`` for
    untiled images (no alignment); ``level_size`` (w, h) of the level.
    """
    level_xy = np.asarray(level_xy, dtype=np.int64).reshape(-1, 2)
    if len(level_xy) == 0:
        return []
    tile_w, tile_h = tile_size or (1, 1)
    cells = level_xy // region_size
    _, first, group = np.unique(cells, axis=0, return_index=True, return_inverse=True)
    regions = []
    for cell in np.argsort(first, kind="stable"):
        members = np.flatnonzero(group.reshape(-1) == cell)
        lo = level_xy[members].min(axis=0)
        hi = level_xy[members].max(axis=0) + window
        x0, y0 = (lo[0] // tile_w) * tile_w, (lo[1] // tile_h) * tile_h
        x1 = max(int(hi[0]), min(-(-int(hi[0]) // tile_w) * tile_w, level_size[0]))
        y1 = max(int(hi[1]), min(-(-int(hi[1]) // tile_h) * tile_h, level_size[1]))
        regions.append(Region(int(x0), int(y0), int(x1 - x0), int(y1 - y0), members))
    return regions

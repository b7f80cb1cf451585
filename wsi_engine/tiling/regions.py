"""Group patches into large reads aligned to the slide's source tiles.

One ``read_region`` per patch decodes every source tile a patch touches, over
and over for neighbouring patches, and pays the reader's per-call overhead
(several times the decoding of a tile with tiffslide) for every patch. One
read per region decodes each tile of the region once and cuts many patches
from it.

:func:`plan_regions` walks the patches in their (row-major) order and grows
the current region with each next patch while that keeps the region's
bounding box, widened to whole source tiles (``tile_size``) and clipped to
the level, within ``region_size²`` px and adds at most two patch areas of
pixels (a neighbour in the same row, not a jump to another row or across
background). Within the row-major shards of a dense slide that gives long
strips of up to ``region_size² / window`` px; the area bound caps the memory
of a worker whatever the slide size. Patches keep their order.
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
    """Regions covering the ``window``-px squares at ``level_xy`` ((N, 2) read-level px), in order.

    ``tile_size`` (w, h) of the source tiles at the read level, ``None`` for
    untiled images (no alignment); ``level_size`` (w, h) of the level.
    """
    level_xy = np.asarray(level_xy, dtype=np.int64).reshape(-1, 2)
    tile = tile_size or (1, 1)
    budget, extra = region_size * region_size, 2 * window * window

    def aligned(box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        x0, y0, x1, y1 = box
        x0, y0 = x0 // tile[0] * tile[0], y0 // tile[1] * tile[1]
        x1 = max(x1, min(-(-x1 // tile[0]) * tile[0], level_size[0]))
        y1 = max(y1, min(-(-y1 // tile[1]) * tile[1], level_size[1]))
        return x0, y0, x1, y1

    def area(box: tuple[int, int, int, int]) -> int:
        return (box[2] - box[0]) * (box[3] - box[1])

    regions: list[Region] = []
    members: list[int] = []
    box = (0, 0, 0, 0)
    for index, (x, y) in enumerate(level_xy.tolist()):
        patch = aligned((x, y, x + window, y + window))
        grown = aligned(
            (min(box[0], x), min(box[1], y), max(box[2], x + window), max(box[3], y + window))
        )
        if members and area(grown) <= budget and area(grown) - area(box) <= extra:
            members.append(index)
            box = grown
            continue
        if members:
            regions.append(_region(box, members))
        members, box = [index], patch
    if members:
        regions.append(_region(box, members))
    return regions


def _region(box: tuple[int, int, int, int], members: list[int]) -> Region:
    x0, y0, x1, y1 = box
    return Region(x0, y0, x1 - x0, y1 - y0, np.array(members, dtype=np.int64))

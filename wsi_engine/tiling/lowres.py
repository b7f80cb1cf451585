"""Low-resolution images of a whole slide (segmentation input, thumbnail) in bounded memory.

:func:`read_downsampled` reads the coarsest pyramid level that is at least as
fine as the requested size, block by block (at most :data:`BLOCK_PX` px of
that level on a side), and shrinks each block by area averaging into its
place in the output. A slide without a coarse level (a single-level image) is
thus never held whole at full resolution. Where that level is at least 2, 4
or 8 times finer than the output and its JPEG tiles can be decoded at that
scale (:meth:`~wsi_engine.slide.SlideReader.scaled_decoding`), blocks are read
so reduced (block means, without decoding every pixel) and shrunk the rest of
the way: the level is then treated as ``floor(size / k)`` px, leaving out at
most k - 1 level px at its right and bottom edges.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from wsi_engine.slide import SlideReader
from wsi_engine.slide.reader import JPEG_SCALES
from wsi_engine.tiling.grid import to_level0

BLOCK_PX = 2048
"""Largest side, in px of the level read, of one block."""


def fit_size(level0_size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """(w, h) of a slide of ``level0_size`` scaled to fit ``max_side`` px (never enlarged)."""
    scale = min(1.0, max_side / max(level0_size))
    return max(1, round(level0_size[0] * scale)), max(1, round(level0_size[1] * scale))


def shrink(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` (h, w, 3) uint8 resized to ``size`` (w, h) px by area averaging (returned as is if equal)."""
    if (image.shape[1], image.shape[0]) == tuple(size):
        return image
    return np.asarray(Image.fromarray(image).resize(tuple(size), Image.Resampling.BOX))


def read_downsampled(reader: SlideReader, size: tuple[int, int]) -> np.ndarray:
    """The whole slide as an (h, w, 3) uint8 RGB image of ``size`` (w, h) px."""
    out_w, out_h = size
    width, height = reader.dimensions
    level = reader.best_level_for_downsample(min(width / out_w, height / out_h))
    level_w, level_h = reader.level_dimensions[level]
    downsample = reader.level_downsamples[level]
    scale = min(level_w / out_w, level_h / out_h)
    factor = max(
        (k for k in JPEG_SCALES if k <= scale and reader.scaled_decoding(level, k)), default=1
    )
    source_w, source_h = level_w // factor, level_h // factor  # px of the level read reduced

    def read(x: int, y: int, w: int, h: int) -> np.ndarray:
        """Source px [x, x + w) × [y, y + h) of the level reduced ``factor`` times."""
        origin = to_level0(np.array([x * factor, y * factor]), downsample)
        location = (int(origin[0]), int(origin[1]))
        if factor == 1:
            return reader.read_region(location, level, (w, h))
        return reader.read_region_scaled(location, level, (w * factor, h * factor), factor)

    fx, fy = source_w / out_w, source_h / out_h
    step_x = max(1, math.floor(BLOCK_PX / (fx * factor)))
    step_y = max(1, math.floor(BLOCK_PX / (fy * factor)))
    out = np.empty((out_h, out_w, 3), dtype=np.uint8)
    for r0 in range(0, out_h, step_y):
        r1 = min(out_h, r0 + step_y)
        ly0, ly1 = (
            math.floor(r0 * fy),
            min(source_h, max(math.floor(r0 * fy) + 1, math.ceil(r1 * fy))),
        )
        for c0 in range(0, out_w, step_x):
            c1 = min(out_w, c0 + step_x)
            lx0, lx1 = (
                math.floor(c0 * fx),
                min(source_w, max(math.floor(c0 * fx) + 1, math.ceil(c1 * fx))),
            )
            block = read(lx0, ly0, lx1 - lx0, ly1 - ly0)
            if block.shape[:2] != (r1 - r0, c1 - c0):
                block = np.asarray(
                    Image.fromarray(block).resize((c1 - c0, r1 - r0), Image.Resampling.BOX)
                )
            out[r0:r1, c0:c1] = block
    return out

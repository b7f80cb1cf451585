"""The tissue mask of a slide and the tissue fraction of level-0 boxes (patches) read from it."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)
"""Tissue pieces are 8-connected and background pockets (holes) 4-connected, in detection and export alike."""


@dataclass(eq=False)
class TissueMask:
    """A binary tissue mask spanning the whole level-0 extent of a slide.

    Mask pixel ``(row, col)`` covers level-0 x in ``[col·dsx, (col+1)·dsx)`` and
    y in ``[row·dsy, (row+1)·dsy)``. Treat ``mask`` as read-only once
    :meth:`fraction_in_boxes` has been called (its summed-area table is cached).
    """

    mask: np.ndarray  # (h, w) bool, True = tissue
    downsample: tuple[float, float]  # level-0 px per mask px along x and y
    mpp: float  # µm per mask px (x)
    source: str  # "detected" | "geojson:<file name>" | "mask:<file name>"

    @classmethod
    def spanning(
        cls, mask: np.ndarray, level0_size: tuple[int, int], mpp_level0: float, source: str
    ) -> TissueMask:
        """Wrap a mask assumed to cover the slide of ``level0_size`` (w, h) px at ``mpp_level0`` µm/px."""
        downsample = mask_downsample(level0_size, mask.shape)
        return cls(mask.astype(bool, copy=False), downsample, mpp_level0 * downsample[0], source)

    @property
    def level0_size(self) -> tuple[int, int]:
        """(w, h) of the slide in level-0 px, as spanned by the mask."""
        h, w = self.mask.shape
        return round(w * self.downsample[0]), round(h * self.downsample[1])

    @cached_property
    def _summed_area(self) -> np.ndarray:
        """(h+1, w+1) float64 table: ``S[i, j]`` = tissue px in ``mask[:i, :j]``."""
        table = np.zeros((self.mask.shape[0] + 1, self.mask.shape[1] + 1), dtype=np.float64)
        np.cumsum(np.cumsum(self.mask, axis=0, dtype=np.float64), axis=1, out=table[1:, 1:])
        return table

    def _integral(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Tissue area (mask px²) in ``[0, rows) × [0, cols)`` for fractional rows/cols.

        The mask is piecewise constant, so its integral is exactly the bilinear
        interpolation of the summed-area table between integer corners.
        """
        h, w = self.mask.shape
        rows = np.clip(rows, 0.0, h)
        cols = np.clip(cols, 0.0, w)
        r0 = np.minimum(np.floor(rows).astype(np.int64), h - 1)
        c0 = np.minimum(np.floor(cols).astype(np.int64), w - 1)
        fr, fc = rows - r0, cols - c0
        s = self._summed_area
        top = s[r0, c0] * (1 - fc) + s[r0, c0 + 1] * fc
        bottom = s[r0 + 1, c0] * (1 - fc) + s[r0 + 1, c0 + 1] * fc
        return top * (1 - fr) + bottom * fr

    def fraction_in_boxes(self, xy: np.ndarray, size_level0: float) -> np.ndarray:
        """Tissue fraction (N,) float32 in [0, 1] of square boxes.

        ``xy`` (N, 2) holds level-0 x, y of each box's top-left corner; each box
        has side ``size_level0`` level-0 px. Mask pixels partly inside a box
        count by the covered area; parts of a box outside the slide count as
        background.
        """
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        dsx, dsy = self.downsample
        c0, r0 = xy[:, 0] / dsx, xy[:, 1] / dsy
        c1, r1 = c0 + size_level0 / dsx, r0 + size_level0 / dsy
        inside = (
            self._integral(r1, c1)
            - self._integral(r0, c1)
            - self._integral(r1, c0)
            + self._integral(r0, c0)
        )
        box_area = (size_level0 / dsx) * (size_level0 / dsy)
        return np.clip(inside / box_area, 0.0, 1.0).astype(np.float32)


def mask_downsample(
    level0_size: tuple[int, int], mask_shape: tuple[int, ...]
) -> tuple[float, float]:
    """Level-0 px per mask px (x, y) of a (h, w, ...) mask spanning a (w, h) level-0 slide."""
    return level0_size[0] / mask_shape[1], level0_size[1] / mask_shape[0]


def segmentation_size(
    level0_size: tuple[int, int], level0_mpp: float, seg_mpp: float
) -> tuple[int, int]:
    """(w, h) in px of the whole slide read at ``seg_mpp`` µm/px (never above level-0 size, at least 1)."""
    scale = min(1.0, level0_mpp / seg_mpp)
    return tuple(max(1, round(side * scale)) for side in level0_size)

"""The patch grid of one slide at a target µm/px.

Geometry (:func:`grid_geometry`), with ``mpp0`` the slide's level-0 µm/px
along x (pixels are assumed square; when x and y differ by more than 1 % the
grid gets the flag ``non-square-pixels`` and y is treated like x):

* needed downsample ``D = target_mpp / mpp0`` (level-0 px per stored px);
* read level: the coarsest pyramid level whose downsample ``d`` is at most
  ``D · (1 + mpp_tolerance)``, so patches are never upsampled unless even
  level 0 is coarser than the target (flag ``upsampled``);
* window: the side, in read-level px, of the square cut for one patch. When
  ``D / d`` is within ``mpp_tolerance`` of 1 the window is exactly
  ``patch_size`` and the patch is copied without resampling (scanners report
  0.499 or 0.5034 µm/px for a nominal 0.5). Likewise, unless ``resample``
  is ``lanczos`` (the grid of earlier versions), when ``D / d`` is within
  ``mpp_tolerance`` of a whole number k ≥ 2 the window is exactly
  ``k · patch_size`` (a 0.2498 µm/px 40x scan read at 0.5: k = 2), so each
  stored px is the mean of a k × k block. Otherwise it is
  ``round(patch_size · D / d)`` px, resized to ``patch_size`` px with
  antialiasing (:mod:`wsi_engine.tiling.extract`);
* resample: how the window is brought to ``patch_size`` px: ``none`` (copied),
  else the configured ``resample`` narrowed to what applies: ``jpeg-scaled``
  only for an integer window/patch ratio of 2, 4 or 8 (else ``area``), and
  ``lanczos`` whenever patches are upsampled (area averaging cannot enlarge);
* ``patch_size_level0 = window · d`` level-0 px, and the µm/px actually stored,
  ``effective_mpp = patch_size_level0 · mpp0 / patch_size``;
* stride ``(patch_size − overlap) · window / patch_size`` read-level px.

Positions are computed in read-level px, ``lx = round(i · stride)`` for every
``i`` with ``lx + window ≤`` the level's width (same for y), so every patch
lies inside the slide; level-0 coordinates are ``ceil(lx · d)``, the smallest
level-0 pixel that OpenSlide and tiffslide map back to ``lx`` (``int(x / d)``).
The order is row-major: y, then x. A patch is kept when its tissue fraction
(:meth:`~wsi_engine.tissue.TissueMask.fraction_in_boxes`, an integral image
over the mask) is at least ``min_tissue_fraction``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from wsi_engine.slide.reader import JPEG_SCALES
from wsi_engine.store.attrs import TilingSection
from wsi_engine.tiling.config import TilingConfig
from wsi_engine.tissue.mask import TissueMask

_ROW_BLOCK = 256
"""Grid rows whose tissue fractions are computed at once (bounds memory on huge grids)."""

_EPS = 1e-6

Resample = Literal["none", "jpeg-scaled", "area", "lanczos"]
"""How a read window becomes a patch (see the module docstring)."""


def to_level0(level_px: np.ndarray, downsample: float) -> np.ndarray:
    """Level-0 px (int64) of read-level px ``level_px`` at ``downsample``: ``ceil(lx · d)``.

    The smallest level-0 position that OpenSlide and tiffslide map back to
    ``lx`` (they read level ``x / d``, truncated), exact for any downsample.
    """
    return np.ceil(np.asarray(level_px, dtype=np.float64) * downsample - _EPS).astype(np.int64)


@dataclass(frozen=True)
class GridGeometry:
    """Where and how patches are cut: see the module docstring for the definitions."""

    patch_size: int
    """side S of a stored patch, px at ``target_mpp``"""
    target_mpp: float
    level0_mpp: float
    read_level: int
    read_downsample: float
    """level-0 px per read-level px"""
    window: int
    """side of the square cut for one patch, read-level px"""
    stride: float
    """distance between neighbouring patches, read-level px"""
    overlap: int
    """overlap of neighbours, px at ``target_mpp``"""
    resample: Resample = "none"
    """how a window larger or smaller than ``patch_size`` is resized to it"""

    @property
    def patch_size_level0(self) -> float:
        """Side of a patch in level-0 px."""
        return self.window * self.read_downsample

    @property
    def effective_mpp(self) -> float:
        """µm/px of the stored patches (equals ``target_mpp`` up to the tolerance or rounding)."""
        return self.patch_size_level0 * self.level0_mpp / self.patch_size

    @property
    def resized(self) -> bool:
        """Whether cut windows are resampled to ``patch_size`` px."""
        return self.window != self.patch_size

    @property
    def reduction(self) -> int | None:
        """``window / patch_size`` when it is a whole number of at least 2, else ``None``."""
        factor, remainder = divmod(self.window, self.patch_size)
        return factor if factor >= 2 and remainder == 0 else None

    def to_level(self, coords: np.ndarray) -> np.ndarray:
        """(N, 2) level-0 x, y → read-level x, y (int64), the inverse of :meth:`to_level0`."""
        return np.floor(np.asarray(coords, dtype=np.float64) / self.read_downsample + _EPS).astype(
            np.int64
        )

    def to_level0(self, level_xy: np.ndarray) -> np.ndarray:
        """(N, 2) read-level x, y → level-0 x, y (int64): ``ceil(lx · d)``."""
        return to_level0(level_xy, self.read_downsample)

    @classmethod
    def from_attrs(cls, tiling: TilingSection, level0_mpp: float | None) -> GridGeometry:
        """The geometry a store was tiled with, from its ``tiling`` section (the inverse of :meth:`attrs`).

        ``level0_mpp``: the slide's level-0 µm/px (NaN when unknown, e.g. an
        import). Stores that did not record ``read_window`` get it from the
        level-0 patch size; stores that did not record ``resample`` were
        resized with Lanczos.
        """
        window = tiling.read_window or round(tiling.patch_size_level0 / tiling.read_downsample)
        resample = tiling.resample or ("lanczos" if window != tiling.patch_size else "none")
        return cls(
            patch_size=tiling.patch_size,
            target_mpp=tiling.target_mpp,
            level0_mpp=float("nan") if level0_mpp is None else level0_mpp,
            read_level=tiling.read_level,
            read_downsample=tiling.read_downsample,
            window=window,
            stride=(tiling.patch_size - tiling.overlap) * window / tiling.patch_size,
            overlap=tiling.overlap,
            resample=resample,
        )

    def attrs(self) -> dict[str, Any]:
        """The geometric part of the store's ``tiling`` attributes (docs/store.md)."""
        return {
            "patch_size": self.patch_size,
            "target_mpp": self.target_mpp,
            "effective_mpp": self.effective_mpp,
            "patch_size_level0": self.patch_size_level0,
            "overlap": self.overlap,
            "read_level": self.read_level,
            "read_downsample": self.read_downsample,
            "read_window": self.window,
            "resample": self.resample,
        }


@dataclass(frozen=True)
class PatchGrid:
    """The kept patches of a slide: coordinates, tissue fractions, geometry and flags."""

    geometry: GridGeometry
    coords: np.ndarray
    """(N, 2) int64 level-0 x, y of each patch's top-left corner, row-major"""
    tissue_fraction: np.ndarray
    """(N,) float32 in [0, 1]"""
    n_candidates: int
    """grid positions inside the slide before the tissue filter"""
    flags: tuple[str, ...]


def grid_geometry(
    level_downsamples: tuple[float, ...], mpp: tuple[float, float], config: TilingConfig
) -> tuple[GridGeometry, tuple[str, ...]]:
    """Read level, window and stride for ``config`` on a slide with level-0 µm/px ``mpp`` (x, y); and flags."""
    mpp_x, mpp_y = mpp
    flags: list[str] = []
    if abs(mpp_x - mpp_y) > 0.01 * mpp_x:
        flags.append("non-square-pixels")
    tolerance = config.mpp_tolerance
    needed = config.target_mpp / mpp_x
    limit = needed * (1 + tolerance)
    level = max((i for i, d in enumerate(level_downsamples) if d <= limit), default=0)
    downsample = float(level_downsamples[level])
    scale = needed / downsample
    whole = round(scale)
    if abs(scale - 1) <= tolerance:
        window = config.patch_size
    elif config.resample != "lanczos" and whole >= 2 and abs(scale / whole - 1) <= tolerance:
        window = whole * config.patch_size
    else:
        window = max(1, round(config.patch_size * scale))
        if scale < 1:
            flags.append("upsampled")
    geometry = GridGeometry(
        patch_size=config.patch_size,
        target_mpp=config.target_mpp,
        level0_mpp=mpp_x,
        read_level=level,
        read_downsample=downsample,
        window=window,
        stride=(config.patch_size - config.overlap) * window / config.patch_size,
        overlap=config.overlap,
    )
    return replace(geometry, resample=_resample(geometry, config.resample)), tuple(flags)


def _resample(geometry: GridGeometry, wanted: str) -> Resample:
    """The configured method narrowed to what applies to ``geometry`` (module docstring)."""
    if not geometry.resized:
        return "none"
    if geometry.window < geometry.patch_size:
        return "lanczos"
    if wanted == "jpeg-scaled" and geometry.reduction not in JPEG_SCALES:
        return "area"
    return wanted  # type: ignore[return-value]  # one of the config's literals


def axis_positions(level_length: int, window: int, stride: float) -> np.ndarray:
    """Read-level start positions ``round(i · stride)`` of windows fitting in ``level_length`` px."""
    if level_length < window:
        return np.zeros(0, dtype=np.int64)
    count = math.floor((level_length - window) / stride + _EPS) + 1
    positions = np.rint(np.arange(count) * stride).astype(np.int64)
    return positions[positions + window <= level_length]


def plan_grid(
    level_dimensions: tuple[tuple[int, int], ...],
    level_downsamples: tuple[float, ...],
    mpp: tuple[float, float],
    config: TilingConfig,
    tissue: TissueMask,
) -> PatchGrid:
    """The patches of a slide kept by ``config.min_tissue_fraction`` on ``tissue``, row-major."""
    geometry, flags = grid_geometry(level_downsamples, mpp, config)
    level_w, level_h = level_dimensions[geometry.read_level]
    xs = axis_positions(level_w, geometry.window, geometry.stride)
    ys = axis_positions(level_h, geometry.window, geometry.stride)
    x0 = geometry.to_level0(xs)
    coords_parts: list[np.ndarray] = []
    fraction_parts: list[np.ndarray] = []
    for start in range(0, len(ys), _ROW_BLOCK):
        y0 = geometry.to_level0(ys[start : start + _ROW_BLOCK])
        xy = np.stack(np.broadcast_arrays(x0[np.newaxis, :], y0[:, np.newaxis]), axis=-1).reshape(
            -1, 2
        )
        fraction = tissue.fraction_in_boxes(xy, geometry.patch_size_level0)
        keep = fraction >= config.min_tissue_fraction
        coords_parts.append(xy[keep])
        fraction_parts.append(fraction[keep])
    coords = np.concatenate(coords_parts) if coords_parts else np.zeros((0, 2), dtype=np.int64)
    fractions = np.concatenate(fraction_parts) if fraction_parts else np.zeros(0, dtype=np.float32)
    n_candidates = len(xs) * len(ys)
    if n_candidates == 0:
        flags = (*flags, "slide-smaller-than-patch")
    return PatchGrid(
        geometry=geometry,
        coords=coords.astype(np.int64, copy=False),
        tissue_fraction=fractions.astype(np.float32, copy=False),
        n_candidates=n_candidates,
        flags=flags,
    )

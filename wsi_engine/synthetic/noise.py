"""Deterministic procedural noise evaluated at arbitrary level-0 coordinates.

Every function here is a pure function of level-0 pixel coordinates and an
integer seed, so any tile of any pyramid level can be rendered on its own.
Coordinates are 1-D arrays of pixel-centre positions (level-0 pixels) along x
and y; a tile is the outer product ``ys × xs``, which keeps lattice noise
separable: one octave interpolates a small lattice first along x, then y.

Band limiting: a pixel of a coarse pyramid level covers ``footprint`` level-0
pixels, so octaves whose lattice spacing is finer than about two footprints are
faded out (:func:`detail_weight`), which is what downsampling a real scan does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

_MIX_X = np.uint32(0x9E3779B1)
_MIX_Y = np.uint32(0x85EBCA77)
_MIX_SEED = np.uint32(0xC2B2AE3D)


def hash_uniform(iy: np.ndarray, ix: np.ndarray, seed: int) -> np.ndarray:
    """Hash integer lattice coordinates to float32 values uniform in [-1, 1).

    ``iy`` and ``ix`` broadcast against each other; the same (iy, ix, seed)
    always gives the same value (a 32-bit integer mix, no global RNG state).
    """
    with np.errstate(over="ignore"):
        h = (
            np.asarray(ix, dtype=np.int64).astype(np.uint32) * _MIX_X
            ^ np.asarray(iy, dtype=np.int64).astype(np.uint32) * _MIX_Y
            ^ np.uint32(seed & 0xFFFFFFFF) * _MIX_SEED
        )
        h ^= h >> np.uint32(16)
        h *= np.uint32(0x7FEB352D)
        h ^= h >> np.uint32(15)
        h *= np.uint32(0x846CA68B)
        h ^= h >> np.uint32(16)
    return (h >> np.uint32(8)).astype(np.float32) * np.float32(2.0 / (1 << 24)) - np.float32(1.0)


def pixel_centres(start: int, count: int, step: float) -> np.ndarray:
    """Level-0 coordinates of ``count`` pixel centres of a level with downsample ``step``.

    ``start`` is the first pixel index at that level; pixel ``i`` covers level-0
    ``[i * step, (i + 1) * step)``.
    """
    return ((np.arange(start, start + count, dtype=np.float64) + 0.5) * step).astype(np.float32)


@dataclass(frozen=True)
class _Lerp:
    """Where 1-D coordinates fall on a lattice with nodes every ``spacing`` level-0 px.

    ``nodes`` lists the lattice indices some coordinate needs (node ``j`` sits
    at ``nodes[j] * spacing``); coordinate ``p`` lies between nodes
    ``index[p]`` and ``index[p] + 1`` at fraction ``t[p]``. Listing only the
    needed nodes keeps sparse samples of a fine lattice cheap.
    """

    nodes: np.ndarray
    index: np.ndarray
    t: np.ndarray


def _lerp(coords: np.ndarray, spacing: float, smooth: bool) -> _Lerp:
    """Locate ``coords`` on the lattice; ``smooth`` applies smoothstep to the fractions."""
    u = coords.astype(np.float64) / spacing
    cell = np.floor(u).astype(np.int64)
    t = (u - cell).astype(np.float32)
    if smooth:
        t = t * t * (3.0 - 2.0 * t)
    nodes, inverse = np.unique(np.concatenate([cell, cell + 1]), return_inverse=True)
    return _Lerp(nodes, inverse[: coords.size], t)


def _interpolate(values: np.ndarray, across: _Lerp, down: _Lerp) -> np.ndarray:
    """Bilinear interpolation of node ``values`` ``(len(down.nodes), len(across.nodes))``."""
    left = values[:, across.index]
    rows = left + (values[:, across.index + 1] - left) * across.t[None, :]
    top = rows[down.index]
    out = rows[down.index + 1]
    out -= top
    out *= down.t[:, None]
    out += top
    return out


def sampled_field(
    func: Callable[[np.ndarray, np.ndarray], np.ndarray],
    xs: np.ndarray,
    ys: np.ndarray,
    spacing: float,
) -> np.ndarray:
    """Evaluate ``func`` on lattice nodes every ``spacing`` level-0 px, bilinearly interpolated.

    ``func(node_xs, node_ys)`` receives 1-D node coordinates and returns a
    ``(len(node_ys), len(node_xs))`` array. Returns ``(len(ys), len(xs))``.
    Nodes are fixed level-0 positions, so adjacent tiles agree at their seams.
    """
    across, down = _lerp(xs, spacing, smooth=False), _lerp(ys, spacing, smooth=False)
    values = func(
        (across.nodes * spacing).astype(np.float32), (down.nodes * spacing).astype(np.float32)
    )
    return _interpolate(np.asarray(values, dtype=np.float32), across, down)


def value_noise(xs: np.ndarray, ys: np.ndarray, spacing: float, seed: int) -> np.ndarray:
    """Smooth value noise in [-1, 1] with features about ``spacing`` level-0 px wide.

    Returns an array of shape ``(len(ys), len(xs))``.
    """
    across, down = _lerp(xs, spacing, smooth=True), _lerp(ys, spacing, smooth=True)
    return _interpolate(
        hash_uniform(down.nodes[:, None], across.nodes[None, :], seed), across, down
    )


def detail_weight(spacing: float, footprint: float | np.ndarray) -> float | np.ndarray:
    """How much of a feature ``spacing`` level-0 px wide survives a pixel ``footprint`` px wide.

    1 when the feature spans two or more pixels, fading to 0 at one pixel.
    ``footprint`` may be a per-pixel array (blurred regions).
    """
    return np.clip(spacing / np.asarray(footprint, dtype=np.float32) - 1.0, 0.0, 1.0)


def fractal_noise(
    xs: np.ndarray,
    ys: np.ndarray,
    spacings: Sequence[float],
    amplitudes: Sequence[float],
    seed: int,
    footprint: float | np.ndarray = 1.0,
) -> np.ndarray:
    """Sum of value-noise octaves, each faded out where finer than the pixel footprint.

    ``spacings`` are in level-0 px; the result has mean ~0 and shape
    ``(len(ys), len(xs))``.
    """
    total = np.zeros((ys.size, xs.size), dtype=np.float32)
    for octave, (spacing, amplitude) in enumerate(zip(spacings, amplitudes, strict=True)):
        weight = detail_weight(spacing, footprint)
        if np.all(weight == 0):
            continue
        total += (amplitude * weight) * value_noise(xs, ys, spacing, seed + 7919 * octave)
    return total


def noise_tile(size: int, seed: int) -> np.ndarray:
    """A fixed ``size × size`` float32 tile of white noise in [-1, 1), for grain."""
    iy = np.arange(size)[:, None]
    ix = np.arange(size)[None, :]
    return hash_uniform(iy, ix, seed)

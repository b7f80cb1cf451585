"""Deterministic procedural noise evaluated at arbitrary level-0 coordinates.

Every function here is a pure function of level-0 pixel coordinates and an
integer seed, so any tile of any pyramid level can be rendered on its own.
Coordinates are 1-D arrays of pixel-centre positions (level-0 pixels) along x
and y; a tile is the outer product ``ys × xs``, which keeps lattice noise
separable: one octave is two small matrix products, ``Wy @ L @ Wx.T``.

Band limiting: a pixel of a coarse pyramid level covers ``footprint`` level-0
pixels, so octaves whose lattice spacing is finer than about two footprints are
faded out (:func:`detail_weight`), which is what downsampling a real scan does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

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


def interpolation_matrix(
    coords: np.ndarray, spacing: float, *, smooth: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Weights that interpolate lattice nodes (every ``spacing`` level-0 px) at ``coords``.

    Returns ``(W, nodes)``: ``W[p, j]`` weights lattice node index ``nodes[j]``
    (at level-0 position ``nodes[j] * spacing``) for coordinate ``p``. Only
    nodes that some coordinate uses are listed, so sparse samples of a fine
    lattice stay cheap. ``smooth`` uses smoothstep weights (value noise),
    otherwise linear weights (sampled smooth fields).
    """
    u = coords.astype(np.float64) / spacing
    cell = np.floor(u).astype(np.int64)
    t = (u - cell).astype(np.float32)
    if smooth:
        t = t * t * (3.0 - 2.0 * t)
    nodes, index = np.unique(np.concatenate([cell, cell + 1]), return_inverse=True)
    weights = np.zeros((coords.size, nodes.size), dtype=np.float32)
    rows = np.arange(coords.size)
    weights[rows, index[: coords.size]] = 1.0 - t
    weights[rows, index[coords.size :]] = t
    return weights, nodes


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
    wx, nodes_x = interpolation_matrix(xs, spacing, smooth=False)
    wy, nodes_y = interpolation_matrix(ys, spacing, smooth=False)
    values = func((nodes_x * spacing).astype(np.float32), (nodes_y * spacing).astype(np.float32))
    return wy @ values.astype(np.float32) @ wx.T


def value_noise(xs: np.ndarray, ys: np.ndarray, spacing: float, seed: int) -> np.ndarray:
    """Smooth value noise in [-1, 1] with features about ``spacing`` level-0 px wide.

    Returns an array of shape ``(len(ys), len(xs))``.
    """
    wx, nodes_x = interpolation_matrix(xs, spacing)
    wy, nodes_y = interpolation_matrix(ys, spacing)
    return wy @ hash_uniform(nodes_y[:, None], nodes_x[None, :], seed) @ wx.T


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

"""H&E-like micro-structure: stain concentration fields of one tissue type.

A :class:`TissueStyle` describes a tissue type (normal stroma, tumour,
necrosis, glands...) by stain concentrations and structures whose sizes are
given in µm (the shipped styles are data: :mod:`wsi_engine.synthetic.styles`); :func:`render_stains` evaluates it on a tile's pixel centres
(level-0 px) as haematoxylin / eosin / red concentration maps. Colour comes
later, from Beer-Lambert optical densities (:mod:`wsi_engine.synthetic.render`).

Nuclei and glands sit on jittered grids (one feature per grid cell, kept
inside its cell), so each pixel only looks at its own cell. When a pixel's
footprint grows (coarse pyramid level, blurred region) discs widen with
conserved mass and finally turn into their mean concentration, which is how a
downsampled scan looks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from pydantic import ConfigDict
from pydantic.dataclasses import dataclass as validated_dataclass

from wsi_engine.synthetic.noise import detail_weight, fractal_noise, hash_uniform, value_noise

_STRICT = ConfigDict(extra="forbid")
"""Style specs validate their fields on construction and refuse unknown keys."""


@validated_dataclass(frozen=True, config=_STRICT)
class GridFeatures:
    """Features on a jittered grid, at most one per cell (lengths in µm)."""

    cell_um: float
    """Grid spacing."""
    radius_um: tuple[float, float]
    """Range of a feature's radius (nuclei: mean radius; glands: outer radius)."""

    def in_pixels(self, mpp: float) -> tuple[float, float, float]:
        """``(cell, smallest radius, largest radius)`` in level-0 px at ``mpp`` µm/px."""
        r_lo, r_hi = (r / mpp for r in self.radius_um)
        return self.cell_um / mpp, r_lo, r_hi


@validated_dataclass(frozen=True, config=_STRICT)
class NucleusSpec(GridFeatures):
    """A population of nuclei; a cell holds at most one nucleus per layer."""

    presence: float
    """Probability that a cell holds a nucleus (scaled by the local density)."""
    darkness: float
    """Haematoxylin concentration at the nucleus centre."""
    elongation: float = 1.0
    """Largest ratio of long to short axis (1 = round, 3 = spindle)."""
    layers: int = 1
    """Offset grids combined, for crowding beyond one nucleus per cell."""


@validated_dataclass(frozen=True, config=_STRICT)
class GlandSpec(GridFeatures):
    """Gland-like rings, one per cell: a pale lumen inside a dark band of nuclei."""

    wall_um: float
    """Thickness of the nuclear band around the lumen."""
    darkness: float
    """Haematoxylin concentration of the band."""


@validated_dataclass(frozen=True, config=_STRICT)
class TissueStyle:
    """Stain concentrations and structures of one tissue type (lengths in µm)."""

    eosin: float
    """Mean eosin concentration (pink)."""
    eosin_variation: float
    """Relative amplitude of low-frequency eosin variation."""
    haze: float
    """Diffuse haematoxylin concentration (purple background)."""
    red: float
    """Red (blood, necrotic debris) concentration."""
    fibre_strength: float
    """Relative contrast of wavy collagen fibres in the eosin channel."""
    fibre_wavelength_um: float
    """Spacing between neighbouring fibres."""
    granularity: float
    """Relative amplitude of fine granular texture."""
    nuclei: tuple[NucleusSpec, ...]
    glands: GlandSpec | None = None


@dataclass
class Stains:
    """Per-pixel stain concentrations of a tile, each ``(rows, cols)`` float32."""

    hematoxylin: np.ndarray
    eosin: np.ndarray
    red: np.ndarray

    def blend(self, other: Stains, weight: np.ndarray) -> Stains:
        """``self`` where ``weight`` is 0, ``other`` where it is 1."""
        return Stains(
            *(a + weight * (b - a) for a, b in zip(self.fields(), other.fields(), strict=True))
        )

    def fields(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The three concentration maps: haematoxylin, eosin, red."""
        return self.hematoxylin, self.eosin, self.red


@dataclass(frozen=True)
class Canvas:
    """Where a tile is rendered, plus the random fields its tissue styles share.

    ``xs``/``ys`` are level-0 pixel centres, ``footprint`` the level-0 width of
    one pixel (scalar, or per pixel in a blurred region) and ``footprint_at``
    the same as a function of any grid ``(xs, ys)``; ``mpp`` is µm per
    level-0 pixel. ``grain`` (white) and ``fine`` (about 2 px features) are
    ``(rows, cols)`` noise in [-1, 1]; ``slow`` is low-frequency variation.
    """

    xs: np.ndarray
    ys: np.ndarray
    footprint: float | np.ndarray
    footprint_at: Callable[[np.ndarray, np.ndarray], float | np.ndarray]
    mpp: float
    grain: np.ndarray
    fine: np.ndarray
    slow: np.ndarray
    seed: int


def make_canvas(
    xs: np.ndarray,
    ys: np.ndarray,
    footprint_at: Callable[[np.ndarray, np.ndarray], float | np.ndarray],
    mpp: float,
    grain: np.ndarray,
    fine: np.ndarray,
    seed: int,
) -> Canvas:
    """A :class:`Canvas`; ``grain`` and ``fine`` fade out where pixels are too coarse to show them."""
    um = 1.0 / mpp
    footprint = footprint_at(xs, ys)
    slow = fractal_noise(xs, ys, (400 * um, 120 * um), (0.7, 0.3), seed + 1, footprint)
    return Canvas(
        xs,
        ys,
        footprint,
        footprint_at,
        mpp,
        detail_weight(2.0, footprint) * grain,
        detail_weight(4.0, footprint) * fine,
        slow,
        seed,
    )


@dataclass(frozen=True)
class _Cells:
    """The grid cells under a tile: their feature positions and random values (level-0 px)."""

    centres_x: np.ndarray
    """``(cell_cols,)`` centre of each grid column."""
    centres_y: np.ndarray
    """``(cell_rows,)`` centre of each grid row."""
    row_counts: np.ndarray
    """Pixel rows falling in each grid row, top to bottom."""
    col_counts: np.ndarray
    """Pixel columns falling in each grid column, left to right."""
    feature_x: np.ndarray
    """``(cell_rows, cell_cols)`` x of each cell's feature centre."""
    feature_y: np.ndarray
    values: np.ndarray
    """``(count, cell_rows, cell_cols)`` random values, uniform in [0, 1)."""

    def gather(self, per_cell: np.ndarray) -> np.ndarray:
        """Spread ``(..., cell_rows, cell_cols)`` values onto the pixels ``(..., rows, cols)``."""
        return np.repeat(np.repeat(per_cell, self.row_counts, axis=-2), self.col_counts, axis=-1)


def _jittered_cells(
    xs: np.ndarray, ys: np.ndarray, cell: float, margin: float, seed: int, count: int
) -> _Cells:
    """One feature per ``cell``-px grid cell, centred at least ``margin`` px from the cell edge.

    ``xs``/``ys`` must be increasing (pixel centres), so each grid cell covers a
    run of consecutive pixels.
    """
    ix = np.floor(xs / cell).astype(np.int64)
    iy = np.floor(ys / cell).astype(np.int64)
    grid_x = np.arange(ix[0], ix[-1] + 1)
    grid_y = np.arange(iy[0], iy[-1] + 1)
    values = 0.5 + 0.5 * np.stack(
        [hash_uniform(grid_y[:, None], grid_x[None, :], seed + k) for k in range(count + 2)]
    )
    room = max(cell - 2.0 * margin, 0.0)
    return _Cells(
        centres_x=((grid_x + 0.5) * cell).astype(np.float32),
        centres_y=((grid_y + 0.5) * cell).astype(np.float32),
        row_counts=np.bincount(iy - grid_y[0], minlength=grid_y.size),
        col_counts=np.bincount(ix - grid_x[0], minlength=grid_x.size),
        feature_x=(grid_x[None, :] * cell + margin + room * values[0]).astype(np.float32),
        feature_y=(grid_y[:, None] * cell + margin + room * values[1]).astype(np.float32),
        values=values[2:],
    )


def _mean_field_blend(footprint: float | np.ndarray, cell: float) -> float | np.ndarray:
    """0 where single features are resolved (pixel ≤ 1/6 cell), 1 from a third of a cell on."""
    return np.clip((np.asarray(footprint, dtype=np.float32) - cell / 6.0) / (cell / 6.0), 0.0, 1.0)


def _nuclei(canvas: Canvas, spec: NucleusSpec, seed: int) -> np.ndarray:
    """Haematoxylin concentration of one nucleus population.

    Nuclear density varies slowly over the slide (evaluated per grid cell).
    Each nucleus is a soft ellipse widened by half the pixel footprint at its
    cell with its mass conserved; pixels wider than a sixth of a cell fade to
    the mean.
    """
    xs, ys, footprint = canvas.xs, canvas.ys, canvas.footprint
    cell, r_lo, r_hi = spec.in_pixels(canvas.mpp)
    stretch_max = np.sqrt(spec.elongation)
    blend = _mean_field_blend(footprint, cell)
    total = np.zeros((ys.size, xs.size), dtype=np.float32)
    r_mean = 0.5 * (r_lo + r_hi)
    mean_cover = spec.layers * spec.presence * np.pi * r_mean**2 / cell**2
    if np.any(blend < 1):
        for layer in range(spec.layers):
            shift = np.float32(layer * cell / spec.layers)
            cells = _jittered_cells(
                xs + shift, ys + shift, cell, r_hi * stretch_max, seed + 31 * layer, 4
            )
            present, size, angle, aspect = cells.values
            centres = (cells.centres_x - shift, cells.centres_y - shift)
            density = _density(*centres, canvas)
            half2 = np.float32(0.25) * np.square(
                np.asarray(canvas.footprint_at(*centres), dtype=np.float32)
            )
            radius = r_lo + (r_hi - r_lo) * size
            stretch = 1.0 + (stretch_max - 1.0) * aspect
            a2, b2 = np.square(radius * stretch), np.square(radius / stretch)
            wide_a2, wide_b2 = a2 + half2, b2 + half2
            area = np.sqrt(wide_a2 * wide_b2)
            on = present < spec.presence * density
            per_cell = np.stack(
                [
                    cells.feature_x - shift,
                    cells.feature_y - shift,
                    1.0 / wide_a2,
                    1.0 / wide_b2,
                    np.cos(np.pi * angle),
                    np.sin(np.pi * angle),
                    on * np.sqrt(a2 * b2) / area,
                    np.sqrt(area) / (0.6 + np.sqrt(half2)),
                ]
            ).astype(np.float32)
            cx, cy, inv_a2, inv_b2, cos, sin, mass, sharpness = cells.gather(per_cell)
            du, dv = xs[None, :] - cx, ys[:, None] - cy
            u, v = du * cos + dv * sin, dv * cos - du * sin
            rho = np.sqrt(u * u * inv_a2 + v * v * inv_b2)
            coverage = np.clip((1.0 - rho) * sharpness + 0.5, 0.0, 1.0)
            np.maximum(total, mass * coverage, out=total)
    if np.any(blend > 0):
        mean = np.minimum(mean_cover * _density(xs, ys, canvas), 1.0)
        total = (1.0 - blend) * total + blend * mean
    return spec.darkness * total * (0.8 + 0.2 * canvas.grain)


def _density(xs: np.ndarray, ys: np.ndarray, canvas: Canvas) -> np.ndarray:
    """Relative nuclear density (0.15-1.5) at grid points ``ys × xs``, varying over ~100 µm.

    Shared by all nucleus populations of the slide, so cellular regions are
    cellular for every population.
    """
    um = 1.0 / canvas.mpp
    noise = fractal_noise(xs, ys, (250 * um, 80 * um), (0.7, 0.3), canvas.seed + 2)
    return np.clip(0.85 + 0.6 * noise, 0.15, 1.5)


def _glands(canvas: Canvas, spec: GlandSpec, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(lumen, wall) coverage of gland rings; the lumen clears stain, the wall is nuclear.

    Each gland is a randomly oriented ellipse (axis ratio up to 1.5) with a
    wavy outline.
    """
    xs, ys, footprint = canvas.xs, canvas.ys, canvas.footprint
    cell, r_lo, r_hi = spec.in_pixels(canvas.mpp)
    wall = spec.wall_um / canvas.mpp
    cells = _jittered_cells(xs, ys, cell, 1.35 * r_hi + 2.0, seed, 4)
    size, aspect, angle, wobble = cells.values
    stretch = 1.0 + 0.22 * aspect
    cx, cy, radius, stretch, cos, sin, phase = cells.gather(
        np.stack(
            [
                cells.feature_x,
                cells.feature_y,
                r_lo + (r_hi - r_lo) * size,
                stretch,
                np.cos(np.pi * angle),
                np.sin(np.pi * angle),
                6.3 * wobble,
            ]
        ).astype(np.float32)
    )
    du, dv = xs[None, :] - cx, ys[:, None] - cy
    u, v = (du * cos + dv * sin) / stretch, (dv * cos - du * sin) * stretch
    theta = np.arctan2(v, u)
    dist = np.sqrt(u * u + v * v) * (
        1.0 + 0.06 * np.sin(3.0 * theta + phase) + 0.04 * np.sin(7.0 * theta - phase)
    )
    edge = 0.8 + 0.5 * np.asarray(footprint, dtype=np.float32)
    outer = np.clip((radius - dist) / edge + 0.5, 0.0, 1.0)
    lumen = np.clip((radius - wall - dist) / edge + 0.5, 0.0, 1.0)
    blend = _mean_field_blend(footprint, cell)
    r_mean = 0.5 * (r_lo + r_hi)
    mean_lumen = np.pi * (r_mean - wall) ** 2 / cell**2
    mean_outer = np.pi * r_mean**2 / cell**2
    lumen = (1.0 - blend) * lumen + blend * mean_lumen
    ring = (1.0 - blend) * (outer - lumen) + blend * (mean_outer - mean_lumen)
    return lumen.astype(np.float32), ring.astype(np.float32)


def _fibres(canvas: Canvas, wavelength: float, seed: int) -> np.ndarray | None:
    """Wavy collagen bundles, mean ~0: thin pale clefts between fibres, two orientations.

    ``wavelength`` (level-0 px) is the fibre spacing; returns None where the
    pixels are too coarse to show fibres.
    """
    xs, ys, footprint = canvas.xs, canvas.ys, canvas.footprint
    detail = detail_weight(0.25 * wavelength, footprint)
    if np.all(detail == 0):
        return None
    warp = fractal_noise(xs, ys, (8.0 * wavelength, 3.0 * wavelength), (4.0, 1.2), seed + 11)
    mix = np.clip(0.5 + 2.0 * value_noise(xs, ys, 40.0 * wavelength, seed + 12), 0.0, 1.0)
    strength = np.clip(0.6 + 1.2 * value_noise(xs, ys, 15.0 * wavelength, seed + 13), 0.0, 1.0)
    bundles = []
    for angle in (0.35, 1.95):
        phase = (
            xs[None, :] * np.float32(np.cos(angle)) + ys[:, None] * np.float32(np.sin(angle))
        ) * np.float32(np.pi / wavelength)
        wave = np.square(np.sin(phase + warp))
        bundles.append(wave * wave * wave)
    clefts = strength * (mix * bundles[0] + (1.0 - mix) * bundles[1] - 0.3125)
    return -detail * clefts


def render_stains(style: TissueStyle, canvas: Canvas, seed: int) -> Stains:
    """Stain concentrations of ``style`` on ``canvas`` (each ``(rows, cols)`` float32).

    ``seed`` selects this style's own structures (nuclei, fibres, glands).
    """
    texture = 1.0 + style.granularity * (0.6 * canvas.fine + 0.4 * canvas.grain)
    eosin = style.eosin * (1.0 + style.eosin_variation * canvas.slow) * texture
    if style.fibre_strength:
        fibres = _fibres(canvas, style.fibre_wavelength_um / canvas.mpp, seed + 4)
        if fibres is not None:
            eosin = eosin * (1.0 + 2.0 * style.fibre_strength * fibres)
    hematoxylin = style.haze * (1.0 + 0.3 * canvas.slow) * texture
    for k, spec in enumerate(style.nuclei):
        hematoxylin = hematoxylin + _nuclei(canvas, spec, seed + 100 * (k + 1))
    red = style.red * (1.0 + 0.25 * canvas.slow) * texture
    if style.glands is not None:
        lumen, ring = _glands(canvas, style.glands, seed + 5)
        clear = 1.0 - 0.85 * lumen
        hematoxylin = hematoxylin * clear + style.glands.darkness * ring * (
            0.75 + 0.25 * canvas.grain
        )
        eosin, red = eosin * clear, red * clear
    return Stains(
        np.maximum(hematoxylin, 0.0, dtype=np.float32),
        np.maximum(eosin, 0.0, dtype=np.float32),
        np.maximum(red, 0.0, dtype=np.float32),
    )

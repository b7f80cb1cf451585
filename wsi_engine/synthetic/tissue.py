"""Where the tissue is: a few irregular blobs as an implicit field of level-0 coordinates.

The field is ``max`` over elliptical blobs of ``1 - elliptical distance``
(positive inside the ellipse), minus a penalty near the slide border, sampled
on a fixed lattice and bilinearly interpolated, plus value-noise octaves that
make the outline ragged. Tissue is where the field exceeds ``threshold``; the
threshold is chosen so tissue covers the requested fraction of the slide.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from wsi_engine.synthetic.noise import fractal_noise, pixel_centres, sampled_field

_PLAN_SIDE = 256
"""Longest side (pixels) of the coarse grid used for planning (threshold, placement)."""

_OUTLINE_OCTAVES = ((0.6, 0.22), (0.25, 0.1), (0.1, 0.045), (0.04, 0.02))
"""Outline noise octaves: (lattice spacing as a fraction of the smallest blob radius, amplitude)."""


@dataclass(frozen=True)
class Blob:
    """One elliptical tissue fragment before its outline is roughened (level-0 px, radians)."""

    cx: float
    cy: float
    rx: float
    ry: float
    angle: float


@dataclass(frozen=True)
class Plan:
    """A tissue field sampled on a coarse grid: pixel centres (level-0 px), their step, values."""

    xs: np.ndarray
    ys: np.ndarray
    step: float
    field: np.ndarray
    """``(len(ys), len(xs))`` field values; tissue where above the layout's threshold."""


@dataclass(frozen=True)
class TissueLayout:
    """The tissue of one slide as an implicit field over level-0 pixel coordinates."""

    width: int
    height: int
    blobs: tuple[Blob, ...]
    threshold: float
    """Field value of the tissue outline (tissue where the field is greater)."""
    node_spacing: float
    """Finest lattice spacing (level-0 px, a power of two) of the sampled blob field."""
    margin: float
    """Width (level-0 px) of the border band kept free of tissue."""
    seed: int

    @property
    def noise_spacings(self) -> tuple[float, ...]:
        """Lattice spacings (level-0 px) of the outline noise octaves."""
        r = min(min(b.rx, b.ry) for b in self.blobs)
        return tuple(fraction * r for fraction, _ in _OUTLINE_OCTAVES)

    @property
    def noise_amplitudes(self) -> tuple[float, ...]:
        """Field-unit amplitudes of the outline noise octaves."""
        return tuple(amplitude for _, amplitude in _OUTLINE_OCTAVES)

    def blob_field(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Unroughened field at the grid ``ys × xs`` (level-0 px), shape ``(len(ys), len(xs))``."""
        x = xs[None, :].astype(np.float32)
        y = ys[:, None].astype(np.float32)
        field = np.full((ys.size, xs.size), -np.inf, dtype=np.float32)
        for b in self.blobs:
            c, s = np.cos(b.angle), np.sin(b.angle)
            u = ((x - b.cx) * c + (y - b.cy) * s) / b.rx
            v = ((y - b.cy) * c - (x - b.cx) * s) / b.ry
            field = np.maximum(field, 1.0 - np.sqrt(u * u + v * v))
        border = np.minimum(np.minimum(x, self.width - x), np.minimum(y, self.height - y))
        return field - 4.0 * np.clip(1.0 - border / (2.0 * self.margin), 0.0, None)

    def _spacing(self, footprint: float) -> float:
        """Node spacing used at a pixel footprint: at least 4 pixels, so coarse levels stay cheap."""
        spacing = self.node_spacing
        while spacing < 4.0 * footprint:
            spacing *= 2.0
        return spacing

    def field(
        self, xs: np.ndarray, ys: np.ndarray, footprint: float | np.ndarray = 1.0
    ) -> np.ndarray:
        """Tissue field at pixel centres ``ys × xs`` (level-0 px); tissue where > ``threshold``."""
        base = sampled_field(self.blob_field, xs, ys, self._spacing(float(np.min(footprint))))
        return base + fractal_noise(
            xs, ys, self.noise_spacings, self.noise_amplitudes, self.seed, footprint
        )

    def edge_width(self, footprint: float | np.ndarray) -> float | np.ndarray:
        """Field-unit width of the soft tissue edge: about one pixel, at least 3 level-0 px."""
        mean_radius = float(np.mean([0.5 * (b.rx + b.ry) for b in self.blobs]))
        return np.maximum(np.asarray(footprint, dtype=np.float32), 3.0) / mean_radius

    def alpha(self, field: np.ndarray, footprint: float | np.ndarray) -> np.ndarray:
        """Tissue opacity in [0, 1] from the field; 0.5 on the ground-truth outline."""
        return np.clip((field - self.threshold) / self.edge_width(footprint) + 0.5, 0.0, 1.0)

    def _field_bounds(
        self, box: tuple[float, float, float, float], footprint: float | np.ndarray
    ) -> tuple[float, float]:
        """Lower and upper bounds of :meth:`field` over the level-0 ``box`` ``(x0, y0, x1, y1)``.

        Bilinear interpolation stays within the lattice nodes around the box
        (the lattice :meth:`field` uses for this footprint); the outline noise
        adds at most the sum of its amplitudes.
        """
        x0, y0, x1, y1 = box
        spacing = self._spacing(float(np.min(footprint)))
        node_xs = np.arange(np.floor(x0 / spacing), np.floor(x1 / spacing) + 2) * spacing
        node_ys = np.arange(np.floor(y0 / spacing), np.floor(y1 / spacing) + 2) * spacing
        nodes = self.blob_field(node_xs.astype(np.float32), node_ys.astype(np.float32))
        noise = sum(self.noise_amplitudes)
        return float(nodes.min()) - noise, float(nodes.max()) + noise

    def may_contain_tissue(
        self, box: tuple[float, float, float, float], footprint: float | np.ndarray
    ) -> bool:
        """False only if no pixel of the level-0 ``box`` can show tissue (alpha > 0)."""
        _, high = self._field_bounds(box, footprint)
        return high + 0.5 * float(np.max(self.edge_width(footprint))) > self.threshold

    def is_all_tissue(
        self, box: tuple[float, float, float, float], footprint: float | np.ndarray
    ) -> bool:
        """True only if every pixel of the level-0 ``box`` is fully tissue (alpha = 1)."""
        low, _ = self._field_bounds(box, footprint)
        return low - 0.5 * float(np.max(self.edge_width(footprint))) > self.threshold

    @cached_property
    def plan(self) -> Plan:
        """The field on a coarse grid (longest side 256) covering the slide, for planning."""
        step = float(max(self.width, self.height)) / _PLAN_SIDE
        xs = pixel_centres(0, int(np.ceil(self.width / step)), step)
        ys = pixel_centres(0, int(np.ceil(self.height / step)), step)
        return Plan(xs, ys, step, self.field(xs, ys))


def design_tissue(
    width: int, height: int, coverage: float, rng: np.random.Generator
) -> TissueLayout:
    """Draw 2-4 separate fragments and pick the threshold so tissue covers ``coverage``.

    The slide (less its border band) is cut into a 2 × 2 grid, or 2 × 1 along
    the long side for two fragments; each fragment gets its own grid cell and
    is a main ellipse plus a smaller overlapping lobe.
    """
    count = int(rng.integers(2, 5))
    margin = 0.05 * min(width, height)
    inner_w, inner_h = width - 4 * margin, height - 4 * margin
    if count == 2:
        grid = (2, 1) if width >= height else (1, 2)
    else:
        grid = (2, 2)
    cell_w, cell_h = inner_w / grid[0], inner_h / grid[1]
    cells = rng.permutation(grid[0] * grid[1])[:count]
    blobs = []
    for index in cells:
        gx, gy = index % grid[0], index // grid[0]
        rx, ry = 0.46 * cell_w * rng.uniform(0.85, 1.0), 0.46 * cell_h * rng.uniform(0.85, 1.0)
        cx = 2 * margin + (gx + 0.5) * cell_w + rng.uniform(-0.05, 0.05) * cell_w
        cy = 2 * margin + (gy + 0.5) * cell_h + rng.uniform(-0.05, 0.05) * cell_h
        angle = rng.uniform(-0.3, 0.3)
        blobs.append(Blob(float(cx), float(cy), float(rx), float(ry), float(angle)))
        lobe_angle = rng.uniform(0, 2 * np.pi)
        blobs.append(
            Blob(
                float(cx + 0.45 * rx * np.cos(lobe_angle)),
                float(cy + 0.45 * ry * np.sin(lobe_angle)),
                float(0.55 * rx),
                float(0.55 * ry),
                float(rng.uniform(0, np.pi)),
            )
        )
    node_spacing = float(2 ** max(3, int(np.log2(max(width, height) / 1024))))
    draft = TissueLayout(
        width, height, tuple(blobs), 0.0, node_spacing, margin, int(rng.integers(2**31))
    )
    threshold = float(np.quantile(draft.plan.field, 1.0 - coverage))
    return TissueLayout(
        width,
        height,
        draft.blobs,
        float(np.clip(threshold, -0.25, 0.6)),
        node_spacing,
        margin,
        draft.seed,
    )

"""Scanning and handling artefacts: pen marks, black scanner edges, out-of-focus blur.

All geometry is in level-0 pixels. Pen strokes start and end on the glass and
cross the tissue; black edges are dark bars along one or two slide borders
(inside the tissue-free border band); the blurred region widens the pixel
footprint used by the texture renderer, so it loses detail the way an
out-of-focus scan does. None of them changes the tissue or lesion ground truth.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from wsi_engine.errors import ConfigError
from wsi_engine.synthetic.noise import value_noise
from wsi_engine.synthetic.tissue import TissueLayout

ARTEFACT_NAMES = ("pen", "black_edge", "blur")
"""Artefact kinds that :func:`design_artefacts` understands."""

_INKS = {
    "blue": (1.7, 1.1, 0.25),
    "green": (1.7, 0.45, 1.25),
    "black": (2.2, 2.2, 2.0),
}
"""Optical density (R, G, B) of marker inks at full strength."""

_EDGE_RGB = np.array([14.0, 13.0, 17.0], dtype=np.float32)


@dataclass(frozen=True)
class PenStroke:
    """A marker stroke: a polyline (level-0 px) drawn ``2 * half_width`` px wide."""

    points: tuple[tuple[float, float], ...]
    half_width: float
    ink: str

    def coverage(self, xs: np.ndarray, ys: np.ndarray, footprint: float) -> np.ndarray | None:
        """Ink coverage in [0, 1] at pixel centres ``ys × xs``, or None if the stroke misses them."""
        pad = self.half_width + footprint
        lo_x, hi_x, lo_y, hi_y = xs[0] - pad, xs[-1] + pad, ys[0] - pad, ys[-1] + pad
        distance = None
        for (ax, ay), (bx, by) in zip(self.points[:-1], self.points[1:], strict=True):
            if max(ax, bx) < lo_x or min(ax, bx) > hi_x or max(ay, by) < lo_y or min(ay, by) > hi_y:
                continue
            px, py = xs[None, :] - np.float32(ax), ys[:, None] - np.float32(ay)
            sx, sy = np.float32(bx - ax), np.float32(by - ay)
            t = np.clip((px * sx + py * sy) / max(sx * sx + sy * sy, 1e-6), 0.0, 1.0)
            d = np.hypot(px - t * sx, py - t * sy)
            distance = d if distance is None else np.minimum(distance, d)
        if distance is None:
            return None
        return np.clip((self.half_width - distance) / max(footprint, 2.0) + 0.5, 0.0, 1.0)


@dataclass(frozen=True)
class BlackEdge:
    """A dark scanner bar along one slide border, ``width`` level-0 px wide on average."""

    side: str
    """``left``, ``right``, ``top`` or ``bottom``."""
    width: float
    seed: int

    def coverage(
        self, xs: np.ndarray, ys: np.ndarray, footprint: float, size: tuple[int, int]
    ) -> np.ndarray | None:
        """Bar coverage in [0, 1] at pixel centres ``ys × xs``; None if the bar misses them."""
        vertical = self.side in ("left", "right")
        along, across = (ys[:, None], xs[None, :]) if vertical else (xs[None, :], ys[:, None])
        extent = size[0] if vertical else size[1]
        depth = across if self.side in ("left", "top") else extent - across
        if float(depth.min()) > 1.3 * self.width + footprint:
            return None
        line = np.zeros(1, dtype=np.float32)
        jag = (
            value_noise(line, along.ravel(), 0.05 * extent, self.seed)
            if vertical
            else value_noise(along.ravel(), line, 0.05 * extent, self.seed)
        )
        reach = self.width * (1.0 + 0.25 * jag)
        return np.clip((reach - depth) / max(footprint, 2.0) + 0.5, 0.0, 1.0)


@dataclass(frozen=True)
class BlurRegion:
    """An elliptical out-of-focus region; ``strength`` is the extra footprint (level-0 px)."""

    cx: float
    cy: float
    rx: float
    ry: float
    strength: float

    def footprint(self, xs: np.ndarray, ys: np.ndarray, base: float) -> float | np.ndarray:
        """Per-pixel footprint (level-0 px): ``base`` outside, up to ``hypot(base, strength)`` inside."""
        if (
            xs[-1] < self.cx - self.rx
            or xs[0] > self.cx + self.rx
            or ys[-1] < self.cy - self.ry
            or ys[0] > self.cy + self.ry
        ):
            return base
        d = np.hypot((xs[None, :] - self.cx) / self.rx, (ys[:, None] - self.cy) / self.ry)
        t = np.clip((1.0 - d) / 0.35, 0.0, 1.0)
        weight = t * t * (3.0 - 2.0 * t)
        return np.hypot(np.float32(base), self.strength * weight).astype(np.float32)


@dataclass(frozen=True)
class Artefacts:
    """The artefacts of one slide (any of them may be absent)."""

    pens: tuple[PenStroke, ...] = ()
    edges: tuple[BlackEdge, ...] = ()
    blur: BlurRegion | None = None

    @property
    def names(self) -> tuple[str, ...]:
        """Artefact kinds present, in :data:`ARTEFACT_NAMES` order."""
        present = {
            "pen": bool(self.pens),
            "black_edge": bool(self.edges),
            "blur": self.blur is not None,
        }
        return tuple(name for name in ARTEFACT_NAMES if present[name])

    def footprint(self, xs: np.ndarray, ys: np.ndarray, base: float) -> float | np.ndarray:
        """Pixel footprint (level-0 px) after blur; ``base`` where nothing is blurred."""
        return base if self.blur is None else self.blur.footprint(xs, ys, base)

    def paint(
        self,
        rgb: np.ndarray,
        xs: np.ndarray,
        ys: np.ndarray,
        footprint: float,
        size: tuple[int, int],
    ) -> bool:
        """Draw pens then edges onto float ``rgb`` (rows, cols, 3) in place; True if anything was drawn."""
        drawn = False
        for pen in self.pens:
            ink = pen.coverage(xs, ys, footprint)
            if ink is not None:
                density = np.asarray(_INKS[pen.ink], dtype=np.float32)
                rgb *= np.exp(-ink[..., None] * density)
                drawn = True
        for edge in self.edges:
            bar = edge.coverage(xs, ys, footprint, size)
            if bar is not None:
                rgb += bar[..., None] * (_EDGE_RGB - rgb)
                drawn = True
        return drawn

    def as_dict(self) -> dict:
        """JSON-ready geometry (level-0 px)."""
        return asdict(self)


def _background_points(layout: TissueLayout, count: int, rng: np.random.Generator) -> np.ndarray:
    plan = layout.plan
    rows, cols = np.nonzero(plan.field < layout.threshold - 0.1)
    picks = rng.choice(rows.size, size=count, replace=False)
    return np.stack([plan.xs[cols[picks]], plan.ys[rows[picks]]], axis=1).astype(np.float64)


def _tissue_point(layout: TissueLayout, rng: np.random.Generator) -> np.ndarray:
    plan = layout.plan
    rows, cols = np.nonzero(plan.field > layout.threshold + 0.1)
    pick = int(rng.integers(rows.size))
    return np.array([plan.xs[cols[pick]], plan.ys[rows[pick]]], dtype=np.float64)


def _pen_stroke(layout: TissueLayout, rng: np.random.Generator) -> PenStroke:
    """A quadratic Bézier from glass to glass that passes through a tissue point at mid-course."""
    short = min(layout.width, layout.height)
    start, end = _background_points(layout, 2, rng)
    for _ in range(8):
        if np.hypot(*(end - start)) > 0.4 * short:
            break
        start, end = _background_points(layout, 2, rng)
    middle = _tissue_point(layout, rng)
    control = 2.0 * middle - 0.5 * (start + end)
    t = np.linspace(0.0, 1.0, 49)[:, None]
    curve = (1 - t) ** 2 * start + 2 * (1 - t) * t * control + t**2 * end
    points = tuple((round(float(x), 2), round(float(y), 2)) for x, y in curve)
    ink = str(rng.choice(sorted(_INKS)))
    return PenStroke(points, float(rng.uniform(0.006, 0.01) * short), ink)


def design_artefacts(
    names: tuple[str, ...] | list[str], layout: TissueLayout, mpp: float, rng: np.random.Generator
) -> Artefacts:
    """Draw the geometry of the requested artefact kinds for a slide with this tissue.

    ``mpp`` (µm/px) sets the blur strength (a 4-7 µm wide pixel footprint). Raises
    :class:`~wsi_engine.errors.ConfigError` for an unknown kind.
    """
    unknown = sorted(set(names) - set(ARTEFACT_NAMES))
    if unknown:
        raise ConfigError(
            f"unknown artefact {unknown[0]!r}", hint=f"use any of: {', '.join(ARTEFACT_NAMES)}"
        )
    pens: tuple[PenStroke, ...] = ()
    edges: tuple[BlackEdge, ...] = ()
    blur = None
    if "pen" in names:
        pens = tuple(_pen_stroke(layout, rng) for _ in range(int(rng.integers(1, 3))))
    if "black_edge" in names:
        sides = rng.choice(
            ["left", "right", "top", "bottom"], size=int(rng.integers(1, 3)), replace=False
        )
        edges = tuple(
            BlackEdge(
                str(side),
                float(rng.uniform(0.3, 0.6) * layout.margin),
                int(rng.integers(2**31)),
            )
            for side in sides
        )
    if "blur" in names:
        short = min(layout.width, layout.height)
        cx, cy = _tissue_point(layout, rng)
        blur = BlurRegion(
            float(cx),
            float(cy),
            float(rng.uniform(0.1, 0.16) * short),
            float(rng.uniform(0.1, 0.16) * short),
            float(rng.uniform(4.0, 7.0) / mpp),
        )
    return Artefacts(pens, edges, blur)

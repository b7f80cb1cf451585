"""Planted lesions: class-specific tissue patterns, their shapes, placement and GeoJSON.

A lesion is a star-shaped region (a radius that varies smoothly with angle)
filled with its class's :class:`~wsi_engine.synthetic.texture.TissueStyle`
(:mod:`wsi_engine.synthetic.styles`).
The same analytic shape renders the pixels, rasterises the ground-truth mask
and yields the GeoJSON polygon (densely sampled outline), so they agree to
well under a pixel. Lesions are placed deep inside the tissue and checked
against the exact tissue field, so their ground truth lies inside the tissue.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from wsi_engine.errors import ConfigError
from wsi_engine.synthetic.styles import PATTERNS, LesionPattern
from wsi_engine.synthetic.tissue import TissueLayout

NORMAL_LABEL = "normal"
"""The class label of slides without lesions."""


def lesion_pattern(label: str) -> LesionPattern | None:
    """The pattern planted in slides of class ``label``; ``None`` for ``normal``.

    Raises :class:`~wsi_engine.errors.ConfigError` for an unknown label.
    """
    if label == NORMAL_LABEL:
        return None
    if label not in PATTERNS:
        known = ", ".join([NORMAL_LABEL, *PATTERNS])
        raise ConfigError(f"unknown slide class {label!r}", hint=f"use --classes among: {known}")
    return PATTERNS[label]


_HARMONICS = range(2, 7)
_MAX_WOBBLE = sum(0.16 / k for k in _HARMONICS)
"""Largest relative deviation of a lesion's outline radius from its mean radius."""


@dataclass(frozen=True)
class LesionShape:
    """A star-shaped lesion: radius ``radius * (1 + Σ a_k cos(kθ + φ_k))`` (level-0 px)."""

    cx: float
    cy: float
    radius: float
    amplitudes: tuple[float, ...]
    """Relative amplitudes of the harmonics k = 2..6."""
    phases: tuple[float, ...]

    @property
    def reach(self) -> float:
        """Largest distance (level-0 px) of the outline from the centre."""
        return self.radius * (1.0 + sum(self.amplitudes))

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """``(x0, y0, x1, y1)`` level-0 box that contains the lesion."""
        return (
            self.cx - self.reach,
            self.cy - self.reach,
            self.cx + self.reach,
            self.cy + self.reach,
        )

    def radius_at(self, theta: np.ndarray) -> np.ndarray:
        """Outline radius (level-0 px) at angles ``theta`` (radians)."""
        wobble = sum(
            a * np.cos(k * theta + p)
            for k, a, p in zip(_HARMONICS, self.amplitudes, self.phases, strict=True)
        )
        return self.radius * (1.0 + wobble)

    def weight(self, xs: np.ndarray, ys: np.ndarray, edge: float | np.ndarray) -> np.ndarray:
        """Soft membership in [0, 1] at pixel centres ``ys × xs``; 0.5 on the outline.

        ``edge`` is the transition width in level-0 px (per pixel or scalar).
        """
        dx = xs[None, :] - np.float32(self.cx)
        dy = ys[:, None] - np.float32(self.cy)
        inside = self.radius_at(np.arctan2(dy, dx)) - np.sqrt(dx * dx + dy * dy)
        return np.clip(inside / edge + 0.5, 0.0, 1.0).astype(np.float32)

    def polygon(self, vertices: int = 128) -> list[tuple[float, float]]:
        """Closed outline ring (first vertex repeated last), level-0 px, rounded to 0.01."""
        theta = np.linspace(0.0, 2.0 * np.pi, vertices, endpoint=False)
        r = self.radius_at(theta)
        ring = [
            (round(float(self.cx + ri * np.cos(t)), 2), round(float(self.cy + ri * np.sin(t)), 2))
            for t, ri in zip(theta, r, strict=True)
        ]
        return [*ring, ring[0]]


def _random_shape(cx: float, cy: float, radius: float, rng: np.random.Generator) -> LesionShape:
    amplitudes = tuple(float(rng.uniform(0.0, 0.16 / k)) for k in _HARMONICS)
    phases = tuple(float(rng.uniform(0.0, 2.0 * np.pi)) for _ in amplitudes)
    return LesionShape(float(cx), float(cy), float(radius), amplitudes, phases)


def _inside_tissue(layout: TissueLayout, shape: LesionShape) -> bool:
    """True if every point of the lesion (sampled on a 96² grid) lies inside the tissue."""
    x0, y0, x1, y1 = shape.bbox
    xs = np.linspace(x0, x1, 96, dtype=np.float32)
    ys = np.linspace(y0, y1, 96, dtype=np.float32)
    covered = shape.weight(xs, ys, 1.0) > 0
    return bool(np.all(layout.field(xs, ys)[covered] > layout.threshold))


def place_lesions(
    layout: TissueLayout,
    fraction: float,
    min_radius: float,
    rng: np.random.Generator,
) -> tuple[LesionShape, ...]:
    """Place 1-3 non-overlapping lesions covering about ``fraction`` of the tissue area.

    Every point of a lesion's outline is at least ``min_radius`` (level-0 px)
    from its centre when the tissue is large enough; lesions shrink to fit
    otherwise (down to two planning-grid steps). Every accepted lesion lies
    entirely inside the tissue (:func:`_inside_tissue`).
    """
    xs, ys, step = layout.plan.xs, layout.plan.ys, layout.plan.step
    tissue = layout.plan.field > layout.threshold
    target = fraction * float(tissue.sum()) * step * step
    mean_radius_floor = min_radius / (1.0 - _MAX_WOBBLE)
    count = int(np.clip(target // (np.pi * mean_radius_floor**2), 1, 3))
    radius = float(np.sqrt(target / (count * np.pi)))
    depth = ndimage.distance_transform_edt(tissue) * step
    gx, gy = np.meshgrid(xs, ys)
    free = tissue.copy()
    placed: list[LesionShape] = []
    for _ in range(count):
        size = radius
        shape = None
        while shape is None and size >= 2.0 * step:
            rows, cols = np.nonzero(free & (depth >= size * (1.0 + _MAX_WOBBLE) + 2.0 * step))
            for pick in rng.permutation(rows.size)[:12]:
                candidate = _random_shape(xs[cols[pick]], ys[rows[pick]], size, rng)
                if _inside_tissue(layout, candidate):
                    shape = candidate
                    break
            size *= 0.85
        if shape is None:
            break
        placed.append(shape)
        free &= np.hypot(gx - shape.cx, gy - shape.cy) > shape.reach + radius * (1.0 + _MAX_WOBBLE)
    return tuple(placed)


def lesions_geojson(lesions: tuple[LesionShape, ...], pattern: LesionPattern) -> dict:
    """QuPath-importable FeatureCollection of lesion polygons in level-0 pixel coordinates."""
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[list(p) for p in shape.polygon()]],
                },
                "properties": {
                    "objectType": "annotation",
                    "name": f"{pattern.name} {index}",
                    "classification": {"name": pattern.name, "color": list(pattern.color)},
                },
            }
            for index, shape in enumerate(lesions)
        ],
    }

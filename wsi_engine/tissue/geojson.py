"""Tissue masks to and from GeoJSON polygons in level-0 px (QuPath imports and exports these).

Export: one ``Polygon`` feature per 8-connected tissue piece, its holes as
interior rings. Rings follow the mask's pixel edges (marching squares at 0.5,
tissue 8-connected, background 4-connected, as in detection), simplified to
within half a mask pixel, scaled with x = (col + 0.5)·dsx, y = (row + 0.5)·dsy
(pixel ``col`` spans level-0 ``[col·dsx, (col+1)·dsx)``), clipped to the slide
and closed. Orientation follows RFC 7946 on the coordinates as written: the
shoelace area of an exterior ring is positive (counter-clockwise with y up,
which looks clockwise on screen where y points down), holes negative.

Import: every ``Polygon``/``MultiPolygon`` found in a FeatureCollection, a
Feature, a bare geometry, a GeometryCollection or a JSON list of features
(older QuPath exports) is tissue; other geometries (points, lines) are
ignored. Polygons are rasterised at the segmentation resolution by pixel
centre (even-odd scanline fill: time proportional to the mask's pixels plus
the rows the edges cross, not vertices × pixels), holes removed. A file with
more than ``max_vertices`` vertices or nested deeper than ``max_depth`` is
refused (``tiling.geojson_max_vertices``, ``tiling.geojson_max_depth``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from wsi_engine.errors import ConfigError
from wsi_engine.tissue.mask import EIGHT_CONNECTED, TissueMask, mask_downsample, segmentation_size

TISSUE_CLASS = {"name": "Tissue", "color": [0, 160, 60]}
SIMPLIFY_TOLERANCE_PX = 0.5
GEOJSON_HINT = "expected GeoJSON Polygon/MultiPolygon features in level-0 px of this slide"

Ring = np.ndarray  # (n, 2) float64 x, y in level-0 px


def tissue_to_geojson(mask: TissueMask) -> dict:
    """FeatureCollection of the mask's tissue pieces as QuPath ``Tissue`` annotations (level-0 px)."""
    level0_mpp = mask.mpp / mask.downsample[0]
    features = []
    for rings in _piece_rings(mask):
        area_px = _signed_area(rings[0]) + sum(_signed_area(hole) for hole in rings[1:])
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [ring.tolist() for ring in rings]},
                "properties": {
                    "objectType": "annotation",
                    "classification": dict(TISSUE_CLASS),
                    "measurements": {"area_um2": round(area_px * level0_mpp**2, 1)},
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}


MAX_VERTICES = 1_000_000
"""Default limit on the vertices of a tissue GeoJSON file (``tiling.geojson_max_vertices``)."""

MAX_DEPTH = 32
"""Default limit on the nesting of a tissue GeoJSON file (``tiling.geojson_max_depth``)."""

MAX_CROSSINGS_PER_PIXEL = 8
"""Bound on edge × row crossings per mask pixel (a zigzag of many full-height edges is refused)."""


def load_tissue_geojson(
    path: str | Path,
    level0_size: tuple[int, int],
    level0_mpp: float,
    seg_mpp: float,
    *,
    max_vertices: int = MAX_VERTICES,
    max_depth: int = MAX_DEPTH,
) -> TissueMask:
    """Rasterise the polygons of a GeoJSON file (level-0 px) into a mask at about ``seg_mpp`` µm/px."""
    path = Path(path)
    limits = _Limits(path, max_vertices, max_depth)
    polygons = list(_polygons_in(_read_json(path), path, limits))
    if not polygons:
        raise ConfigError("no Polygon or MultiPolygon geometry found", path=path, hint=GEOJSON_HINT)
    w, h = segmentation_size(level0_size, level0_mpp, seg_mpp)
    dsx, dsy = mask_downsample(level0_size, (h, w))
    tissue = np.zeros((h, w), dtype=bool)
    try:
        for rings in polygons:
            shape = _rasterise(rings[0], dsx, dsy, tissue.shape)
            for hole in rings[1:]:
                shape &= ~_rasterise(hole, dsx, dsy, tissue.shape)
            tissue |= shape
    except ValueError as error:
        raise ConfigError(str(error), path=path, hint="simplify the polygons") from None
    if not tissue.any():
        raise ConfigError("the polygons cover no part of the slide", path=path, hint=GEOJSON_HINT)
    return TissueMask.spanning(tissue, level0_size, level0_mpp, f"geojson:{path.name}")


# --- export -------------------------------------------------------------------------------------


def _piece_rings(mask: TissueMask) -> Iterator[list[Ring]]:
    """[exterior, *holes] rings (level-0 px, oriented, closed) of each 8-connected tissue piece."""
    labels, _ = ndi.label(mask.mask, structure=EIGHT_CONNECTED)
    for index, box in enumerate(ndi.find_objects(labels), start=1):
        piece = np.pad(labels[box] == index, 1)
        origin = np.array(
            [box[0].start - 1, box[1].start - 1], dtype=np.float64
        )  # (row, col) of piece[0, 0]
        filled = ndi.binary_fill_holes(piece)
        hole_labels, n_holes = ndi.label(filled & ~piece)
        outlines = [_outline(filled, "high")]
        outlines += [_outline(hole_labels == j, "low") for j in range(1, n_holes + 1)]
        rings = [
            _oriented(_to_level0(rc + origin, mask), exterior=(k == 0))
            for k, rc in enumerate(outlines)
        ]
        if len(rings[0]) >= 4:
            yield [rings[0], *(hole for hole in rings[1:] if len(hole) >= 4)]


def _outline(region: np.ndarray, fully_connected: str) -> np.ndarray:
    """Longest closed iso-contour (row, col) of a padded binary region, simplified."""
    # scikit-image loads its submodules on first use: this one does not import scipy.signal
    from skimage.measure import find_contours

    contour = max(
        find_contours(region.astype(np.float32), 0.5, fully_connected=fully_connected), key=len
    )
    simplified = simplify_chain(contour, SIMPLIFY_TOLERANCE_PX)
    return simplified if len(simplified) >= 4 else contour


def simplify_chain(points: np.ndarray, tolerance: float) -> np.ndarray:
    """Douglas-Peucker: the points of the (K, 2) chain ``points`` kept so that every dropped
    point lies within ``tolerance`` of the simplified chain (first and last always kept).

    The distance of a point to a segment is the perpendicular one where the point projects
    inside the segment, else the distance to the nearer end.
    """
    keep = np.zeros(len(points), dtype=bool)
    keep[[0, -1]] = True
    spans = [(0, len(points) - 1)]
    while spans:
        start, end = spans.pop()
        if end - start < 2:
            continue
        rows, cols = points[start + 1 : end, 0], points[start + 1 : end, 1]
        (r0, c0), (r1, c1) = points[start], points[end]
        dr, dc = r1 - r0, c1 - c0
        # written term by term as scikit-image's approximate_polygon, so that both keep the
        # same point among points at equal distances (contours of pixel masks have many)
        angle = -np.arctan2(dr, dc)
        offset = c0 * np.sin(angle) + r0 * np.cos(angle)
        perpendicular = np.abs(rows * np.cos(angle) + cols * np.sin(angle) - offset)
        inside = ((rows - r0) * dr + (cols - c0) * dc > 0) & (
            -(rows - r1) * dr - (cols - c1) * dc > 0
        )
        ends = np.minimum(
            np.sqrt((cols - c0) ** 2 + (rows - r0) ** 2),
            np.sqrt((cols - c1) ** 2 + (rows - r1) ** 2),
        )
        distance = np.where(inside, perpendicular, ends)
        farthest = int(np.argmax(distance))
        if distance[farthest] > tolerance:
            split = start + 1 + farthest
            keep[split] = True
            spans += [(split, end), (start, split)]
    return points[keep]


def _to_level0(rows_cols: np.ndarray, mask: TissueMask) -> Ring:
    """Mask (row, col) index coordinates → closed ring of level-0 (x, y), clipped, rounded to 0.01 px."""
    dsx, dsy = mask.downsample
    width, height = mask.level0_size
    x = np.clip((rows_cols[:, 1] + 0.5) * dsx, 0.0, width)
    y = np.clip((rows_cols[:, 0] + 0.5) * dsy, 0.0, height)
    ring = np.round(np.column_stack([x, y]), 2)
    distinct = np.concatenate([[True], np.any(np.diff(ring, axis=0) != 0, axis=1)])
    ring = ring[distinct]
    return ring if np.array_equal(ring[0], ring[-1]) else np.vstack([ring, ring[:1]])


def _signed_area(ring: Ring) -> float:
    """Shoelace area of a closed ring (positive = counter-clockwise with y up)."""
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * float(np.dot(x[:-1], y[1:]) - np.dot(x[1:], y[:-1]))


def _oriented(ring: Ring, exterior: bool) -> Ring:
    """The ring with positive area for an exterior, negative for a hole."""
    return ring if (_signed_area(ring) > 0) == exterior else ring[::-1]


# --- import -------------------------------------------------------------------------------------


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise ConfigError("GeoJSON file not found", path=path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except RecursionError:
        raise ConfigError(
            "the GeoJSON is nested too deeply to read", path=path, hint=GEOJSON_HINT
        ) from None
    except json.JSONDecodeError as error:
        raise ConfigError(
            f"not valid JSON ({error.msg}, line {error.lineno})", path=path, hint=GEOJSON_HINT
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read the GeoJSON file ({error})", path=path) from None


class _Limits:
    """Vertex and nesting budget of one file; raises ConfigError naming the option when exceeded."""

    def __init__(self, path: Path, max_vertices: int, max_depth: int):
        self.path, self.max_vertices, self.max_depth = path, max_vertices, max_depth
        self.vertices = 0

    def count(self, rings: list[Ring]) -> list[Ring]:
        self.vertices += sum(len(ring) for ring in rings)
        if self.vertices > self.max_vertices:
            raise ConfigError(
                f"the GeoJSON has more than {self.max_vertices:,} polygon vertices",
                path=self.path,
                hint="simplify the polygons, or raise tiling.geojson_max_vertices in the tiling YAML",
            )
        return rings

    def enter(self, depth: int) -> int:
        if depth > self.max_depth:
            raise ConfigError(
                f"the GeoJSON is nested more than {self.max_depth} levels deep",
                path=self.path,
                hint="flatten it, or raise tiling.geojson_max_depth in the tiling YAML",
            )
        return depth + 1


def _polygons_in(node: Any, path: Path, limits: _Limits, depth: int = 0) -> Iterator[list[Ring]]:
    """Rings ([exterior, *holes], level-0 x, y) of every polygon in a GeoJSON node."""
    depth = limits.enter(depth)
    if isinstance(node, list):  # a bare list of features (QuPath)
        for item in node:
            yield from _polygons_in(item, path, limits, depth)
        return
    kind = node.get("type") if isinstance(node, dict) else None
    if kind == "FeatureCollection":
        yield from _polygons_in(_member(node, "features", list, path), path, limits, depth)
    elif kind == "Feature":
        if node.get("geometry") is not None:
            yield from _polygons_in(node["geometry"], path, limits, depth)
    elif kind == "GeometryCollection":
        yield from _polygons_in(_member(node, "geometries", list, path), path, limits, depth)
    elif kind == "Polygon":
        yield limits.count(_rings(_member(node, "coordinates", list, path), path))
    elif kind == "MultiPolygon":
        for polygon in _member(node, "coordinates", list, path):
            yield limits.count(_rings(polygon, path))
    elif kind not in ("Point", "MultiPoint", "LineString", "MultiLineString"):
        raise ConfigError(f"not a GeoJSON object: {str(node)[:60]}", path=path, hint=GEOJSON_HINT)


def _member(node: dict, key: str, kind: type, path: Path) -> Any:
    value = node.get(key)
    if not isinstance(value, kind):
        raise ConfigError(
            f"GeoJSON {node.get('type')} lacks a '{key}' list", path=path, hint=GEOJSON_HINT
        )
    return value


def _rings(coordinates: Any, path: Path) -> list[Ring]:
    """Validated (n, 2) rings of one polygon's coordinates."""
    invalid = ConfigError(
        "invalid Polygon coordinates (expected rings of at least 3 [x, y] numbers)",
        path=path,
        hint=GEOJSON_HINT,
    )
    if not isinstance(coordinates, list) or not coordinates:
        raise invalid
    rings = []
    for ring in coordinates:
        try:
            xy = np.asarray(ring, dtype=np.float64)
        except (TypeError, ValueError):
            raise invalid from None
        if xy.ndim != 2 or xy.shape[0] < 3 or xy.shape[1] < 2 or not np.isfinite(xy).all():
            raise invalid
        rings.append(xy[:, :2])
    return rings


def _rasterise(ring: Ring, dsx: float, dsy: float, shape: tuple[int, int]) -> np.ndarray:
    """Mask pixels whose centre lies inside a level-0 ring (even-odd rule, scanline fill).

    In mask index coordinates (pixel ``(r, c)`` centred at ``(r, c)``), each
    edge crosses the rows ``r`` with ``y0 <= r < y1`` (half-open, so a vertex
    on a row is counted once); a row's sorted crossings pair up into spans
    ``[x_a, x_b]`` of columns, filled through a per-row difference array.
    """
    h, w = shape
    x = ring[:, 0] / dsx - 0.5
    y = ring[:, 1] / dsy - 0.5
    if not np.array_equal(ring[0], ring[-1]):
        x, y = np.append(x, x[0]), np.append(y, y[0])
    x0, y0, x1, y1 = x[:-1], y[:-1], x[1:], y[1:]
    low, high = np.minimum(y0, y1), np.maximum(y0, y1)
    first = np.clip(np.ceil(low), -1, h).astype(np.int64)  # rows above the mask collapse to -1
    stop = np.clip(np.ceil(high), -1, h).astype(np.int64)
    count = np.maximum(stop - first, 0)
    if count.sum() > MAX_CROSSINGS_PER_PIXEL * h * w + 2 * len(count):
        raise ValueError("the polygon's edges cross the mask's rows too often for its resolution")
    edge = np.repeat(np.arange(len(count)), count)
    row = np.repeat(first, count) + (
        np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    )
    t = (row - y0[edge]) / (y1[edge] - y0[edge])
    cross = x0[edge] + t * (x1[edge] - x0[edge])
    out = np.zeros(shape, dtype=bool)
    order = np.lexsort((cross, row))
    row, cross = row[order], cross[order]
    inside = (row >= 0) & (row < h)
    row, cross = row[inside], cross[inside]
    # spans [x_a, x_b] closed: a centre on the ring (the writer's contours can run through
    # centres) is inside, as in scikit-image's polygon fill
    if len(row) % 2 or (len(row) and np.any(row[0::2] != row[1::2])):
        raise ValueError("unpaired scanline crossings")  # cannot happen for a closed ring
    start = np.clip(np.ceil(cross[0::2]), 0, w).astype(np.int64)
    end = np.clip(np.floor(cross[1::2]) + 1, 0, w).astype(np.int64)
    keep = end > start
    diff = np.zeros((h, w + 1), dtype=np.int32)
    np.add.at(diff, (row[0::2][keep], start[keep]), 1)
    np.add.at(diff, (row[0::2][keep], end[keep]), -1)
    out[:] = np.cumsum(diff, axis=1)[:, :w] > 0
    return out

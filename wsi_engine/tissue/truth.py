"""Ground truth for heatmap and patch evaluation: how much of each patch lies inside annotated polygons.

The synthetic cohort (and any QuPath export) gives lesions as GeoJSON polygons
in level-0 pixel coordinates. :func:`patch_truth_fraction` turns them into one
number per patch, the fraction of the patch square covered by the union of the
polygons (holes excluded), so per-patch scores can be scored against it (AUC
with ``fraction >= threshold`` as the positive label).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from matplotlib.path import Path as MplPath

from wsi_engine.errors import DataError

Ring = np.ndarray
"""(V, 2) float64 vertices (x, y) in level-0 px."""


def patch_truth_fraction(
    coords: np.ndarray,
    patch_size_level0: float,
    geojson_path: str | Path,
    *,
    samples_per_side: int = 16,
) -> np.ndarray:
    """(N,) float64 fraction of each patch square covered by the GeoJSON polygons, 0..1.

    ``coords`` (N, 2) are level-0 x, y of patch top-left corners and
    ``patch_size_level0`` the patch side in level-0 px. The fraction is
    estimated on a ``samples_per_side``² grid of points at the centres of
    equal sub-squares of each patch (resolution 1/samples_per_side²).
    Overlapping polygons count once; interior rings (holes) are excluded.
    Non-areal geometries (points, lines) are ignored.
    """
    coords = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    if samples_per_side < 1:
        raise ValueError(f"samples_per_side must be >= 1, got {samples_per_side}")
    steps = (np.arange(samples_per_side) + 0.5) * (patch_size_level0 / samples_per_side)
    offsets = np.stack(np.meshgrid(steps, steps), axis=-1).reshape(-1, 2)  # (k², 2)
    covered = np.zeros((len(coords), len(offsets)), dtype=bool)
    for exterior, holes in _polygons(_load(geojson_path), geojson_path):
        near = _patches_touching(coords, patch_size_level0, exterior)
        if not near.size:
            continue
        points = (coords[near, None, :] + offsets[None]).reshape(-1, 2)
        inside = MplPath(exterior).contains_points(points)
        for hole in holes:
            inside &= ~MplPath(hole).contains_points(points)
        covered[near] |= inside.reshape(len(near), -1)
    return covered.mean(axis=1)


def _patches_touching(coords: np.ndarray, size: float, ring: Ring) -> np.ndarray:
    """Indices of patches whose square intersects the bounding box of ``ring``."""
    (x0, y0), (x1, y1) = ring.min(axis=0), ring.max(axis=0)
    hit = (
        (coords[:, 0] < x1)
        & (coords[:, 0] + size > x0)
        & (coords[:, 1] < y1)
        & (coords[:, 1] + size > y0)
    )
    return np.flatnonzero(hit)


def _load(path: str | Path) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise DataError(f"cannot read ground-truth GeoJSON ({error})", path=path) from error


def _polygons(node: object, path: str | Path) -> Iterator[tuple[Ring, list[Ring]]]:
    """(exterior, holes) of every Polygon / MultiPolygon in a GeoJSON object, recursively."""
    if isinstance(node, list):  # a bare list of features (QuPath exports some files this way)
        for item in node:
            yield from _polygons(item, path)
        return
    if not isinstance(node, dict):
        raise DataError(f"unexpected GeoJSON element {type(node).__name__}", path=path)
    kind = node.get("type")
    if kind == "FeatureCollection":
        yield from _polygons(node.get("features", []), path)
    elif kind == "Feature":
        if node.get("geometry") is not None:
            yield from _polygons(node["geometry"], path)
    elif kind == "GeometryCollection":
        yield from _polygons(node.get("geometries", []), path)
    elif kind == "Polygon":
        yield _rings(node["coordinates"], path)
    elif kind == "MultiPolygon":
        for polygon in node["coordinates"]:
            yield _rings(polygon, path)
    elif kind not in ("Point", "MultiPoint", "LineString", "MultiLineString"):
        raise DataError(f"unknown GeoJSON type {kind!r}", path=path)


def _rings(polygon: list, path: str | Path) -> tuple[Ring, list[Ring]]:
    try:
        rings = [np.asarray(ring, dtype=np.float64)[:, :2] for ring in polygon]
    except (TypeError, ValueError, IndexError) as error:
        raise DataError(f"malformed polygon coordinates ({error})", path=path) from error
    if not rings or any(len(ring) < 3 for ring in rings):
        raise DataError("polygon ring with fewer than 3 vertices", path=path)
    return rings[0], rings[1:]

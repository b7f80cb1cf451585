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
centre, holes removed.
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


def load_tissue_geojson(
    path: str | Path, level0_size: tuple[int, int], level0_mpp: float, seg_mpp: float
) -> TissueMask:
    """Rasterise the polygons of a GeoJSON file (level-0 px) into a mask at about ``seg_mpp`` µm/px."""
    path = Path(path)
    polygons = list(_polygons_in(_read_json(path), path))
    if not polygons:
        raise ConfigError("no Polygon or MultiPolygon geometry found", path=path, hint=GEOJSON_HINT)
    w, h = segmentation_size(level0_size, level0_mpp, seg_mpp)
    dsx, dsy = mask_downsample(level0_size, (h, w))
    tissue = np.zeros((h, w), dtype=bool)
    for rings in polygons:
        shape = _rasterise(rings[0], dsx, dsy, tissue.shape)
        for hole in rings[1:]:
            shape &= ~_rasterise(hole, dsx, dsy, tissue.shape)
        tissue |= shape
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
    from skimage import measure  # half a second to import: only when exporting polygons

    contour = max(
        measure.find_contours(region.astype(np.float32), 0.5, fully_connected=fully_connected),
        key=len,
    )
    simplified = measure.approximate_polygon(contour, SIMPLIFY_TOLERANCE_PX)
    return simplified if len(simplified) >= 4 else contour


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
    except json.JSONDecodeError as error:
        raise ConfigError(
            f"not valid JSON ({error.msg}, line {error.lineno})", path=path, hint=GEOJSON_HINT
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read the GeoJSON file ({error})", path=path) from None


def _polygons_in(node: Any, path: Path) -> Iterator[list[Ring]]:
    """Rings ([exterior, *holes], level-0 x, y) of every polygon in a GeoJSON node."""
    if isinstance(node, list):  # a bare list of features (QuPath)
        for item in node:
            yield from _polygons_in(item, path)
        return
    kind = node.get("type") if isinstance(node, dict) else None
    if kind == "FeatureCollection":
        yield from _polygons_in(_member(node, "features", list, path), path)
    elif kind == "Feature":
        if node.get("geometry") is not None:
            yield from _polygons_in(node["geometry"], path)
    elif kind == "GeometryCollection":
        yield from _polygons_in(_member(node, "geometries", list, path), path)
    elif kind == "Polygon":
        yield _rings(_member(node, "coordinates", list, path), path)
    elif kind == "MultiPolygon":
        for polygon in _member(node, "coordinates", list, path):
            yield _rings(polygon, path)
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
    """Mask pixels whose centre lies inside a level-0 ring."""
    out = np.zeros(shape, dtype=bool)
    from skimage.draw import polygon as fill_polygon  # imported only when rasterising

    rows, cols = fill_polygon(ring[:, 1] / dsy - 0.5, ring[:, 0] / dsx - 0.5, shape)
    out[rows, cols] = True
    return out

"""Tissue masks to QuPath-style GeoJSON and back; user GeoJSON files and their errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage as ndi

from wsi_engine.errors import ConfigError
from wsi_engine.tissue import (
    TissueConfig,
    TissueMask,
    detect_tissue,
    load_tissue_geojson,
    tissue_to_geojson,
)

LEVEL0_MPP, SEG_MPP = 0.25, 8.0


def shapes_mask() -> np.ndarray:
    """(120, 160) mask: a piece with a hole holding an island, an edge piece, diagonal neighbours, a line, a dot."""
    rows, cols = np.mgrid[0:120, 0:160]
    mask = ((rows - 60) / 40) ** 2 + ((cols - 60) / 50) ** 2 <= 1
    mask &= ((rows - 60) / 18) ** 2 + ((cols - 55) / 22) ** 2 > 1  # hole
    mask |= (rows - 60) ** 2 + (cols - 55) ** 2 <= 36  # island in the hole
    mask[:12, 120:] = True  # touches the top and right edges
    mask[100:110, 120:130] = mask[110:118, 130:140] = True  # touch at one corner
    mask[30:90, 150] = True  # one pixel wide
    mask[105, 100] = True  # a single pixel
    return mask


def level0_size_for(shape: tuple[int, int], extra: int = 3) -> tuple[int, int]:
    """A level-0 size whose segmentation size is ``shape`` with a non-integer downsample."""
    scale = SEG_MPP / LEVEL0_MPP
    return round(shape[1] * scale) + extra, round(shape[0] * scale) + extra


def write(tmp_path, data, name="tissue.geojson"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_export_is_valid_qupath_geojson():
    mask = shapes_mask()
    level0 = level0_size_for(mask.shape)
    tissue = TissueMask.spanning(mask, level0, LEVEL0_MPP, "detected")
    collection = json.loads(json.dumps(tissue_to_geojson(tissue)))  # plain JSON types only
    assert collection["type"] == "FeatureCollection"
    _, n_pieces = ndi.label(mask, structure=np.ones((3, 3)))
    assert len(collection["features"]) == n_pieces
    hole_counts = []
    for feature in collection["features"]:
        assert feature["type"] == "Feature" and feature["geometry"]["type"] == "Polygon"
        props = feature["properties"]
        assert props["objectType"] == "annotation" and props["classification"]["name"] == "Tissue"
        assert len(props["classification"]["color"]) == 3
        rings = [np.array(ring) for ring in feature["geometry"]["coordinates"]]
        hole_counts.append(len(rings) - 1)
        for k, ring in enumerate(rings):
            assert len(ring) >= 4 and np.array_equal(ring[0], ring[-1])
            assert (
                (ring >= 0).all()
                and (ring[:, 0] <= level0[0]).all()
                and (ring[:, 1] <= level0[1]).all()
            )
            x, y = ring[:, 0], ring[:, 1]
            signed_area = np.dot(x[:-1], y[1:]) - np.dot(x[1:], y[:-1])
            assert (signed_area > 0) == (k == 0)  # exterior counter-clockwise, holes clockwise
    assert sorted(hole_counts)[-1] == 1 and sum(hole_counts) == 1
    area_um2 = sum(f["properties"]["measurements"]["area_um2"] for f in collection["features"])
    assert area_um2 == pytest.approx(mask.sum() * tissue.mpp**2, rel=0.05)


def test_round_trip_of_shapes(tmp_path, mask_iou):
    mask = shapes_mask()
    level0 = level0_size_for(mask.shape)
    path = write(
        tmp_path, tissue_to_geojson(TissueMask.spanning(mask, level0, LEVEL0_MPP, "detected"))
    )
    loaded = load_tissue_geojson(path, level0, LEVEL0_MPP, SEG_MPP)
    assert loaded.mask.shape == mask.shape and loaded.source == "geojson:tissue.geojson"
    assert mask_iou(loaded.mask, mask) >= 0.95
    assert (
        not loaded.mask[60, 40] and loaded.mask[60, 55]
    )  # the hole stays a hole, its island stays


def test_round_trip_of_detected_tissue(tmp_path, scene, mask_iou):
    view = scene.at(SEG_MPP)
    level0 = (32000, 24000)
    detected = detect_tissue(view.rgb, SEG_MPP, TissueConfig(), level0)
    path = write(tmp_path, tissue_to_geojson(detected))
    loaded = load_tissue_geojson(path, level0, LEVEL0_MPP, SEG_MPP)
    assert mask_iou(loaded.mask, detected.mask) >= 0.95
    assert not loaded.mask[view.px("big_hole")]


def test_empty_mask_gives_empty_collection():
    empty = TissueMask(np.zeros((10, 10), dtype=bool), (32.0, 32.0), 8.0, "detected")
    assert tissue_to_geojson(empty) == {"type": "FeatureCollection", "features": []}


SQUARE = [
    [0, 0],
    [1600, 0],
    [1600, 1600],
    [0, 1600],
    [0, 0],
]  # left half of a 3200 × 1600 level-0 slide
HOLE = [[410, 410], [410, 1210], [1210, 1210], [1210, 410], [410, 410]]  # 25 × 25 mask px
POLYGON = {"type": "Polygon", "coordinates": [SQUARE, HOLE]}
FEATURE = {"type": "Feature", "geometry": POLYGON, "properties": {"objectType": "annotation"}}
POINT = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [5, 5]}, "properties": {}}


@pytest.mark.parametrize(
    "data",
    [
        POLYGON,
        FEATURE,
        [POINT, FEATURE],  # QuPath's bare list of features
        {
            "type": "FeatureCollection",
            "features": [POINT, FEATURE, {"type": "Feature", "geometry": None}],
        },
        {"type": "MultiPolygon", "coordinates": [[SQUARE, HOLE]]},
        {"type": "GeometryCollection", "geometries": [POLYGON]},
    ],
    ids=["polygon", "feature", "list", "collection", "multipolygon", "geometrycollection"],
)
def test_loads_geojson_variants(tmp_path, data):
    loaded = load_tissue_geojson(write(tmp_path, data), (3200, 1600), LEVEL0_MPP, SEG_MPP)
    assert (
        loaded.mask.shape == (50, 100) and loaded.downsample == (32.0, 32.0) and loaded.mpp == 8.0
    )
    assert loaded.mask[:, :50].sum() == 50 * 50 - 25 * 25 and not loaded.mask[:, 50:].any()
    assert not loaded.mask[25, 25]  # inside the hole


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "not found"),
        ("{not json", "not valid JSON"),
        ("42", "not a GeoJSON object"),
        (json.dumps([POINT]), "no Polygon"),
        (json.dumps({"type": "FeatureCollection"}), "lacks a 'features' list"),
        (
            json.dumps({"type": "Polygon", "coordinates": [[["a", "b"], [1, 2], [3, 4]]]}),
            "invalid Polygon",
        ),
        (json.dumps({"type": "Polygon", "coordinates": [[[0, 0], [10, 10]]]}), "invalid Polygon"),
        (
            json.dumps(
                {"type": "Polygon", "coordinates": [[[9e6, 9e6], [9e6 + 9, 9e6], [9e6, 9e6 + 9]]]}
            ),
            "no part",
        ),
    ],
    ids=[
        "missing",
        "syntax",
        "number",
        "points-only",
        "no-features",
        "strings",
        "two-points",
        "outside",
    ],
)
def test_bad_geojson_raises_config_error_naming_the_file(tmp_path, content, message):
    path = tmp_path / "annotations.geojson"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=message) as caught:
        load_tissue_geojson(path, (3200, 1600), LEVEL0_MPP, SEG_MPP)
    assert "annotations.geojson" in str(caught.value)

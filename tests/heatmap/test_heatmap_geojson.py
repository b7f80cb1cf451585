"""QuPath tile GeoJSON: valid, closed squares inside the slide, measurements for every class."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from wsi_engine.heatmap import make_heatmaps
from wsi_engine.heatmap.geojson import patch_measurements, write_tiles_geojson

from .conftest import CLASSES, HEIGHT, PATCH0, WIDTH, build_store, plant_scores


def test_tiles_of_a_scored_store(tmp_path: Path) -> None:
    store = build_store(tmp_path / "stores", "slide-g")
    arrays = plant_scores(store, kind="bag")
    make_heatmaps([store], "run1", tmp_path / "out", formats=["geojson"])
    data = json.loads((tmp_path / "out" / "slide-g" / "tiles.geojson").read_text())
    assert data["type"] == "FeatureCollection"
    features = data["features"]
    assert len(features) == len(arrays["instance_score"])
    for feature in features:
        assert feature["type"] == "Feature" and feature["geometry"]["type"] == "Polygon"
        ring = np.array(feature["geometry"]["coordinates"][0], dtype=float)
        assert ring.shape == (5, 2) and (ring[0] == ring[-1]).all()
        assert (ring[:, 0] >= 0).all() and (ring[:, 0] <= WIDTH).all()
        assert (ring[:, 1] >= 0).all() and (ring[:, 1] <= HEIGHT).all()
        assert np.ptp(ring[:, 0]) == PATCH0 and np.ptp(ring[:, 1]) == PATCH0
        props = feature["properties"]
        assert props["objectType"] == "tile"
        for name in CLASSES:
            assert {f"{name} attention", f"{name} attention x uniform"} <= set(
                props["measurements"]
            )
        assert "instance score" in props["measurements"]
    first = features[0]["properties"]["measurements"]
    assert np.isclose(first["tumor attention"], arrays["attention"][0, 1], rtol=1e-5)


def test_squares_are_clipped_to_the_slide_and_nan_is_left_out(tmp_path: Path) -> None:
    coords = np.array([[-10, 0], [90, 90], [500, 500]])
    measurements = patch_measurements({"probs": np.array([[0.2], [np.nan], [0.5]])}, ["tumor"])
    path = tmp_path / "tiles.geojson"
    written = write_tiles_geojson(path, coords, 20.5, (100, 100), measurements)
    features = json.loads(path.read_text())["features"]
    assert written == len(features) == 2  # the patch outside the slide is skipped
    assert features[0]["geometry"]["coordinates"][0][:3] == [[0, 0], [10.5, 0], [10.5, 20.5]]
    assert features[1]["geometry"]["coordinates"][0][2] == [100, 100]
    assert features[0]["properties"]["measurements"] == {"tumor probability": 0.2}
    assert features[1]["properties"]["measurements"] == {}

"""patch_truth_fraction on hand-made polygons."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from wsi_engine.errors import DataError
from wsi_engine.tissue import patch_truth_fraction


def _write(tmp_path: Path, geometries: list[dict]) -> Path:
    features = [{"type": "Feature", "geometry": g, "properties": {}} for g in geometries]
    path = tmp_path / "truth.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


def _square(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]


def test_fraction_of_covered_area(tmp_path: Path) -> None:
    # polygon covers x in [0, 150), y in [0, 100): patch 0 fully, patch 1 half, patch 2 not at all
    path = _write(tmp_path, [{"type": "Polygon", "coordinates": [_square(0, 0, 150, 100)]}])
    coords = np.array([[0, 0], [100, 0], [300, 0]])
    np.testing.assert_allclose(patch_truth_fraction(coords, 100, path), [1.0, 0.5, 0.0])


def test_holes_multipolygons_and_overlaps(tmp_path: Path) -> None:
    with_hole = {
        "type": "Polygon",
        "coordinates": [_square(0, 0, 100, 100), _square(0, 0, 50, 100)],
    }
    overlapping = {
        "type": "MultiPolygon",
        "coordinates": [[_square(200, 0, 300, 100)], [_square(200, 0, 250, 100)]],
    }
    point = {"type": "Point", "coordinates": [10, 10]}
    path = _write(tmp_path, [with_hole, overlapping, point])
    coords = np.array([[0, 0], [200, 0], [400, 400]])
    np.testing.assert_allclose(patch_truth_fraction(coords, 100, path), [0.5, 1.0, 0.0])


def test_a_lesion_circle_ranks_patches(tmp_path: Path) -> None:
    from .conftest import LESION, PATCH0, lesion_geojson

    path = lesion_geojson(tmp_path / "lesion.geojson")
    cx, cy, r = LESION
    coords = np.array(
        [[cx - PATCH0 / 2, cy - PATCH0 / 2], [cx + r - PATCH0 / 2, cy - PATCH0 / 2], [0, 0]]
    )
    fraction = patch_truth_fraction(coords, PATCH0, path)
    assert fraction[0] == 1.0 and 0.3 < fraction[1] < 0.7 and fraction[2] == 0.0


def test_bad_files_raise_data_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot read"):
        patch_truth_fraction(np.zeros((1, 2)), 10, tmp_path / "missing.geojson")
    bad = _write(tmp_path, [{"type": "Polygon", "coordinates": [[[0, 0], [1, 1]]]}])
    with pytest.raises(DataError, match="fewer than 3"):
        patch_truth_fraction(np.zeros((1, 2)), 10, bad)

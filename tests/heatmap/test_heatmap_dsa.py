"""``--formats dsa``: large_image annotation JSON, one griddata heatmap per class, on the patch grid."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from wsi_engine.errors import StoreError
from wsi_engine.heatmap import make_heatmaps, make_scale
from wsi_engine.heatmap.dsa import SCHEMA_PATH
from wsi_engine.store.patch_store import PatchStore

from .conftest import CLASSES, PATCH0, build_store, plant_scores


def _validator() -> jsonschema.Draft6Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft6Validator.check_schema(schema)
    return jsonschema.Draft6Validator(schema)


@pytest.mark.parametrize("kind", ["patch", "bag"])
def test_dsa_json_validates_and_its_grid_covers_the_patches_exactly(tmp_path: Path, kind) -> None:
    store_path = build_store(tmp_path / "stores", "slide-j", pixels=False)
    plant_scores(store_path, kind=kind)
    report = make_heatmaps([store_path], "run1", tmp_path / "out", formats=["dsa"])
    assert not report.failed
    document = json.loads((tmp_path / "out" / "slide-j" / "dsa_annotation.json").read_text())
    _validator().validate(document)

    store = PatchStore.open(store_path)
    arrays, _ = store.read_scores("run1")
    coords = store.coords().astype(np.float64)
    quantity = "probs" if kind == "patch" else "attention"
    assert [e["label"]["value"] for e in document["elements"]] == CLASSES
    for index, element in enumerate(document["elements"]):
        assert (element["type"], element["interpretation"]) == ("griddata", "heatmap")
        width, values = element["gridWidth"], np.asarray(element["values"])
        rows = len(values) // width
        assert rows * width == len(values)
        # grid node (i, j) at origin + (i dx, j dy); nodes = patch centres; grid = the patches' bounding box
        origin = np.asarray(element["origin"][:2])
        step = np.asarray([element["dx"], element["dy"]])
        np.testing.assert_allclose(step, [PATCH0, PATCH0])
        np.testing.assert_allclose(origin - PATCH0 / 2, coords.min(axis=0))
        np.testing.assert_allclose(
            origin + step * (width - 1, rows - 1) + PATCH0 / 2, coords.max(axis=0) + PATCH0
        )
        node = (coords + PATCH0 / 2 - origin) / step
        np.testing.assert_allclose(node, np.rint(node))
        cells = (np.rint(node[:, 1]) * width + np.rint(node[:, 0])).astype(int)
        scale = make_scale("fixed", quantity, CLASSES[index])
        expected = np.clip(scale.norm(scale.values(arrays[quantity][:, index])), 0, 1)
        np.testing.assert_allclose(values[cells], expected, atol=1e-4)
        empty = np.ones(len(values), bool)
        empty[cells] = False
        assert (
            empty.any() and (values[empty] == 0).all()
        )  # ellipse of tissue: corners have no patch
        assert element["colorRange"][0].endswith(", 0)")  # 0 drawn transparent


def test_schema_rejects_what_histomicsui_would() -> None:
    validator = _validator()
    bad = {"name": "x", "elements": [{"type": "griddata", "values": [0.5]}]}  # no gridWidth
    assert not validator.is_valid(bad)
    assert validator.is_valid({"name": "x", "elements": [{**bad["elements"][0], "gridWidth": 1}]})


def test_patches_off_the_recorded_stride_are_a_store_error(tmp_path: Path) -> None:
    store_path = build_store(tmp_path / "stores", "slide-o", pixels=False, stride=PATCH0 // 2)
    plant_scores(store_path)  # the store says overlap 0, but patches lie every 64 px
    report = make_heatmaps([store_path], "run1", tmp_path / "out", formats=["dsa"])
    (slide,) = report.slides
    assert isinstance(slide.error, StoreError) and "regular grid" in str(slide.error)

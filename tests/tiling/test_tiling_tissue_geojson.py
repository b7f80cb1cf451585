"""Tiling writes ``<slide_id>.tissue.geojson`` beside each store: QuPath Tissue annotations of the mask."""

from __future__ import annotations

import json

import numpy as np

from wsi_engine.store import PatchStore
from wsi_engine.tiling import TilingConfig, tile_slides
from wsi_engine.tiling.tissue_export import from_viewer_frame, shifted
from wsi_engine.tissue import TissueMask, load_tissue_geojson, tissue_to_geojson


def test_tissue_geojson_beside_the_store_matches_its_mask(synthetic_slide, dask_cluster, tmp_path):
    (result,) = tile_slides(
        [synthetic_slide[0]], tmp_path, TilingConfig(pixel_mode="none"), scheduler=dask_cluster
    ).results
    assert result.status == "ok", result.reason
    path = tmp_path / "synthetic-a.tissue.geojson"
    collection = json.loads(path.read_text())
    assert collection["type"] == "FeatureCollection" and collection["features"]
    for feature in collection["features"]:
        assert feature["properties"]["objectType"] == "annotation"
        assert feature["properties"]["classification"]["name"] == "Tissue"
        assert feature["geometry"]["type"] == "Polygon"
    store = PatchStore.open(result.store)
    mask, downsample = store.tissue_mask()
    back = load_tissue_geojson(path, store.slide_dimensions, 0.5, 0.5 * downsample)
    assert back.mask.shape == mask.shape
    assert np.mean(back.mask != mask) < 0.01  # polygons simplified within half a mask pixel

    path.unlink()  # a store tiled before tissue GeoJSON existed gets it when skipped
    (skipped,) = tile_slides(
        [synthetic_slide[0]], tmp_path, TilingConfig(pixel_mode="none"), scheduler=dask_cluster
    ).results
    assert skipped.status == "skipped" and json.loads(path.read_text()) == collection

    # fed back to tiling as a folder of <slide_id>.tissue.geojson files: the same patches
    (again,) = tile_slides(
        [synthetic_slide[0]], tmp_path / "again", TilingConfig(pixel_mode="none"),
        scheduler=dask_cluster, tissue_geojson=tmp_path,
    ).results  # fmt: skip
    assert again.status == "ok", again.reason
    same = np.isin(
        PatchStore.open(again.store).coords().view("i8,i8"), store.coords().view("i8,i8")
    )
    assert same.mean() > 0.97


def test_viewer_offset_shifts_written_coordinates_and_is_undone_on_reading(tmp_path):
    mask = np.zeros((40, 60), bool)
    mask[10:30, 20:50] = True
    tissue = TissueMask.spanning(mask, (960, 640), 0.5, "test")
    plain = tissue_to_geojson(tissue)
    moved = shifted(tissue_to_geojson(tissue), (96, 160))  # OpenSlide bounds origin
    a = np.array(plain["features"][0]["geometry"]["coordinates"][0])
    b = np.array(moved["features"][0]["geometry"]["coordinates"][0])
    np.testing.assert_allclose(a - b, np.broadcast_to([96, 160], a.shape))
    path = tmp_path / "t.geojson"
    path.write_text(json.dumps(moved))
    read = load_tissue_geojson(path, (960, 640), 0.5, 8.0)  # viewer frame, as QuPath exports it
    assert not np.array_equal(read.mask, mask)
    assert np.array_equal(from_viewer_frame(read, (96, 160)).mask, mask)

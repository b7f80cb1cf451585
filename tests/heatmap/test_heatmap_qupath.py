"""QuPath-facing outputs: classified tiles with stable ids, the viewer frame, the OME-TIFF overlay."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import openslide
import pytest
import tifffile
import tiffslide
import zarr

from wsi_engine.heatmap import make_heatmaps
from wsi_engine.store.layout import ATTRS_KEY

from .conftest import CLASSES, MPP, build_store, plant_scores


def _tiles(out: Path, slide_id: str) -> list[dict]:
    return json.loads((out / slide_id / "tiles.geojson").read_text())["features"]


def _set_bounds(store: Path, bounds: list[int]) -> None:
    root = zarr.open_group(str(store), mode="r+")
    attrs = dict(root.attrs[ATTRS_KEY])
    attrs["slide"] = {**attrs["slide"], "bounds": bounds}
    root.attrs[ATTRS_KEY] = attrs


def test_tiles_carry_the_argmax_class_and_a_stable_unique_id(tmp_path):
    store = build_store(tmp_path / "stores", "slide-q")
    arrays = plant_scores(store)
    make_heatmaps([store], "run1", tmp_path / "a", formats=["geojson"])
    tiles = _tiles(tmp_path / "a", "slide-q")
    expected = [CLASSES[i] for i in arrays["probs"].argmax(axis=1)]
    assert [t["properties"]["classification"]["name"] for t in tiles] == expected
    assert {"normal", "tumor"} <= set(expected)
    colours = {t["properties"]["classification"]["name"]: tuple(t["properties"]["classification"]["color"]) for t in tiles}  # fmt: skip
    assert colours["normal"] != colours["tumor"]
    ids = [t["id"] for t in tiles]
    assert len(set(ids)) == len(ids) and all(uuid.UUID(i).version == 5 for i in ids)
    plant_scores(store, "run2", kind="bag")  # another run: same tiles, same ids
    make_heatmaps([store], "run2", tmp_path / "b", formats=["geojson"])
    again = _tiles(tmp_path / "b", "slide-q")
    assert [t["id"] for t in again] == ids
    attention = plant_scores(store, "run3", kind="bag")["attention"]
    make_heatmaps([store], "run3", tmp_path / "c", formats=["geojson"])
    bag = [t["properties"]["classification"]["name"] for t in _tiles(tmp_path / "c", "slide-q")]
    assert bag == [CLASSES[i] for i in attention.argmax(axis=1)]


def test_openslide_bounds_shift_tiles_and_crop_the_ome_overlay(tmp_path):
    store = build_store(tmp_path / "stores", "slide-b", pixels=False)
    plant_scores(store)
    make_heatmaps([store], "run1", tmp_path / "plain", formats=["geojson", "tiff"])
    bounds = [100, 60, 1900, 1400]
    _set_bounds(store, bounds)
    make_heatmaps([store], "run1", tmp_path / "shifted", formats=["geojson", "tiff"])
    plain, shifted = _tiles(tmp_path / "plain", "slide-b"), _tiles(tmp_path / "shifted", "slide-b")
    a = np.array(plain[0]["geometry"]["coordinates"][0])
    b = np.array(shifted[0]["geometry"]["coordinates"][0])
    np.testing.assert_array_equal(a - b, np.broadcast_to([100, 60], a.shape))
    with tifffile.TiffFile(tmp_path / "shifted" / "slide-b" / "scoremap_tumor.ome.tiff") as tif:
        pixels = tif.series[0].levels[0].asarray()
        ome = tif.ome_metadata
    size_x = float(ome.split('PhysicalSizeX="')[1].split('"')[0])
    size_y = float(ome.split('PhysicalSizeY="')[1].split('"')[0])
    assert pixels.shape[:2] == (88, 119)  # ceil(1400 / 16), ceil(1900 / 16)
    assert pixels.shape[1] * size_x == pytest.approx(1900 * MPP, rel=1e-12)
    assert pixels.shape[0] * size_y == pytest.approx(1400 * MPP, rel=1e-12)
    with tifffile.TiffFile(tmp_path / "plain" / "slide-b" / "scoremap_tumor.ome.tiff") as tif:
        whole = tif.series[0].levels[0].asarray()
    np.testing.assert_array_equal(pixels, whole[4 : 4 + 88, 6 : 6 + 119])  # origin 60/16, 100/16
    for name in ("scoremap_tumor.tiff", "scoremap_tumor.values.tiff"):  # every map: viewer frame
        assert tifffile.imread(tmp_path / "shifted" / "slide-b" / name).shape[:2] == (88, 119)


@pytest.fixture(scope="module")
def odd_slide_store(tmp_path_factory):
    """(store, slide) of a generated 1000 × 700 px slide (not a multiple of the canvas downsample)."""
    from distributed import Client

    from wsi_engine.synthetic import generate_slide
    from wsi_engine.tiling import TilingConfig, tile_slides

    root = tmp_path_factory.mktemp("odd")
    slide = root / "odd-1.tiff"
    generate_slide(slide, width=1000, height=700, mpp=0.5, lesion_class="tumor", seed=5)
    config = TilingConfig(patch_size=32, target_mpp=2.0, pixel_mode="none")
    with Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None) as c:
        (result,) = tile_slides([slide], root / "stores", config, scheduler=c).results
    assert result.status == "ok", result.reason
    plant_scores(result.store)
    return result.store, slide


def test_ome_overlay_has_the_slides_physical_extent_in_every_reader(odd_slide_store, tmp_path):
    store, slide = odd_slide_store
    make_heatmaps([store], "run1", tmp_path, formats=["tiff"], class_name="tumor")
    path = tmp_path / "odd-1" / "scoremap_tumor.ome.tiff"
    with openslide.OpenSlide(str(slide)) as source:
        width, height = source.dimensions
        extent = (width * float(source.properties["openslide.mpp-x"]),
                  height * float(source.properties["openslide.mpp-y"]))  # fmt: skip
    with tifffile.TiffFile(path) as tif:
        assert tif.is_ome
        levels = tif.series[0].levels
        ome = tif.ome_metadata
        pixels = levels[0].asarray()
    assert len(levels) >= 3 and [lv.shape[1] for lv in levels[:3]] == [63, 32, 16]
    size = [float(ome.split(f'PhysicalSize{a}="')[1].split('"')[0]) for a in "XY"]
    assert levels[0].shape[1] * size[0] == pytest.approx(extent[0], rel=1e-12)
    assert levels[0].shape[0] * size[1] == pytest.approx(extent[1], rel=1e-12)
    assert "downsampled 16x from the slide's level 0" in ome and "(1000 x 700 px" in ome
    assert pixels[..., 3].max() == 255 and pixels[..., 3].min() == 0
    for opener, prefix in ((openslide.OpenSlide, "openslide"), (tiffslide.TiffSlide, "tiffslide")):
        with opener(str(path)) as overlay:
            assert overlay.dimensions == (63, 44)
            mpp_x = float(overlay.properties[f"{prefix}.mpp-x"])
            assert overlay.dimensions[0] * mpp_x == pytest.approx(extent[0], rel=1e-9)
            region = np.asarray(overlay.read_region((0, 0), 0, overlay.dimensions))
            opaque = pixels[..., 3] == 255
            np.testing.assert_array_equal(region[opaque], pixels[opaque])
    with tiffslide.TiffSlide(str(path)) as overlay:
        assert overlay.level_count >= 3

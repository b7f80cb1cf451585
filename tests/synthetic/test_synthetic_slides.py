"""Synthetic slides as files: both readers agree on geometry and metadata, truth is consistent."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import openslide
import pytest
import tifffile
import tiffslide
from PIL import Image

from wsi_engine.errors import ConfigError
from wsi_engine.synthetic import generate_slide

SIZE = (4096, 3072)


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def slides(tmp_path_factory):
    """A generic tumour slide with all artefacts and an aperio normal slide."""
    root = tmp_path_factory.mktemp("slides")
    generic = generate_slide(
        root / "generic.tiff",
        width=SIZE[0],
        height=SIZE[1],
        lesion_class="tumor",
        seed=3,
        artefacts=("pen", "black_edge", "blur"),
    )
    aperio = generate_slide(root / "aperio.svs", width=2048, height=2048, flavor="aperio", seed=4)
    return {"generic": generic, "aperio": aperio}


@pytest.mark.parametrize("flavor", ["generic", "aperio"])
def test_both_readers_report_the_pyramid_and_mpp(slides, flavor):
    truth = slides[flavor]
    vendor = "generic-tiff" if flavor == "generic" else "aperio"
    levels = len(truth.level_dimensions)
    assert levels >= 3
    with openslide.OpenSlide(truth.path) as slide:
        assert slide.properties["openslide.vendor"] == vendor
        assert slide.dimensions == (truth.width, truth.height)
        assert slide.level_count == levels
        assert slide.level_dimensions == truth.level_dimensions
        assert slide.level_downsamples == pytest.approx([4.0**k for k in range(levels)])
        assert float(slide.properties["openslide.mpp-x"]) == pytest.approx(0.5)
        assert float(slide.properties["openslide.mpp-y"]) == pytest.approx(0.5)
        if flavor == "aperio":
            assert slide.properties["aperio.AppMag"] == "20"
            assert "thumbnail" in slide.associated_images
    assert tiffslide.TiffSlide.detect_format(truth.path) == vendor
    with tiffslide.TiffSlide(truth.path) as slide:
        assert slide.dimensions == (truth.width, truth.height)
        assert slide.level_count == levels
        assert tuple(slide.level_dimensions) == truth.level_dimensions
        assert slide.level_downsamples == pytest.approx([4.0**k for k in range(levels)])
        assert slide.properties["tiffslide.mpp-x"] == pytest.approx(0.5)
        if flavor == "aperio":
            assert slide.properties["tiffslide.vendor"] == "aperio"


def test_generic_flavour_stores_mpp_as_centimetre_resolution(slides):
    with tifffile.TiffFile(slides["generic"].path) as tif:
        page = tif.pages[0]
        assert page.tags["ResolutionUnit"].value == tifffile.RESUNIT.CENTIMETER
        assert page.tags["XResolution"].value == (20000, 1)
        assert page.is_tiled and page.compression == tifffile.COMPRESSION.JPEG
        assert "Software" not in page.tags and "DateTime" not in page.tags


def test_readers_decode_the_same_pixels(slides):
    truth = slides["generic"]
    lesion = truth.lesions[0]
    origin = (int(lesion.cx) - 256, int(lesion.cy) - 256)
    with openslide.OpenSlide(truth.path) as a, tiffslide.TiffSlide(truth.path) as b:
        pixels_a = np.asarray(a.read_region(origin, 0, (512, 512)).convert("RGB"), dtype=int)
        pixels_b = np.asarray(b.read_region(origin, 0, (512, 512)).convert("RGB"), dtype=int)
    assert np.abs(pixels_a - pixels_b).max() <= 2
    assert pixels_a.std() > 10  # real content, not a blank tile


def test_lower_levels_look_like_downsampled_level_0(slides):
    truth = slides["generic"]
    with openslide.OpenSlide(truth.path) as slide:
        level0 = np.asarray(
            slide.read_region((1024, 1024), 0, (1024, 1024)).convert("RGB"), dtype=float
        )
        level1 = np.asarray(
            slide.read_region((1024, 1024), 1, (256, 256)).convert("RGB"), dtype=float
        )
    pooled = level0.reshape(256, 4, 256, 4, 3).mean(axis=(1, 3))
    assert np.abs(pooled - level1).mean() < 12
    assert np.corrcoef(pooled.ravel(), level1.ravel())[0, 1] > 0.85


def test_tissue_mask_matches_the_pixels(slides):
    truth = slides["generic"]
    assert truth.mask_downsample == 16
    with openslide.OpenSlide(truth.path) as slide:
        image = np.asarray(
            slide.read_region((0, 0), 2, slide.level_dimensions[2]).convert("RGB"), dtype=float
        )
    assert image.shape[:2] == truth.tissue_mask.shape  # level 2 is 16x downsampled too
    brightness = image.mean(axis=2)
    assert brightness[truth.tissue_mask].mean() < 200
    assert np.median(brightness[~truth.tissue_mask]) > 230
    assert 0.3 <= truth.tissue_fraction <= 0.6


def test_lesions_lie_inside_the_tissue(slides, tmp_path):
    truth = slides["generic"]
    assert len(truth.lesions) >= 1
    assert truth.lesion_mask.any()
    assert not (truth.lesion_mask & ~truth.tissue_mask).any()
    assert 0.08 <= truth.lesion_fraction <= 0.35
    ds = truth.mask_downsample
    for feature in truth.geojson()["features"]:
        ring = np.asarray(feature["geometry"]["coordinates"][0])
        cols = np.clip((ring[:, 0] / ds).astype(int), 0, truth.tissue_mask.shape[1] - 1)
        rows = np.clip((ring[:, 1] / ds).astype(int), 0, truth.tissue_mask.shape[0] - 1)
        assert truth.tissue_mask[rows, cols].all()


def test_lesion_pixels_are_dark_violet(slides):
    truth = slides["generic"]
    lesion = truth.lesions[0]
    with openslide.OpenSlide(truth.path) as slide:
        side = int(lesion.radius)
        centre = slide.read_region(
            (int(lesion.cx) - side // 2, int(lesion.cy) - side // 2), 0, (side, side)
        )
    r, g, b = np.asarray(centre.convert("RGB"), dtype=float).reshape(-1, 3).mean(axis=0)
    assert b > g + 20 and r > g  # purple: red and blue over green
    assert (r + g + b) / 3 < 150


def test_truth_files_are_qupath_geojson_and_scaled_pngs(slides, tmp_path):
    truth = slides["generic"]
    paths = truth.save(tmp_path, "slide_x", "tumor")
    collection = json.loads(paths["geojson"].read_text())
    assert collection["type"] == "FeatureCollection"
    assert len(collection["features"]) == len(truth.lesions)
    feature = collection["features"][0]
    assert feature["type"] == "Feature"
    assert feature["geometry"]["type"] == "Polygon"
    ring = feature["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1] and len(ring) > 32
    assert feature["properties"]["objectType"] == "annotation"
    assert feature["properties"]["classification"] == {"name": "tumor", "color": [200, 0, 0]}
    for key, mask in (("lesion_mask", truth.lesion_mask), ("tissue_mask", truth.tissue_mask)):
        with Image.open(paths[key]) as png:
            assert png.size == (mask.shape[1], mask.shape[0])
            assert png.text["downsample"] == "16"
            assert np.array_equal(np.asarray(png) > 0, mask)
    summary = json.loads(paths["summary"].read_text())
    assert summary["label"] == "tumor"
    assert summary["mask_downsample"] == 16
    assert summary["lesion_count"] == len(truth.lesions)
    assert summary["artefacts"] == ["pen", "black_edge", "blur"]
    assert summary["level_downsamples"] == [1.0, 4.0, 16.0]


def test_normal_slides_have_no_lesions(slides):
    truth = slides["aperio"]
    assert truth.lesion_class is None and truth.lesions == ()
    assert not truth.lesion_mask.any()
    assert truth.geojson() == {"type": "FeatureCollection", "features": []}


def test_same_seed_gives_identical_bytes_with_any_worker_count_and_another_seed_differs(tmp_path):
    options = {"width": 1024, "height": 1024, "lesion_class": "necrosis", "artefacts": ("pen",)}
    first = generate_slide(tmp_path / "a.svs", flavor="aperio", seed=11, **options)
    second = generate_slide(tmp_path / "b.svs", flavor="aperio", seed=11, workers=2, **options)
    other = generate_slide(tmp_path / "c.svs", flavor="aperio", seed=12, **options)
    assert _sha256(first.path) == _sha256(second.path)
    assert _sha256(first.path) != _sha256(other.path)


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"width": 100}, "width"),
        ({"mpp": 0.0}, "--mpp"),
        ({"tile_size": 100}, "--tile-size"),
        ({"flavor": "philips"}, "flavour"),
        ({"lesion_class": "cancer"}, "class"),
        ({"artefacts": ("smudge",)}, "artefact"),
    ],
)
def test_bad_options_raise_config_errors(tmp_path, options, words):
    arguments = {"width": 1024, "height": 1024, **options}
    with pytest.raises(ConfigError, match=words):
        generate_slide(tmp_path / "bad.tiff", **arguments)
    assert not (tmp_path / "bad.tiff").exists()

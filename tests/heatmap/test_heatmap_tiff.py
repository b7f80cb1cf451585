"""Pyramidal score-map TIFF: OpenSlide and tiffslide open it; geometry and pixels match the score map."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import openslide
import tifffile
import tiffslide

from wsi_engine.heatmap import make_heatmaps, make_scale
from wsi_engine.heatmap.pyramid_tiff import tiff_downsample
from wsi_engine.heatmap.scoremap import canvas_shape, score_canvas
from wsi_engine.store.patch_store import PatchStore

from .conftest import HEIGHT, MPP, PATCH0, WIDTH, build_store, plant_scores


def test_tiff_opens_in_openslide_and_tiffslide_with_the_slide_geometry(tmp_path: Path) -> None:
    store_path = build_store(tmp_path / "stores", "slide-t", pixels=False, stride=PATCH0 // 2)
    plant_scores(store_path, kind="bag")
    make_heatmaps([store_path], "run1", tmp_path / "out", formats=["tiff"], class_name="tumor")
    folder = tmp_path / "out" / "slide-t"
    tiff_path = folder / "scoremap_tumor.tiff"
    record = json.loads(Path(f"{tiff_path}.json").read_text())
    downsample = record["downsample"]
    assert downsample == tiff_downsample(PATCH0) == 16
    size = (math.ceil(WIDTH / downsample), math.ceil(HEIGHT / downsample))

    # expected pixels: the same canvas, coloured by the same fixed scale
    store = PatchStore.open(store_path)
    arrays, _ = store.read_scores("run1")
    scale = make_scale("fixed", "attention", "tumor")
    canvas = score_canvas(
        store.coords(), scale.values(arrays["attention"][:, 1]), PATCH0,
        canvas_shape((WIDTH, HEIGHT), downsample), downsample, tissue=store.tissue_mask(),
    )  # fmt: skip
    expected = scale.colours(canvas)
    opaque = expected[..., 3] == 255
    assert opaque.sum() > 100 and (expected[..., 3][~opaque] == 0).all()

    for opener, prefix in ((openslide.OpenSlide, "openslide"), (tiffslide.TiffSlide, "tiffslide")):
        slide = opener(str(tiff_path))
        try:
            assert slide.dimensions == size
            assert slide.level_count >= 3
            assert slide.level_downsamples[:3] == (1.0, 2.0, 4.0)
            assert math.isclose(
                float(slide.properties[f"{prefix}.mpp-x"]), MPP * downsample, rel_tol=1e-4
            )
            pixels = np.asarray(slide.read_region((0, 0), 0, size))
            np.testing.assert_array_equal(pixels[opaque], expected[opaque])
            assert (pixels[..., 3][~opaque] == 0).all()
            assert np.asarray(slide.read_region((0, 0), 2, slide.level_dimensions[2])).shape[2] == 4
        finally:
            slide.close()
    with tifffile.TiffFile(tiff_path) as tif:
        assert json.loads(tif.pages[0].description)["downsample"] == downsample
        assert (
            tif.pages[0].is_tiled and tif.pages[0].compression == tifffile.COMPRESSION.ADOBE_DEFLATE
        )
    values = tifffile.imread(folder / "scoremap_tumor.values.tiff")
    np.testing.assert_allclose(values, canvas.astype(np.float32), equal_nan=True)

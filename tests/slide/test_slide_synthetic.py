"""Slide reading on small TIFFs written here: µm/px resolution order, bad input, pixel semantics."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import tifffile

from wsi_engine.errors import ConfigError, SlideError
from wsi_engine.slide import Mpp, load_mpp_table, open_slide
from wsi_engine.slide.open import BACKENDS
from wsi_engine.slide.reader import to_rgb

SIZE = (512, 384)  # level-0 (w, h) px of the written pyramids
TILE = 64
APERIO_40X = (
    "Aperio Image Library v10.0.51\r\n512x384 [0,0 512x384] (64x64) JPEG/RGB Q=90|AppMag = 40"
)


def pyramid_pixels() -> np.ndarray:
    """(h, w, 3) level-0 pixels: smooth gradients (JPEG-safe) with a distinct value per region."""
    y, x = np.mgrid[0 : SIZE[1], 0 : SIZE[0]]
    return np.stack(
        [x * 255 // SIZE[0], y * 255 // SIZE[1], (x + y) % 256 // 2 + 64], axis=2
    ).astype(np.uint8)


def write_tiff(
    path, *, levels=3, mpp=None, unit="CENTIMETER", description=None, compression="zlib"
):
    """A tiled TIFF pyramid (each level half the previous); ``mpp`` µm/px is stored as resolution tags."""
    pixels = pyramid_pixels()
    extra = {}
    if mpp is not None:
        per_unit = {"CENTIMETER": 1e4, "INCH": 25400.0, "NONE": 1.0}[unit]
        extra = {"resolution": (per_unit / mpp, per_unit / mpp), "resolutionunit": unit}
    with tifffile.TiffWriter(path) as tif:
        for level in range(levels):
            step = 2**level
            tif.write(
                pixels[::step, ::step],
                tile=(TILE, TILE),
                photometric="rgb",
                compression=compression,
                subfiletype=1 if level else 0,
                description=description if level == 0 else None,
                metadata=None,
                **extra,
            )
    return path


@pytest.fixture
def tiff_025(tmp_path):
    """3-level pyramid with resolution tags for 0.25 µm/px."""
    return write_tiff(tmp_path / "pyr_025.tif", mpp=0.25)


@pytest.fixture
def tiff_bare(tmp_path):
    """3-level pyramid with no resolution information."""
    return write_tiff(tmp_path / "bare.tif")


# -- µm/px resolution order ----------------------------------------------------------------


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_metadata_mpp_from_resolution_tags(tiff_025, backend):
    with open_slide(tiff_025, backend) as slide:
        assert slide.backend == backend
        assert slide.mpp.x == pytest.approx(0.25) and slide.mpp.y == pytest.approx(0.25)
        assert slide.mpp.source.startswith("metadata:")
        assert slide.level_count == 3 and slide.dimensions == SIZE
        assert slide.tile_size(2) == (TILE, TILE)


def test_inch_resolution_unit_is_converted(tmp_path):
    with open_slide(write_tiff(tmp_path / "inch.tif", mpp=0.5, unit="INCH")) as slide:
        assert slide.mpp.x == pytest.approx(0.5)


def test_option_beats_table_beats_metadata(tiff_025):
    table = {"pyr_025": (0.4, 0.41)}
    with open_slide(tiff_025, mpp=0.3, mpp_table=table) as slide:
        assert slide.mpp == Mpp(0.3, 0.3, "option")
        assert slide.mpp_notes == ("µm/px 0.3 (option) overrides 0.25 (metadata:tiffslide.mpp-x)",)
    with open_slide(tiff_025, mpp=0.2501) as slide:
        assert slide.mpp_notes == ()  # agrees with the metadata
    with open_slide(tiff_025, mpp_table=table) as slide:
        assert slide.mpp == Mpp(0.4, 0.41, "table")
    with open_slide(tiff_025, mpp_table={"other": (1.0, 1.0)}) as slide:
        assert slide.mpp.source.startswith("metadata:")


def test_objective_power_is_last_resort_and_noted(tmp_path):
    path = write_tiff(tmp_path / "aperio.svs", levels=1, description=APERIO_40X, compression="jpeg")
    for backend in ("openslide", "tiffslide"):
        with open_slide(path, backend) as slide:
            assert slide.format == "aperio" and slide.objective_power == 40
            assert slide.mpp == Mpp(0.25, 0.25, "objective-power")
            assert any("objective power" in note for note in slide.mpp_notes)
        with open_slide(path, backend, mpp=0.26) as slide:
            assert slide.mpp.source == "option" and slide.mpp_notes == ()


@pytest.mark.parametrize("unit", ["NONE", "CENTIMETER"])
def test_missing_or_implausible_mpp_is_an_error_saying_how_to_fix(tmp_path, unit):
    # unit NONE: resolution has no physical meaning; 28.35 px/cm is the 72-dpi default (352.8 µm/px)
    path = write_tiff(
        tmp_path / "nompp.tif", mpp=4.0 if unit == "NONE" else 1e4 / 28.346, unit=unit
    )
    with pytest.raises(SlideError, match="no µm/px") as caught:
        open_slide(path)
    assert caught.value.path == str(path) and "--mpp" in str(caught.value)
    with open_slide(path, require_mpp=False) as slide:
        assert slide.mpp is None
        assert any("352.78" in note for note in slide.mpp_notes) == (unit == "CENTIMETER")


def test_invalid_option_mpp_is_a_config_error(tiff_bare):
    with pytest.raises(ConfigError, match="positive"):
        open_slide(tiff_bare, mpp=-1.0)


# -- µm/px table ---------------------------------------------------------------------------


def test_mpp_table_columns_and_file_name_keys(tmp_path, tiff_bare):
    single = tmp_path / "single.csv"
    single.write_text("slide_id,mpp\nbare.tif,0.5\nother,0.25\n")
    assert load_mpp_table(single) == {"bare": (0.5, 0.5), "other": (0.25, 0.25)}
    pair = tmp_path / "pair.csv"
    pair.write_text(" slide_id , mpp_x , mpp_y \nbare,0.5,0.52\n")
    table = load_mpp_table(pair)
    with open_slide(tiff_bare, mpp_table=table) as slide:
        assert slide.mpp == Mpp(0.5, 0.52, "table")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("slide,um\na,0.5\n", "line 1: header"),
        ("slide_id,mpp\na,0.5\nb,abc\n", "line 3: not a number"),
        ("slide_id,mpp\na,0.5\nb,-0.5\n", "line 3: µm/px must be a positive"),
        ("slide_id,mpp_x,mpp_y\na,0.5\n", "line 2: missing cells"),
        ("slide_id,mpp\na,0.5\na.svs,0.6\n", "line 3: slide id 'a' already given on line 2"),
    ],
)
def test_bad_mpp_table_names_file_and_line(tmp_path, text, message):
    path = tmp_path / "table.csv"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_mpp_table(path)
    assert caught.value.path == str(path)


def test_missing_mpp_table_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_mpp_table(tmp_path / "absent.csv")


# -- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize("cut", ["in level 0", "in level 1", "at level 1"])
def test_truncated_tiff_is_a_slide_error(tmp_path, tiff_025, cut):
    """Cut inside tile data (the probe read fails) or exactly where level 1 starts (the
    image chain then points past the end of the file, level 0 alone is intact)."""
    data = tiff_025.read_bytes()
    with tifffile.TiffFile(tiff_025) as tif:
        level1 = tif.pages[1].offset
    keep = {"in level 0": level1 // 2, "in level 1": level1 + 1000, "at level 1": level1}[cut]
    truncated = tmp_path / "cut.tif"
    truncated.write_bytes(data[:keep])
    with pytest.raises(SlideError) as caught:
        open_slide(truncated)
    message = str(caught.value)
    assert (
        caught.value.path == str(truncated) and "tiffslide:" in message and "openslide:" in message
    )


def test_text_file_named_svs_is_refused(tmp_path):
    fake = tmp_path / "notes.svs"
    fake.write_text("this is not a slide\n" * 20)
    with pytest.raises(SlideError, match="cannot open as a slide") as caught:
        open_slide(fake)
    assert caught.value.path == str(fake)


def test_jpeg_image_is_refused(tmp_path):
    from PIL import Image

    path = tmp_path / "photo.jpg"
    Image.new("RGB", (64, 48), "red").save(path)
    with pytest.raises(SlideError, match="cannot open as a slide"):
        open_slide(path, mpp=0.5)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "absent.svs", "file not found"),
        (lambda d: d, "is a directory"),
        (lambda d: (d / "empty.svs").open("w").close() or d / "empty.svs", "empty"),
    ],
    ids=["missing", "directory", "empty"],
)
def test_paths_that_are_not_slide_files(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(SlideError, match=message) as caught:
        open_slide(path)
    assert caught.value.path == str(path) and caught.value.hint


def test_unreadable_file_is_a_slide_error(tiff_025, monkeypatch):
    monkeypatch.setattr(
        "wsi_engine.slide.open.os.access", lambda path, mode: False
    )  # root reads all
    with pytest.raises(SlideError, match="not readable"):
        open_slide(tiff_025)


def test_auto_falls_back_and_named_backend_does_not(tmp_path):
    striped = tmp_path / "striped.tif"
    tifffile.imwrite(striped, pyramid_pixels(), photometric="rgb", metadata=None)
    with pytest.raises(SlideError, match="cannot open with openslide"):
        open_slide(striped, "openslide", mpp=0.5)
    with open_slide(striped, mpp=0.5) as slide:  # auto: tiffslide takes the plain TIFF
        assert (slide.backend, slide.format, slide.level_count) == ("tiffslide", "tiff", 1)
        assert slide.tile_size(0) is None
    # a .scn that OpenSlide rejects: auto tries OpenSlide first, then falls back to tiffslide
    renamed = striped.rename(tmp_path / "striped.scn")
    with open_slide(renamed, mpp=0.5) as slide:
        assert slide.backend == "tiffslide"
    fake = tmp_path / "fake.tif"
    fake.write_bytes(b"II*\x00" + b"\x00" * 64)
    with pytest.raises(SlideError, match="cannot open with tiffslide"):
        open_slide(fake, "tiffslide")
    with pytest.raises(ConfigError, match="unknown backend"):
        open_slide(fake, "pillow")


# -- pixels --------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_read_region_is_rgb_with_white_outside(tiff_025, backend):
    expected = pyramid_pixels()
    with open_slide(tiff_025, backend) as slide:
        inside = slide.read_region((100, 50), 0, (70, 40))
        assert (
            inside.dtype == np.uint8 and inside.shape == (40, 70, 3) and inside.flags.c_contiguous
        )
        np.testing.assert_array_equal(inside, expected[50:90, 100:170])
        level1 = slide.read_region((64, 32), 1, (20, 10))  # location / downsample is whole: exact
        np.testing.assert_array_equal(level1, expected[::2, ::2][16:26, 32:52])
        edge = slide.read_region((SIZE[0] - 10, -5), 0, (20, 15))
        assert (edge[:5] == 255).all() and (edge[:, 10:] == 255).all()
        np.testing.assert_array_equal(edge[5:, :10], expected[:10, SIZE[0] - 10 :])


def test_alpha_is_composited_on_white():
    rgba = np.array([[[200, 0, 0, 255], [200, 0, 0, 0], [200, 0, 0, 128]]], dtype=np.uint8)
    np.testing.assert_array_equal(to_rgb(rgba)[0], [[200, 0, 0], [255, 255, 255], [227, 127, 127]])
    assert to_rgb(np.full((2, 3), 7, np.uint8)).shape == (2, 3, 3)
    with pytest.raises(ValueError, match="8-bit"):
        to_rgb(np.zeros((2, 2, 3), np.uint16))


def test_levels_thumbnail_and_misuse(tiff_025):
    with open_slide(tiff_025) as slide:
        assert slide.level_downsamples == (1.0, 2.0, 4.0)
        picks = [slide.best_level_for_downsample(d) for d in (0.5, 1.5, 2.0, 3.97, 4.0, 100)]
        assert picks == [0, 0, 1, 2, 2, 2]
        thumb = slide.get_thumbnail((100, 100))
        assert thumb.shape == (75, 100, 3) and thumb.dtype == np.uint8
        assert slide.get_thumbnail((4096, 4096)).shape == (SIZE[1], SIZE[0], 3)  # never enlarged
        with pytest.raises(ValueError, match="level 3 out of range"):
            slide.read_region((0, 0), 3, (1, 1))
        with pytest.raises(TypeError, match="open_slide"):
            pickle.dumps(slide)
        with pytest.raises(SlideError, match="no associated image 'label'"):
            slide.read_associated_image("label")


def test_read_failure_names_file_level_and_region(tmp_path, tiff_025):
    """Damage in level-0 tile data is found only when read: a SlideError saying where."""
    data = bytearray(tiff_025.read_bytes())
    with tifffile.TiffFile(tiff_025) as tif:
        offset, count = tif.pages[0].dataoffsets[9], tif.pages[0].databytecounts[9]  # tile (1, 1)
    data[offset : offset + count] = b"\xff" * count
    broken = tmp_path / "broken.tif"
    broken.write_bytes(bytes(data))
    with open_slide(broken, "tiffslide") as slide:
        with pytest.raises(SlideError) as caught:
            slide.read_region((TILE + 1, TILE + 1), 0, (8, 8))
    message = str(caught.value)
    assert (
        str(broken) in message and "level 0" in message and f"x={TILE + 1} y={TILE + 1}" in message
    )

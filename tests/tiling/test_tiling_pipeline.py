"""Tiling synthetic slides end to end: coverage, pixel exactness, JPEG size, local vs distributed, skip."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import tiffslide
import yaml
from PIL import Image

from wsi_engine.cli import main
from wsi_engine.errors import StoreError
from wsi_engine.store import PatchStore
from wsi_engine.tiling import REPORT_NAME, TilingConfig, tile_slides


def _tile(slide, out, cluster, **config):
    report = tile_slides([slide], out, TilingConfig(**config), scheduler=cluster)
    (result,) = report.results
    assert result.status == "ok", result.reason
    return PatchStore.open(result.store)


def _folder_bytes(path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


@pytest.fixture(scope="module")
def jpeg_store(synthetic_slide, dask_cluster, tmp_path_factory):
    return _tile(synthetic_slide[0], tmp_path_factory.mktemp("jpeg"), dask_cluster)


@pytest.fixture(scope="module")
def lossless_store(synthetic_slide, dask_cluster, tmp_path_factory):
    return _tile(
        synthetic_slide[0], tmp_path_factory.mktemp("lossless"), dask_cluster, pixel_mode="lossless"
    )


def test_patches_cover_the_planted_tissue_and_not_the_background(
    jpeg_store, synthetic_slide, tools
):
    _, truth = synthetic_slide
    coords = jpeg_store.coords()
    assert len(coords) > 20
    on_truth = tools.truth_fraction(truth, coords, 256)
    assert on_truth.min() > 0.2, "a patch lies on background"
    xs, ys = np.arange(0, truth.width - 255, 256), np.arange(0, truth.height - 255, 256)
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    mostly_tissue = grid[tools.truth_fraction(truth, grid, 256) >= 0.5]
    kept = set(map(tuple, coords.tolist()))
    assert all(tuple(xy) in kept for xy in mostly_tissue.tolist()), (
        "a mostly-tissue patch was dropped"
    )
    fractions = jpeg_store.tissue_fraction()
    assert fractions.min() >= 0.25 and fractions.max() <= 1.0


def test_store_layout_and_attributes(jpeg_store, synthetic_slide):
    attrs = jpeg_store.attrs
    assert attrs["schema_version"] == 1 and attrs["n_patches"] == jpeg_store.n_patches
    assert attrs["slide"]["path"] == str(synthetic_slide[0].resolve())
    assert attrs["slide"]["fingerprint"].startswith("sha256:")
    assert attrs["slide"]["mpp"] == [0.5, 0.5] and attrs["slide"]["mpp_source"].startswith(
        "metadata:"
    )
    tiling = attrs["tiling"]
    assert (tiling["pixel_mode"], tiling["jpeg_quality"], tiling["patch_size"]) == ("jpeg", 90, 256)
    assert tiling["read_level"] == 0 and tiling["effective_mpp"] == 0.5
    assert attrs["tissue"]["source"] == "detected" and "seg_mpp" in attrs["tissue"]
    assert attrs["created"] <= attrs["completed"]
    patches = jpeg_store.root["patches"]
    assert patches.shape == (jpeg_store.n_patches, 256, 256, 3)
    assert patches.shards == (128, 256, 256, 3) and patches.chunks == (1, 256, 256, 3)
    shard_files = [f for f in (jpeg_store.path / "patches" / "c").rglob("*") if f.is_file()]
    assert len(shard_files) == -(-jpeg_store.n_patches // 128)
    thumbnail, downsample = jpeg_store.thumbnail()
    assert thumbnail.shape[:2] == (128, 192) and downsample == pytest.approx(16)
    mask, mask_downsample = jpeg_store.tissue_mask()
    assert mask.any() and mask_downsample == pytest.approx(16)
    assert "_progress" not in jpeg_store.root


@pytest.mark.parametrize("target_mpp", [0.5, 2.0, 1.0], ids=["level0", "level1", "resized"])
def test_lossless_patches_equal_an_independent_read(
    target_mpp, synthetic_slide, dask_cluster, tmp_path
):
    # resample: lanczos, the earlier versions' path, kept exactly (test_tiling_resample.py: others)
    store = _tile(
        synthetic_slide[0],
        tmp_path,
        dask_cluster,
        pixel_mode="lossless",
        target_mpp=target_mpp,
        resample="lanczos",
    )
    tiling = store.attrs["tiling"]
    level, window, size = tiling["read_level"], tiling["read_window"], tiling["patch_size"]
    assert (level, window) == {0.5: (0, 256), 2.0: (1, 256), 1.0: (0, 512)}[target_mpp]
    patches = store.read_patches(0, store.n_patches)
    with tiffslide.TiffSlide(synthetic_slide[0]) as slide:
        for xy, patch in zip(store.coords(), patches, strict=True):
            expected = slide.read_region(
                (int(xy[0]), int(xy[1])), level, (window, window), as_array=True
            )
            if window != size:
                expected = np.asarray(
                    Image.fromarray(expected).resize((size, size), Image.Resampling.LANCZOS)
                )
            assert np.array_equal(patch, expected), f"patch at {xy.tolist()} differs"


def test_jpeg_patches_are_close_to_lossless_and_the_store_is_small(
    jpeg_store, lossless_store, synthetic_slide
):
    assert np.array_equal(jpeg_store.coords(), lossless_store.coords())
    jpeg = jpeg_store.read_patches(0, jpeg_store.n_patches).astype(np.float64)
    exact = lossless_store.read_patches(0, lossless_store.n_patches).astype(np.float64)
    mse = np.mean((jpeg - exact) ** 2)
    assert mse == 0 or 10 * np.log10(255**2 / mse) > 30  # PSNR in dB; 0 when tiles pass through
    source = synthetic_slide[0].stat().st_size
    assert _folder_bytes(jpeg_store.path) <= 1.5 * source
    assert _folder_bytes(jpeg_store.path) < _folder_bytes(lossless_store.path)


def test_default_local_cluster_gives_the_same_store_as_a_distributed_one(
    jpeg_store, synthetic_slide, tmp_path
):
    report = tile_slides([synthetic_slide[0]], tmp_path, TilingConfig(), workers=1)
    local = PatchStore.open(report.results[0].store)
    assert np.array_equal(local.coords(), jpeg_store.coords())
    assert np.array_equal(local.tissue_fraction(), jpeg_store.tissue_fraction())
    shards = sorted(
        p.relative_to(local.path) for p in (local.path / "patches" / "c").rglob("*") if p.is_file()
    )
    for shard in shards:
        assert (local.path / shard).read_bytes() == (jpeg_store.path / shard).read_bytes()


def test_complete_stores_are_skipped_unless_overwrite(synthetic_slide, dask_cluster, tmp_path):
    slide = synthetic_slide[0]
    config = TilingConfig(pixel_mode="none")
    first = tile_slides([slide], tmp_path, config, scheduler=dask_cluster).results[0]
    created = PatchStore.open(first.store).attrs["created"]
    again = tile_slides([slide], tmp_path, config, scheduler=dask_cluster).results[0]
    assert again.status == "skipped" and "--overwrite" in again.reason
    assert PatchStore.open(first.store).attrs["created"] == created
    redone = tile_slides([slide], tmp_path, config, scheduler=dask_cluster, overwrite=True).results[
        0
    ]
    assert redone.status == "ok" and redone.n_patches == first.n_patches
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "synthetic-a.tissue.geojson",
        "synthetic-a.zarr",
        "tiling_config.yaml",
        REPORT_NAME,
    ]


def test_coordinates_only_store(synthetic_slide, dask_cluster, jpeg_store, tmp_path):
    store = _tile(synthetic_slide[0], tmp_path, dask_cluster, pixel_mode="none")
    assert not store.has_pixels and "patches" not in store.root
    assert np.array_equal(store.coords(), jpeg_store.coords())
    with pytest.raises(StoreError, match="coordinates only"):
        store.read_patches(0, 1)


def test_a_user_tissue_mask_replaces_detection(synthetic_slide, dask_cluster, tools, tmp_path):
    slide, truth = synthetic_slide
    masks = tmp_path / "masks"
    masks.mkdir()
    Image.fromarray(truth.tissue_mask.astype(np.uint8) * 255).save(masks / "synthetic-a.tissue.png")
    report = tile_slides(
        [slide],
        tmp_path / "out",
        TilingConfig(pixel_mode="none"),
        scheduler=dask_cluster,
        tissue_mask=masks,
    )
    store = PatchStore.open(report.results[0].store)
    assert store.attrs["tissue"]["source"].startswith("mask:")
    on_truth = tools.truth_fraction(truth, store.coords(), 256)
    assert np.allclose(on_truth, store.tissue_fraction(), atol=0.05)
    assert on_truth.min() >= 0.2


def test_cli_tiles_reports_and_exits_1_on_failures(synthetic_slide, dask_cluster, tmp_path):
    bad = tmp_path / "in" / "broken.svs"
    bad.parent.mkdir()
    bad.write_bytes(b"not a slide at all")
    out = tmp_path / "out"
    args = [
        "tile",
        str(synthetic_slide[0]),
        str(bad),
        "--out",
        str(out),
        "--scheduler",
        dask_cluster,
    ]
    code = main([*args, "--pixels", "none", "--patch-size", "128", "--min-tissue", "0.5"])
    assert code == 1
    rows = {row["slide_id"]: row for row in csv.DictReader(open(out / REPORT_NAME))}
    assert rows["synthetic-a"]["status"] == "ok" and int(rows["synthetic-a"]["n_patches"]) > 0
    assert rows["broken"]["status"] == "failed" and "cannot open" in rows["broken"]["reason"]
    effective = yaml.safe_load((out / "tiling_config.yaml").read_text())
    assert effective["tiling"]["patch_size"] == 128 and effective["tiling"]["pixel_mode"] == "none"
    assert (
        main(["tile", str(synthetic_slide[0]), "--out", str(out), "--scheduler", dask_cluster]) == 0
    )
    rows = list(csv.DictReader(open(out / REPORT_NAME)))
    assert [row["status"] for row in rows] == ["skipped"]

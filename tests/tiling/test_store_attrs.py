"""The store's attributes are typed: a store whose sections do not match the models is refused clearly."""

from __future__ import annotations

import shutil

import pytest
import zarr

from wsi_engine.errors import StoreError
from wsi_engine.store import PatchStore
from wsi_engine.store.attrs import StoreAttrs
from wsi_engine.store.layout import ATTRS_KEY
from wsi_engine.tiling import TilingConfig, tile_slides


@pytest.fixture(scope="module")
def synthetic_store(synthetic_slide, dask_cluster, tmp_path_factory):
    """A store tiled from the shared synthetic slide (coordinates only, 256-px patches)."""
    out = tmp_path_factory.mktemp("attrs")
    config = TilingConfig(patch_size=256, pixel_mode="none")
    report = tile_slides([synthetic_slide[0]], out, config, scheduler=dask_cluster)
    return report.results[0].store


def test_a_tiled_store_reads_into_the_typed_sections(synthetic_store):
    store = PatchStore.open(synthetic_store)
    assert isinstance(store.sections, StoreAttrs)
    assert store.sections.tiling.patch_size == store.patch_size
    assert store.sections.slide.dimensions == store.slide_dimensions
    assert store.sections.tiling.pixel_mode in ("jpeg", "lossless", "none")


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("tiling", "patch_size", "big", "tiling.patch_size"),
        ("tiling", "pixel_mode", "webp", "tiling.pixel_mode"),
        ("slide", "dimensions", [1], "slide.dimensions"),
    ],
)
def test_invalid_attributes_are_a_store_error_naming_the_field(
    synthetic_store, tmp_path, section, key, value, message
):
    copy = shutil.copytree(synthetic_store, tmp_path / synthetic_store.name)
    root = zarr.open_group(str(copy), mode="r+")
    attrs = dict(root.attrs[ATTRS_KEY])
    attrs[section] = {**attrs[section], key: value}
    root.attrs[ATTRS_KEY] = attrs
    with pytest.raises(StoreError, match=f"invalid store attributes: {message}"):
        PatchStore.open(copy)

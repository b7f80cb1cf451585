"""The per-slide Zarr v3 patch store: the contract between stages (docs/store.md).

Importing this package registers the ``wsi_engine.jpeg`` codec with zarr, so
stores with JPEG patches open in any process that imports it.
"""

from wsi_engine.store.codecs import JpegCodec
from wsi_engine.store.layout import (
    SCHEMA_VERSION,
    find_stores,
    require_stores,
    store_path,
    store_slide_id,
)
from wsi_engine.store.patch_store import PatchStore, iter_stores, utc_now

__all__ = [
    "JpegCodec",
    "SCHEMA_VERSION",
    "PatchStore",
    "find_stores",
    "iter_stores",
    "require_stores",
    "store_path",
    "store_slide_id",
    "utc_now",
]

"""``<out>/<slide_id>.tissue.geojson`` beside every store: the tissue mask as QuPath annotations.

One ``Polygon`` Feature per tissue piece (holes as interior rings), each a
QuPath annotation classified ``Tissue`` (:func:`wsi_engine.tissue.tissue_to_geojson`),
in level-0 px of the viewer frame (OpenSlide bounds subtracted,
:mod:`wsi_engine.slide.bounds`). QuPath imports it with *File › Import
objects*; edited and exported back, it can be given to ``tile --tissue-geojson``
(which reads ``<slide_id>.tissue.geojson`` from a folder).
"""

from __future__ import annotations

import json
from pathlib import Path

from wsi_engine.slide.bounds import ViewerFrame
from wsi_engine.store import PatchStore
from wsi_engine.store.layout import TISSUE_MASK
from wsi_engine.tissue import TissueMask, tissue_to_geojson

SUFFIX = ".tissue.geojson"


def tissue_geojson_path(store_path: Path, slide_id: str) -> Path:
    return Path(store_path).parent / f"{slide_id}{SUFFIX}"


def write_tissue_geojson(store_path: str | Path) -> Path | None:
    """Write the store's tissue GeoJSON beside it (atomically); ``None`` when the store has no mask."""
    store = PatchStore.open(store_path)
    if TISSUE_MASK not in store.root:
        return None
    mask, _ = store.tissue_mask()
    slide = store.attrs["slide"]
    tissue = TissueMask.spanning(
        mask, tuple(slide["dimensions"]), float(slide["mpp"][0]), store.attrs["tissue"]["source"]
    )
    collection = tissue_to_geojson(tissue, offset=ViewerFrame.of(slide).offset)
    target = tissue_geojson_path(store.path, store.slide_id)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(collection), encoding="utf-8")
    tmp.replace(target)
    return target

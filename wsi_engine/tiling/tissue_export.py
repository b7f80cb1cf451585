"""Tissue GeoJSON in the viewer frame: ``<out>/<slide_id>.tissue.geojson`` beside every store.

One ``Polygon`` Feature per tissue piece (holes as interior rings), each a
QuPath annotation classified ``Tissue`` (:func:`wsi_engine.tissue.tissue_to_geojson`),
in level-0 px of the viewer frame (OpenSlide bounds subtracted,
:mod:`wsi_engine.slide.bounds`). QuPath imports it with *File › Import
objects*; edited and exported back, it can be given to ``tile --tissue-geojson``
(which reads ``<slide_id>.tissue.geojson`` from a folder): the mask read from
such a file is moved back to level-0 px by :func:`from_viewer_frame`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from wsi_engine.slide.bounds import ViewerFrame
from wsi_engine.store import PatchStore
from wsi_engine.store.layout import TISSUE_MASK
from wsi_engine.tissue import TissueMask, tissue_to_geojson

SUFFIX = ".tissue.geojson"
GEOJSON = (".geojson", ".json")  # tissue files read as GeoJSON (the others are mask images)


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
    collection = shifted(tissue_to_geojson(tissue), ViewerFrame.of(slide).offset)
    target = tissue_geojson_path(store.path, store.slide_id)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(collection), encoding="utf-8")
    tmp.replace(target)
    return target


def shifted(collection: dict[str, Any], offset: tuple[int, int]) -> dict[str, Any]:
    """The FeatureCollection of Polygons with ``offset`` (x, y) level-0 px subtracted from every vertex."""
    if offset == (0, 0):
        return collection
    for feature in collection["features"]:
        geometry = feature["geometry"]
        geometry["coordinates"] = [
            (np.asarray(ring) - np.asarray(offset, dtype=np.float64)).tolist()
            for ring in geometry["coordinates"]
        ]
    return collection


def from_viewer_frame(mask: TissueMask, offset: tuple[int, int]) -> TissueMask:
    """A mask rasterised from viewer-frame coordinates, moved by ``offset`` level-0 px (to the nearest mask px)."""
    shift = [round(offset[1] / mask.downsample[1]), round(offset[0] / mask.downsample[0])]
    if shift == [0, 0]:
        return mask
    moved = np.zeros_like(mask.mask)
    h, w = moved.shape
    rows, cols = min(shift[0], h), min(shift[1], w)
    moved[rows:, cols:] = mask.mask[: h - rows, : w - cols]
    return TissueMask(moved, mask.downsample, mask.mpp, mask.source)

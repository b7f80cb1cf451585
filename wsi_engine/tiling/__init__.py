"""Tiling: whole-slide images → one Zarr v3 patch store per slide (docs/store.md).

Modules, one job each:

* :mod:`~wsi_engine.tiling.config`: :class:`TilingConfig` (presets in ``configs/tiling``);
* :mod:`~wsi_engine.tiling.grid`: patch grid at a target µm/px, read level, tissue filter;
* :mod:`~wsi_engine.tiling.regions`, :mod:`~wsi_engine.tiling.extract`: tile-aligned
  region reads cut into patches, antialiased resize;
* :mod:`~wsi_engine.tiling.lowres`: bounded-memory low-resolution images (tissue, thumbnail);
* :mod:`~wsi_engine.tiling.provenance`: store attributes and the slide fingerprint;
* :mod:`~wsi_engine.tiling.tasks`: the Dask tasks (plan a slide, write one shard);
* :mod:`~wsi_engine.tiling.pipeline`: :func:`tile_slides`, the client-side orchestration;
* :mod:`~wsi_engine.tiling.report`: :class:`TilingReport` and ``tiling_report.csv``;
* :mod:`~wsi_engine.tiling.pixels`: :class:`PatchSource`, patch pixels for later stages
  (from the store, or cut from the slide for coordinates-only stores);
* :mod:`~wsi_engine.tiling.stage`: the ``tile`` stage of ``wsi-engine run``.
"""

from wsi_engine.tiling.config import TilingConfig
from wsi_engine.tiling.grid import GridGeometry, PatchGrid, grid_geometry, plan_grid
from wsi_engine.tiling.pipeline import dask_client, default_workers, tile_slides
from wsi_engine.tiling.pixels import PatchSource
from wsi_engine.tiling.provenance import file_fingerprint, slide_attrs
from wsi_engine.tiling.report import REPORT_NAME, SlideResult, TilingReport

__all__ = [
    "REPORT_NAME",
    "GridGeometry",
    "PatchGrid",
    "PatchSource",
    "SlideResult",
    "TilingConfig",
    "TilingReport",
    "dask_client",
    "file_fingerprint",
    "default_workers",
    "grid_geometry",
    "plan_grid",
    "slide_attrs",
    "tile_slides",
]

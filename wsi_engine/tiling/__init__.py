"""Tiling: whole-slide images → one Zarr v3 patch store per slide (docs/store.md).

Modules, one job each:

* :mod:`~wsi_engine.tiling.config`: :class:`TilingConfig` (presets in ``configs/tiling``);
* :mod:`~wsi_engine.tiling.grid`: patch grid at a target µm/px, read level, tissue filter;
* :mod:`~wsi_engine.tiling.regions`, :mod:`~wsi_engine.tiling.extract`: tile-aligned
  region reads cut into patches, antialiased resize;
* :mod:`~wsi_engine.tiling.lowres`: bounded-memory low-resolution images (tissue, thumbnail);
* :mod:`~wsi_engine.tiling.provenance`: the store's ``tiling`` and ``tissue`` sections;
* :mod:`~wsi_engine.tiling.tasks`: the tasks (plan a slide, write one shard);
* :mod:`~wsi_engine.tiling.executors`: where they run (threads of this process, or Dask);
* :mod:`~wsi_engine.tiling.pipeline`: :func:`tile_slides`, the client-side orchestration;
* :mod:`~wsi_engine.tiling.report`: :class:`TilingReport` and ``tiling_report.csv``;
* :mod:`~wsi_engine.tiling.pixels`: :class:`PatchSource`, patch pixels for later stages
  (from the store, or cut from the slide for coordinates-only stores);
* :mod:`~wsi_engine.tiling.stage`: the ``tile`` stage of ``wsi-engine run``.

The names below are imported on first use, so ``import wsi_engine.tiling.config``
does not load Dask, zarr or the slide readers (the command line starts faster).
"""

from typing import TYPE_CHECKING

from wsi_engine.lazy import lazy_attributes

if TYPE_CHECKING:
    from wsi_engine.tiling.config import TilingConfig
    from wsi_engine.tiling.grid import GridGeometry, PatchGrid, grid_geometry, plan_grid
    from wsi_engine.tiling.pipeline import dask_client, default_workers, tile_slides
    from wsi_engine.tiling.pixels import PatchSource
    from wsi_engine.tiling.report import REPORT_NAME, SlideResult, TilingReport

_HOMES = {
    "TilingConfig": "config",
    "GridGeometry": "grid",
    "PatchGrid": "grid",
    "grid_geometry": "grid",
    "plan_grid": "grid",
    "dask_client": "pipeline",
    "default_workers": "pipeline",
    "tile_slides": "pipeline",
    "PatchSource": "pixels",
    "REPORT_NAME": "report",
    "SlideResult": "report",
    "TilingReport": "report",
}

__all__ = [
    "GridGeometry",
    "PatchGrid",
    "PatchSource",
    "REPORT_NAME",
    "SlideResult",
    "TilingConfig",
    "TilingReport",
    "dask_client",
    "default_workers",
    "grid_geometry",
    "plan_grid",
    "tile_slides",
]


__getattr__ = lazy_attributes(__name__, _HOMES)

"""The two kinds of Dask task of tiling, run on workers: plan a slide, write one shard.

:func:`prepare_slide` opens a slide (resolving its µm/px), finds its tissue,
plans the patch grid, creates or resumes the ``.zarr.partial`` store (arrays
``coords``, ``tissue_fraction``, ``thumbnail``, ``tissue_mask``, an empty
``patches``) and returns one :class:`ShardJob` per shard not yet marked done.

:func:`write_shard` reads the patches of one shard, region by region, and
writes them as that whole shard (:func:`wsi_engine.store.shards.write_shard`;
no other task ever writes it: Zarr's partial-shard writes race and lose
data), then marks the shard done in
``_progress/shards``. The marker is written only after the data, so a shard
whose marker is set is complete; a killed task leaves it unmarked.

Tasks send only paths and small arrays; each worker thread opens its own
reader handles and keeps the last few open (:func:`cached_reader`), keyed by
path, backend and the file's size and modification time. A reader that
failed is closed and dropped (OpenSlide handles are unusable after an error).
Tasks never raise for a problem with a slide: they return its reason, so
messages arrive intact however the cluster serialises exceptions.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import zarr

from wsi_engine.errors import SlideError, WsiEngineError, describe
from wsi_engine.slide import SlideReader, open_slide
from wsi_engine.slide.bounds import slide_bounds
from wsi_engine.slide.provenance import slide_attrs
from wsi_engine.store import layout
from wsi_engine.store.progress import BlockProgress
from wsi_engine.store.shards import jpeg_layout_quality, write_jpeg_shard
from wsi_engine.store.shards import write_shard as write_patch_shard
from wsi_engine.store.writer import SHARD_PROGRESS, StoreWriter
from wsi_engine.tiling.config import TilingConfig
from wsi_engine.tiling.extract import extract_patches
from wsi_engine.tiling.grid import GridGeometry, plan_grid
from wsi_engine.tiling.lowres import fit_size, read_downsampled, shrink
from wsi_engine.tiling.passthrough import jpeg_chunks
from wsi_engine.tiling.provenance import tiling_attrs, tissue_attrs
from wsi_engine.tiling.tissue_export import GEOJSON, from_viewer_frame
from wsi_engine.tissue import (
    TissueMask,
    detect_tissue,
    load_tissue_geojson,
    load_tissue_mask_png,
    segmentation_size,
)

log = logging.getLogger(__name__)

THUMBNAIL_MAX_PX = 1024
"""Longest side of the stored thumbnail."""

THUMBNAIL_QUALITY = 90
"""JPEG quality of the stored thumbnail (a preview: lossy whatever the pixel mode)."""

SEGMENTATION_MAX_PIXELS = 4_000_000
"""Largest image tissue detection runs on (its memory is tens of bytes per pixel)."""

READER_CACHE_SIZE = 4
"""Readers kept open per worker thread."""


@dataclass(frozen=True)
class SlideRequest:
    """Everything a worker needs to plan one slide (paths and plain values only)."""

    path: Path
    slide_id: str
    out_dir: Path
    config: TilingConfig
    mpp: float | None = None
    mpp_table: Mapping[str, tuple[float, float]] | None = None
    tissue_file: Path | None = None
    """a GeoJSON (``.geojson``/``.json``) or mask image replacing tissue detection"""


@dataclass(frozen=True)
class ShardJob:
    """One shard to write: patches ``[start, start + len(coords))`` of a slide's store."""

    slide_id: str
    slide_path: Path
    backend: str
    store_path: Path
    index: int
    n_shards: int
    start: int
    coords: np.ndarray
    geometry: GridGeometry
    region_size: int
    passthrough: bool = False
    """store source JPEG tiles unchanged where a patch is exactly one (:mod:`~wsi_engine.tiling.passthrough`)"""


@dataclass
class SlidePlan:
    """What :func:`prepare_slide` found: the shards still to write, or why the slide failed."""

    slide_id: str
    ok: bool
    reason: str = ""
    n_patches: int = 0
    n_shards: int = 0
    shards: list[ShardJob] = field(default_factory=list)
    mpp: float | None = None
    mpp_source: str | None = None
    flags: tuple[str, ...] = ()
    resumed: bool = False
    seconds: float = 0.0


@dataclass(frozen=True)
class ShardOutcome:
    """Result of :func:`write_shard`; ``error`` is empty on success."""

    slide_id: str
    index: int
    n_patches: int
    seconds: float
    error: str = ""


# ----------------------------------------------------------------------------- readers
_local = threading.local()


def cached_reader(path: Path, backend: str) -> SlideReader:
    """A reader of ``path`` owned by this thread, reused across tasks (LRU of :data:`READER_CACHE_SIZE`)."""
    cache: OrderedDict[tuple, SlideReader] = _local.__dict__.setdefault("readers", OrderedDict())
    stat = Path(path).stat()
    key = (str(path), backend, stat.st_size, stat.st_mtime_ns)
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    reader = open_slide(path, backend, require_mpp=False)
    cache[key] = reader
    while len(cache) > READER_CACHE_SIZE:
        cache.popitem(last=False)[1].close()
    return reader


def drop_reader(path: Path) -> None:
    """Close and forget this thread's readers of ``path``."""
    cache: OrderedDict[tuple, SlideReader] = _local.__dict__.get("readers", OrderedDict())
    for key in [key for key in cache if key[0] == str(path)]:
        cache.pop(key).close()


# ------------------------------------------------------------------------------ planning
def prepare_slide(request: SlideRequest) -> SlidePlan:
    """Plan ``request``'s slide and create or resume its partial store (a Dask task)."""
    started = time.perf_counter()
    try:
        plan = _prepare(request)
    except Exception as error:  # a slide's problem is reported, never raised through Dask
        if not isinstance(error, WsiEngineError):
            log.exception("planning %s failed", request.path)
        plan = SlidePlan(request.slide_id, ok=False, reason=describe(error))
    plan.seconds = time.perf_counter() - started
    return plan


def _prepare(request: SlideRequest) -> SlidePlan:
    config = request.config
    with open_slide(
        request.path, config.backend, mpp=request.mpp, mpp_table=request.mpp_table
    ) as reader:
        assert reader.mpp is not None  # require_mpp=True
        _check_size(reader, request)
        mpp = (reader.mpp.x, reader.mpp.y)
        mask, seg_image = _tissue(reader, request)
        if request.tissue_file is not None and request.tissue_file.suffix.lower() in GEOJSON:
            mask = from_viewer_frame(mask, tuple((slide_bounds(reader.properties) or [0, 0])[:2]))
        grid = plan_grid(reader.level_dimensions, reader.level_downsamples, mpp, config, mask)
        attrs = {
            "slide": slide_attrs(reader, request.slide_id),
            "tiling": tiling_attrs(grid.geometry, config),
            "tissue": tissue_attrs(mask, config, request.tissue_file),
        }
        writer = StoreWriter.open_or_create(
            request.out_dir, request.slide_id, attrs, grid.coords, grid.tissue_fraction, grid.flags
        )
        thumbnail = _thumbnail(reader, seg_image, config.tissue.seg_mpp)
        writer.write_image(
            layout.THUMBNAIL,
            thumbnail,
            jpeg_quality=THUMBNAIL_QUALITY,
            downsample=reader.dimensions[0] / thumbnail.shape[1],
        )
        writer.write_image(
            layout.TISSUE_MASK,
            mask.mask.astype(np.uint8),
            downsample=mask.downsample[0],
            mpp=mask.mpp,
        )
        backend = reader.backend
    n = len(grid.coords)
    plan = SlidePlan(
        request.slide_id,
        ok=True,
        n_patches=n,
        mpp=mpp[0],
        mpp_source=reader.mpp.source,
        flags=tuple(writer.attrs["flags"]),
        resumed=writer.resumed,
    )
    if config.pixel_mode == "none" or n == 0:
        return plan
    writer.create_patches(
        config.patch_size, config.pixel_mode, config.jpeg_quality, config.shard_patches
    )
    plan.n_shards = -(-n // config.shard_patches)
    for index in writer.shard_progress(plan.n_shards).remaining():
        start = index * config.shard_patches
        plan.shards.append(
            ShardJob(
                slide_id=request.slide_id,
                slide_path=request.path,
                backend=backend,
                store_path=writer.path,
                index=index,
                n_shards=plan.n_shards,
                start=start,
                coords=grid.coords[start : start + config.shard_patches].copy(),
                geometry=grid.geometry,
                region_size=config.region_size,
                passthrough=config.jpeg_passthrough,
            )
        )
    return plan


def segmentation_mpp(
    level0_size: tuple[int, int], mpp: tuple[float, float], seg_mpp: float
) -> float:
    """µm/px of the image tissue is found on: ``seg_mpp``, or coarser for very large slides.

    ``level0_size`` (w, h) px at ``mpp`` (x, y) µm/px. The image is kept to at
    most :data:`SEGMENTATION_MAX_PIXELS` px, so the memory of tissue detection
    does not grow with the slide (a 40 x 40 mm scan is segmented at 20 µm/px,
    about the scale of CLAM's usual 64x-downsampled level).
    """
    area_um2 = level0_size[0] * level0_size[1] * mpp[0] * mpp[1]
    return max(seg_mpp, math.sqrt(area_um2 / SEGMENTATION_MAX_PIXELS))


def _tissue(reader: SlideReader, request: SlideRequest) -> tuple[TissueMask, np.ndarray | None]:
    """The tissue mask (detected, or from the user's file) and the segmentation image if one was read."""
    assert reader.mpp is not None
    seg_mpp = segmentation_mpp(
        reader.dimensions, (reader.mpp.x, reader.mpp.y), request.config.tissue.seg_mpp
    )
    file = request.tissue_file
    if file is None:
        size = segmentation_size(reader.dimensions, reader.mpp.x, seg_mpp)
        image = read_downsampled(reader, size)
        mpp = reader.mpp.x * reader.dimensions[0] / size[0]
        return detect_tissue(image, mpp, request.config.tissue, reader.dimensions), image
    if file.suffix.lower() in (".geojson", ".json"):
        config = request.config
        mask = load_tissue_geojson(
            file,
            reader.dimensions,
            reader.mpp.x,
            seg_mpp,
            max_vertices=config.geojson_max_vertices,
            max_depth=config.geojson_max_depth,
        )
        return mask, None
    return load_tissue_mask_png(file, reader.dimensions, reader.mpp.x), None


def _check_size(reader: SlideReader, request: SlideRequest) -> None:
    """Refuse a slide larger than ``tiling.max_slide_pixels`` level-0 px (a damaged or hostile header)."""
    width, height = reader.dimensions
    limit = request.config.max_slide_pixels
    if float(width) * float(height) > limit:
        raise SlideError(
            f"the slide declares {width:,} × {height:,} level-0 px, more than the limit of {limit:.3g}",
            path=request.path,
            hint="raise tiling.max_slide_pixels in the tiling YAML if the slide is genuine",
        )


def _thumbnail(reader: SlideReader, seg_image: np.ndarray | None, seg_mpp: float) -> np.ndarray:
    """RGB thumbnail, longest side at most :data:`THUMBNAIL_MAX_PX` and no finer than ``seg_mpp``.

    It is cut from the segmentation image when there is one, and never needs
    a finer pyramid level than tissue detection does.
    """
    assert reader.mpp is not None
    seg_mpp = segmentation_mpp(reader.dimensions, (reader.mpp.x, reader.mpp.y), seg_mpp)
    seg_size = segmentation_size(reader.dimensions, reader.mpp.x, seg_mpp)
    size = fit_size(reader.dimensions, min(THUMBNAIL_MAX_PX, max(seg_size)))
    if seg_image is not None:
        return shrink(seg_image, size)
    return read_downsampled(reader, size)


# ------------------------------------------------------------------------------- shards
def write_shard(job: ShardJob) -> ShardOutcome:
    """Read, write and mark one whole shard (a Dask task)."""
    started = time.perf_counter()
    try:
        reader = cached_reader(job.slide_path, job.backend)
        array = zarr.open_array(str(job.store_path / layout.PATCHES), mode="r+")
        quality = jpeg_layout_quality(array)
        if quality is None:
            patches = extract_patches(reader, job.geometry, job.coords, job.region_size)
            write_patch_shard(array, job.index, patches)
        else:
            chunks = jpeg_chunks(
                reader, job.geometry, job.coords, job.region_size, quality, job.passthrough
            )
            write_jpeg_shard(array, job.index, chunks)
        root = zarr.open_group(str(job.store_path), mode="r+")
        BlockProgress(root, SHARD_PROGRESS, job.n_shards).mark_done(job.index)
    except Exception as error:
        drop_reader(job.slide_path)
        if not isinstance(error, WsiEngineError):
            log.exception("shard %d of %s failed", job.index, job.slide_path)
        stop = job.start + len(job.coords)
        reason = f"shard {job.index} (patches {job.start}-{stop - 1}): {describe(error)}"
        return ShardOutcome(job.slide_id, job.index, 0, time.perf_counter() - started, reason)
    return ShardOutcome(job.slide_id, job.index, len(job.coords), time.perf_counter() - started)

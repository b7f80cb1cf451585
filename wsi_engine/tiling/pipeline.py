"""``tile_slides``: many slides → one patch store each, on a Dask cluster.

Flow. The caller's process only orchestrates; all reading and writing runs
in Dask tasks (:mod:`wsi_engine.tiling.tasks`):

1. The output folder is created and checked writable (:class:`OutputError`
   before any work); slides are found (:func:`~wsi_engine.slide.find_slides`)
   and given ids. A slide whose id another slide of this run already has fails
   (stores are named by id; the first path in sorted order wins); a slide with
   a complete store is skipped unless ``overwrite`` (a store of the same id made
   from a different file is a failure, not a skip).
2. Up to ``2 × cluster threads`` slides are in flight at once: each gets a
   :func:`~wsi_engine.tiling.tasks.prepare_slide` task (high priority), whose
   plan lists the shards still to write; each shard becomes one
   :func:`~wsi_engine.tiling.tasks.write_shard` task (earlier slides first).
   Shards of different slides run side by side, so small slides do not wait
   for large ones and the cluster never idles at slide boundaries.
3. When all of a slide's shards are marked, the client renames its
   ``.zarr.partial`` to ``.zarr`` (:meth:`~wsi_engine.store.writer.StoreWriter.finalize`).
   A failed shard (a read error mid-slide) fails that slide only: its other
   shards are cancelled, its partial store is kept, the batch goes on, and a
   rerun resumes it.
4. ``tiling_report.csv`` and ``tiling_config.yaml`` (effective configuration)
   are written to the output folder.

Where tasks run (:mod:`wsi_engine.tiling.executors`): with neither ``workers``
nor ``scheduler``, a small job (slides of at most
:data:`~wsi_engine.tiling.executors.IN_PROCESS_MAX_BYTES` in all) runs on one
thread per usable CPU core of the calling process, without starting a cluster.
Otherwise, by default a ``distributed.LocalCluster`` of ``workers`` processes
(one per usable CPU core) with one thread each, started without Dask's
``MALLOC_TRIM_THRESHOLD_`` (see :data:`TRIM_SETTING`); ``scheduler`` may
instead be the address of a running Dask scheduler or a ``distributed.Client``:
the same tasks run either way. Workers must see the slides and the output
folder at the same paths as the caller (and run fastest without that variable).
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zarr

from wsi_engine.config import write_effective_config
from wsi_engine.dask_workers import absolute, prepare_cluster
from wsi_engine.errors import ConfigError, OutputError, SlideError, describe
from wsi_engine.slide import SLIDE_EXTENSIONS, find_slides, load_mpp_table
from wsi_engine.slide.ids import slide_id_from_path
from wsi_engine.slide.provenance import file_fingerprint
from wsi_engine.stage import StageObserver
from wsi_engine.store import PatchStore, layout
from wsi_engine.store.writer import StoreWriter
from wsi_engine.tiling.config import TilingConfig
from wsi_engine.tiling.executors import DaskExecutor, ThreadExecutor, choose_in_process
from wsi_engine.tiling.report import SlideResult, TilingReport
from wsi_engine.tiling.tasks import (
    ShardOutcome,
    SlidePlan,
    SlideRequest,
    prepare_slide,
    write_shard,
)
from wsi_engine.tiling.tissue_export import tissue_geojson_path, write_tissue_geojson

log = logging.getLogger(__name__)

TRIM_SETTING = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"
"""Dask starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which also freezes glibc's mmap
threshold: every region and shard buffer is then a fresh mmap, and tiling spends about as
much time in page faults as in decoding (measured 2x slower). Local clusters run without it."""

PLAN_PRIORITY = 1_000_000
"""Dask priority of planning tasks: above every shard, so new slides start without waiting."""

GEOJSON_NAMES = ("{id}.geojson", "{id}.tissue.geojson", "{id}.json")
MASK_NAMES = ("{id}.png", "{id}.tissue.png")
STAGE = "tile"


def default_workers() -> int:
    """Worker processes of the default local cluster: the CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def prepare_output_dir(out_dir: str | Path) -> Path:
    """Create ``out_dir`` if needed and check that files can be created in it (:class:`OutputError`)."""
    out_dir = Path(out_dir).expanduser().absolute()
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(
            "output path exists and is not a folder", path=out_dir, hint="choose another --out"
        )
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".write-test-{uuid.uuid4().hex}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise OutputError(
            f"output folder is not writable ({error.strerror or error})",
            path=out_dir,
            hint="check its permissions and free space, or choose another --out",
        ) from error
    return out_dir


@contextmanager
def dask_client(workers: int | None = None, scheduler: Any = None) -> Iterator[Any]:
    """A client of the given cluster (an address or a ``distributed.Client``), or of a new
    local one of ``workers`` single-thread processes."""
    import dask
    from distributed import Client, LocalCluster

    if isinstance(scheduler, Client):
        yield scheduler
        return
    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as error:
            raise ConfigError(
                f"cannot connect to the Dask scheduler at {scheduler} ({error})",
                hint="check the address (e.g. tcp://host:8786), or leave out --scheduler for a local cluster",
            ) from error
        with client:
            yield client
        return
    with (
        _quiet_scheduler(),
        dask.config.set({TRIM_SETTING: None}),
        LocalCluster(
            n_workers=workers or default_workers(),
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


@contextmanager
def _quiet_scheduler() -> Iterator[None]:
    """Hide the INFO chatter of the in-process scheduler unless the caller logs at INFO or below."""
    logger = logging.getLogger("distributed")
    previous = logger.level
    if logging.getLogger().getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(previous)


def tile_slides(
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    config: TilingConfig | None = None,
    *,
    recursive: bool = False,
    extensions: Sequence[str] = SLIDE_EXTENSIONS,
    workers: int | None = None,
    scheduler: Any = None,
    overwrite: bool = False,
    mpp: float | None = None,
    mpp_table: str | Path | Mapping[str, tuple[float, float]] | None = None,
    tissue_geojson: str | Path | None = None,
    tissue_mask: str | Path | None = None,
    observer: StageObserver | None = None,
) -> TilingReport:
    """Tile the slides named by ``inputs`` (files or folders) into ``out_dir/<slide_id>.zarr``.

    ``mpp`` (µm/px of level 0) overrides every slide's metadata; ``mpp_table``
    (CSV path or ``{slide_id: (x, y)}``) overrides it per slide; either
    defaults to the config's ``mpp`` / ``mpp_table``.
    ``tissue_geojson`` / ``tissue_mask``: a file (one slide) or a folder of
    ``<slide_id>.geojson`` / ``<slide_id>.png`` files replacing tissue detection.
    Returns the report (also written to ``out_dir/tiling_report.csv``); slide
    problems are in the report, never raised. Raises :class:`OutputError` for
    an unusable ``out_dir``, :class:`ConfigError` for bad options and
    :class:`SlideError` when ``inputs`` hold no slide. Two runs must not
    write one ``out_dir`` at once: ``wsi-engine tile`` holds
    ``out_dir/.wsi-engine.lock`` (:class:`wsi_engine.locks.RunLock`);
    callers of this function take that lock themselves.
    """
    started = time.perf_counter()
    config = config or TilingConfig()
    observer = observer or StageObserver()
    out_dir = prepare_output_dir(out_dir)
    if tissue_geojson is not None and tissue_mask is not None:
        raise ConfigError("give either a tissue GeoJSON or a tissue mask, not both")
    mpp = config.mpp if mpp is None else mpp
    mpp_table = config.mpp_table if mpp_table is None else mpp_table
    table = load_mpp_table(mpp_table) if isinstance(mpp_table, str | Path) else mpp_table
    inputs = [absolute(p) for p in inputs]  # workers may run in another folder
    tissue_geojson = None if tissue_geojson is None else absolute(tissue_geojson)
    tissue_mask = None if tissue_mask is None else absolute(tissue_mask)
    paths = find_slides(inputs, recursive, extensions)
    if not paths:
        raise SlideError(
            f"no slide files found in {', '.join(map(str, inputs))}",
            hint=f"slide extensions searched: {', '.join(extensions)} (see --ext, --recursive)",
        )
    run = _Run(out_dir, config, observer)
    tissue_option = tissue_geojson if tissue_geojson is not None else tissue_mask
    names = GEOJSON_NAMES if tissue_geojson is not None else MASK_NAMES
    for path in paths:
        run.add(path, overwrite, mpp, table, tissue_option, names, len(paths))
    observer.stage_started(STAGE, len(run.results))
    queued = {slide.request.path for slide in run.queue}
    for path, result in run.results.items():
        if path not in queued:
            observer.slide_finished(result.outcome())
    if run.queue:
        if choose_in_process([slide.request.path for slide in run.queue], workers, scheduler):
            with ThreadExecutor(default_workers()) as executor:
                run.execute(executor)
        else:
            with dask_client(workers, scheduler) as client:
                if scheduler is not None:  # a cluster of its own: may not see our paths
                    reads = [slide.request.path for slide in run.queue]
                    reads += [s.request.tissue_file for s in run.queue if s.request.tissue_file]
                    prepare_cluster(client, reads, [out_dir])
                run.execute(DaskExecutor(client))
    report = TilingReport(out_dir, list(run.results.values()), time.perf_counter() - started)
    report.write_csv()
    write_effective_config(
        out_dir,
        "tiling_config",
        {
            "tiling": config,
            "options": {
                "inputs": [str(p) for p in inputs],
                "recursive": recursive,
                "extensions": list(extensions),
                "workers": workers,
                "scheduler": scheduler if isinstance(scheduler, str) else None,
                "overwrite": overwrite,
                "mpp": mpp,
                "mpp_table": str(mpp_table) if isinstance(mpp_table, str | Path) else None,
                "tissue_geojson": None if tissue_geojson is None else str(tissue_geojson),
                "tissue_mask": None if tissue_mask is None else str(tissue_mask),
            },
        },
    )
    return report


@dataclass
class _Slide:
    """Client-side state of a slide in flight."""

    request: SlideRequest
    result: SlideResult
    order: int
    started: float = 0.0
    n_shards: int = 0
    pending: set[int] = field(default_factory=set)
    futures: dict[str, Any] = field(default_factory=dict)


class _Run:
    """The client side of one run: which slides wait, which are in flight, their results."""

    def __init__(self, out_dir: Path, config: TilingConfig, observer: StageObserver):
        self.out_dir = out_dir
        self.config = config
        self.observer = observer
        self.results: dict[Path, SlideResult] = {}
        self.queue: deque[_Slide] = deque()
        self.active: dict[str, _Slide] = {}
        self.owners: dict[str, _Slide] = {}
        self.ids: dict[str, Path] = {}
        self.token = uuid.uuid4().hex[:8]

    # ----------------------------------------------------------------- set-up
    def add(
        self,
        path: Path,
        overwrite: bool,
        mpp: float | None,
        table: Mapping[str, tuple[float, float]] | None,
        tissue_option: str | Path | None,
        names: tuple[str, ...],
        n_slides: int,
    ) -> None:
        """Queue ``path``, or record it at once as skipped or failed."""
        slide_id = slide_id_from_path(path)
        result = SlideResult(slide_id, path, "failed")
        self.results[path] = result
        if slide_id in self.ids:
            result.reason = (
                f"slide id '{slide_id}' is already used by {self.ids[slide_id]} in this run "
                "(stores are named by slide id: rename one file, or tile the folders into different --out folders)"
            )
            return
        self.ids[slide_id] = path
        store = layout.store_path(self.out_dir, slide_id)
        if store.exists():
            conflict = _other_source(store, path)
            if conflict:
                result.reason = conflict
                return
            if not overwrite:
                result.status, result.store = "skipped", store
                result.n_patches = PatchStore.open(store).n_patches
                result.reason = "a complete store exists (use --overwrite to tile again)"
                if not tissue_geojson_path(store, slide_id).exists():  # tiled by an older version
                    try:
                        write_tissue_geojson(store)
                    except Exception as error:
                        result.reason += (
                            f"; its tissue GeoJSON could not be written: {describe(error)}"
                        )
                return
        try:
            tissue_file = _tissue_file(tissue_option, names, slide_id, n_slides)
        except FileNotFoundError as missing:
            result.reason = str(missing)
            return
        request = SlideRequest(path, slide_id, self.out_dir, self.config, mpp, table, tissue_file)
        self.queue.append(_Slide(request, result, order=len(self.results)))

    # -------------------------------------------------------------- execution
    def execute(self, executor: DaskExecutor | ThreadExecutor) -> None:
        """Run every queued slide on ``executor`` until each is finalised or failed."""
        self.max_active = max(2, 2 * executor.threads)
        self.executor = executor
        self._start_more()
        for future in executor.completed():
            slide = self.owners.pop(future.key)
            slide.futures.pop(future.key, None)
            if future.status == "cancelled":
                continue
            value: Any = future.exception() if future.status == "error" else future.result()
            if slide.result.slide_id not in self.active:
                continue  # the slide already failed; late results of its cancelled shards
            if isinstance(value, SlidePlan):
                self._planned(slide, value)
            elif isinstance(value, ShardOutcome):
                self._shard_done(slide, value)
            else:
                self._finish(
                    slide, "failed", f"a Dask task of this slide failed: {describe(value)}"
                )

    def _submit(self, slide: _Slide, function: Any, argument: Any, key: str, priority: int) -> None:
        future = self.executor.submit(function, argument, f"{key}-{self.token}", priority)
        self.owners[future.key] = slide
        slide.futures[future.key] = future

    def _start_more(self) -> None:
        while self.queue and len(self.active) < self.max_active:
            slide = self.queue.popleft()
            slide.started = time.perf_counter()
            self.active[slide.result.slide_id] = slide
            self._submit(
                slide,
                prepare_slide,
                slide.request,
                f"tile-plan-{slide.result.slide_id}",
                PLAN_PRIORITY,
            )

    def _planned(self, slide: _Slide, plan: SlidePlan) -> None:
        result = slide.result
        if not plan.ok:
            self._finish(slide, "failed", plan.reason)
            return
        result.n_patches, result.flags = plan.n_patches, plan.flags
        result.mpp, result.mpp_source = plan.mpp, plan.mpp_source
        self.observer.work_planned(
            STAGE, result.slide_id, sum(len(job.coords) for job in plan.shards)
        )
        if not plan.shards:
            self._finalize(slide, plan.n_shards)
            return
        slide.n_shards = plan.n_shards
        for job in plan.shards:
            slide.pending.add(job.index)
            self._submit(
                slide, write_shard, job, f"tile-shard-{result.slide_id}-{job.index}", -slide.order
            )

    def _shard_done(self, slide: _Slide, outcome: ShardOutcome) -> None:
        if outcome.error:
            self.executor.cancel(list(slide.futures.values()))
            self._finish(slide, "failed", f"read or write error in {outcome.error}")
            return
        slide.pending.discard(outcome.index)
        slide.result.new_patches += outcome.n_patches
        self.observer.work_done(STAGE, slide.result.slide_id, outcome.n_patches)
        if not slide.pending:
            self._finalize(slide, slide.n_shards)

    def _finalize(self, slide: _Slide, n_shards: int) -> None:
        result = slide.result
        try:
            writer = StoreWriter.reopen(self.out_dir, result.slide_id)
            if n_shards and writer.shard_progress(n_shards).remaining():
                raise OutputError("some shards are not marked as written", path=writer.path)
            result.store = writer.finalize()
        except Exception as error:
            self._finish(slide, "failed", f"cannot complete the store: {describe(error)}")
            return
        try:
            write_tissue_geojson(result.store)
        except Exception as error:
            self._finish(slide, "failed", f"cannot write the tissue GeoJSON: {describe(error)}")
            return
        self._finish(
            slide, "ok" if result.n_patches else "empty", _empty_reason(result, self.config)
        )

    def _finish(self, slide: _Slide, status: str, reason: str) -> None:
        result = slide.result
        result.status, result.reason = status, reason
        result.seconds = time.perf_counter() - slide.started
        slide.futures.clear()
        self.active.pop(result.slide_id, None)
        self.observer.slide_finished(result.outcome())
        self._start_more()


def _empty_reason(result: SlideResult, config: TilingConfig) -> str:
    if result.n_patches:
        return ""
    if "slide-smaller-than-patch" in result.flags:
        return "the slide is smaller than one patch at this µm/px: empty store"
    return f"no patch has at least {config.min_tissue_fraction:g} tissue: empty store"


def _other_source(store: Path, path: Path) -> str:
    """Why the complete ``store`` cannot belong to the slide at ``path`` ('' if it does)."""
    try:
        recorded = zarr.open_group(str(store), mode="r").attrs[layout.ATTRS_KEY]["slide"]
    except Exception:
        return f"{store} exists but is not a readable patch store (remove it, or use another --out)"
    if recorded["path"] == str(Path(path).resolve()):
        return ""
    try:
        if recorded["fingerprint"] == file_fingerprint(path):
            return ""  # the same file, moved
    except OSError:
        pass
    return (
        f"{store.name} was made from another file ({recorded['path']}) with the same slide id "
        "(rename one file, or use another --out)"
    )


def _tissue_file(
    option: str | Path | None, names: tuple[str, ...], slide_id: str, n_slides: int
) -> Path | None:
    """The user's tissue file for ``slide_id``: ``option`` itself, or a file named by ``names`` in it."""
    if option is None:
        return None
    option = Path(option)
    if option.is_dir():
        for name in names:
            candidate = option / name.format(id=slide_id)
            if candidate.is_file():
                return candidate
        expected = " or ".join(name.format(id=slide_id) for name in names)
        raise FileNotFoundError(f"no tissue file for this slide in {option} (expected {expected})")
    if not option.is_file():
        raise ConfigError("tissue file or folder not found", path=option)
    if n_slides > 1:
        raise ConfigError(
            f"one tissue file was given for {n_slides} slides",
            path=option,
            hint="pass a folder holding <slide_id>.geojson (or .png) files",
        )
    return option

"""``embed``: patches of patch stores → ``features/<encoder_id>`` (N, D), resumable, GPU-bound.

Pipeline (one process per device): worker processes read and decode row
blocks (:mod:`.loader`) while the model runs; blocks are re-batched across
shards and stores into pinned staging buffers, copied to the GPU without
blocking, preprocessed there (:class:`~.encoder.ImageEmbedder`) and encoded
under fp16/bf16 autocast (fp32 on CPU) in ``torch.inference_mode``. On a GPU
one batch is in flight while the previous one's features are written, so
copies, compute and writes overlap.

Resumability: block ``k`` of a store is rows ``[k·P, (k+1)·P)`` with ``P`` the
store's ``shard_patches``, one chunk of the feature array; its marker in
``_progress/features/<encoder_id>`` is set after the rows are written. A
killed run recomputes only unmarked blocks; partial features made with another
checkpoint or preprocessing are discarded. Complete features are skipped
unless ``overwrite``; complete features from another checkpoint are an error
for that store (the encoder id would otherwise mix two models).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import torch

from wsi_engine import __version__
from wsi_engine.encoders.config import EncoderConfig
from wsi_engine.encoders.encoder import Encoder, load_encoder
from wsi_engine.encoders.loader import BlockTask, Rebatcher, Segment, iter_blocks
from wsi_engine.encoders.report import STAGE, EmbedReport, StoreResult
from wsi_engine.errors import ConfigError, EncoderError, describe, exit_code_of
from wsi_engine.locks import StoreLock
from wsi_engine.stage import StageObserver
from wsi_engine.store import PatchStore, find_stores, store_slide_id, utc_now
from wsi_engine.store.progress import BlockProgress

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "fp16", "bf16")
FEATURE_DTYPES = ("float16", "float32")


def resolve_device(device: str) -> torch.device:
    """``auto`` → the first CUDA GPU if there is one, else the CPU; ``cuda``, ``cuda:N``, ``cpu`` as given."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise ConfigError(
            f"unknown --device {device!r}", hint="use auto, cuda, cuda:N or cpu"
        ) from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "--device cuda but no CUDA GPU is available", hint="use --device cpu or auto"
        )
    if resolved.type not in ("cuda", "cpu"):
        raise ConfigError(f"unsupported --device {device!r}", hint="use auto, cuda, cuda:N or cpu")
    return resolved


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` → bf16 on GPUs that support it, else fp16; fp32 on CPU (the only CPU choice)."""
    if precision not in PRECISIONS:
        raise ConfigError(
            f"unknown --precision {precision!r}", hint=f"use one of {', '.join(PRECISIONS)}"
        )
    if device.type == "cpu":
        if precision not in ("auto", "fp32"):
            raise ConfigError(f"--precision {precision} needs a GPU", hint="the CPU runs in fp32")
        return "fp32"
    if precision == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return precision


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Mixed-precision context for ``precision`` (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def default_workers() -> int:
    """Decode worker processes: the usable CPU cores minus one for the model loop (at most 8)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, min(8, cores - 1))


def device_name(device: torch.device) -> str:
    """Human-readable device name (GPU model or CPU)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


class EmbedKeywords(TypedDict, total=False):
    """How :func:`embed_stores` runs (its keyword options), as a driver passes them through."""

    device: str
    batch_size: int
    precision: str
    workers: int | None
    overwrite: bool
    dtype: str


@dataclass
class _StoreRun:
    """A store being embedded: its feature array, progress markers and the blocks still to write."""

    result: StoreResult
    store: PatchStore
    encoder_id: str
    array: Any
    progress: BlockProgress
    remaining: set[int]
    began: float = 0.0


def embed_stores(
    store_paths: list[str | Path],
    encoder: str | Path | EncoderConfig | Encoder,
    *,
    checkpoint: str | Path | None = None,
    device: str = "auto",
    batch_size: int = 64,
    precision: str = "auto",
    workers: int | None = None,
    overwrite: bool = False,
    dtype: str = "float16",
    gpus: int | None = None,
    observer: StageObserver | None = None,
) -> EmbedReport:
    """Write ``features/<encoder_id>`` into every store of ``store_paths`` (stores or folders of stores).

    ``encoder`` is a preset name, YAML path, config or a loaded :class:`Encoder`;
    ``checkpoint`` overrides the preset's weights file. With several GPUs and
    ``gpus`` unset or > 1, stores are sharded over one process per GPU
    (:mod:`.multi_gpu`); ``gpus=1`` keeps one GPU. Failures of single stores
    are reported in the result, not raised; configuration and encoder
    problems raise.
    """
    began = time.perf_counter()
    observer = observer or StageObserver()
    if batch_size < 1:
        raise ConfigError("--batch-size must be at least 1")
    if dtype not in FEATURE_DTYPES:
        raise ConfigError(
            f"unknown feature dtype {dtype!r}", hint=f"use one of {', '.join(FEATURE_DTYPES)}"
        )
    resolved = resolve_device(device)
    precision = resolve_precision(precision, resolved)
    workers = default_workers() if workers is None else max(0, workers)
    if workers and multiprocessing.current_process().daemon:
        log.info("running inside a daemonic process (a Dask worker): decoding in the main thread")
        workers = 0
    paths = find_stores(list(store_paths))
    visible = torch.cuda.device_count() if resolved.type == "cuda" and resolved.index is None else 1
    n_gpus = min(gpus or visible, visible)
    if n_gpus > 1 and not isinstance(encoder, Encoder):
        from wsi_engine.encoders.multi_gpu import embed_sharded

        return embed_sharded(
            paths,
            encoder,
            n_processes=n_gpus,
            device_type="cuda",
            observer=observer,
            checkpoint=checkpoint,
            batch_size=batch_size,
            precision=precision,
            workers=workers,
            overwrite=overwrite,
            dtype=dtype,
            embed=embed_stores,
        )
    if not isinstance(encoder, Encoder):
        encoder = load_encoder(encoder, checkpoint=checkpoint, device=resolved)
    else:
        encoder.to(resolved)
    report = EmbedReport(
        encoder.encoder_id,
        str(resolved),
        device_name(resolved),
        precision,
        batch_size,
        workers,
        load_seconds=time.perf_counter() - began,
    )
    began = time.perf_counter()
    locks: list[StoreLock] = []
    try:
        runs, tasks = _plan(paths, encoder, overwrite, dtype, report, observer, locks)
        _run(
            runs, tasks, paths, encoder, resolved, precision, batch_size, workers, report, observer
        )
    finally:
        for lock in locks:
            lock.release()
    report.wall_seconds = time.perf_counter() - began
    return report


def _plan(
    paths: list[Path],
    encoder: Encoder,
    overwrite: bool,
    dtype: str,
    report: EmbedReport,
    observer: StageObserver,
    locks: list[StoreLock],
) -> tuple[dict[int, _StoreRun], list[BlockTask]]:
    """Lock and open each store, decide skip / resume / start, and list the blocks to encode.

    The stores' locks are appended to ``locks``; the caller releases them.
    """
    runs: dict[int, _StoreRun] = {}
    tasks: list[BlockTask] = []
    observer.stage_started(STAGE, len(paths))
    for index, path in enumerate(paths):
        result = StoreResult(str(path), store_slide_id(path), 0)
        report.results.append(result)
        try:
            lock = StoreLock(path)
            lock.acquire()
            locks.append(lock)
            store = PatchStore.open(path, mode="r+")
            result.slide_id, result.n_patches = store.slide_id, store.n_patches
            run = _prepare_store(store, encoder, overwrite, dtype, result)
        except Exception as error:
            result.status, result.reason = "failed", describe(error)
            result.exit_code = exit_code_of(error)
        else:
            if run is not None:
                runs[index] = run
                blocks = store.shard_ranges()
                tasks.extend(BlockTask(index, k, *blocks[k]) for k in sorted(run.remaining))
                continue
        observer.slide_finished(result.outcome())
    for index, run in list(runs.items()):
        if not run.remaining:  # every block was written before a kill, or the store is empty
            _complete(run, observer)
            del runs[index]
    for index, run in runs.items():
        rows = sum(t.rows for t in tasks if t.store == index)
        observer.work_planned(STAGE, run.result.slide_id, rows)
    return runs, tasks


def _prepare_store(
    store: PatchStore, encoder: Encoder, overwrite: bool, dtype: str, result: StoreResult
) -> _StoreRun | None:
    """The store's run state, or ``None`` when it is skipped (complete) or refused."""
    encoder_id = encoder.encoder_id
    attrs = encoder.feature_attrs()
    if store.has_features(encoder_id) and not overwrite:
        old = store.feature_attrs(encoder_id).get("checkpoint_sha256")
        if old == encoder.checkpoint_sha256:
            store.feature_array(encoder_id)  # its chunks present, else StoreError (rebuild hint)
            result.status, result.reason = "skipped", "features already complete"
        else:
            result.status = "failed"
            result.reason = (
                f"features/{encoder_id} were made with another checkpoint (sha256 {str(old)[:12]}…); "
                "use --overwrite to replace them"
            )
        return None
    key = f"features/{encoder_id}"
    if overwrite or (
        key in store.root and not _same_setup(store.feature_attrs(encoder_id), attrs, dtype)
    ):
        store.delete_features(encoder_id)
    attrs = {
        **attrs,
        "dtype": dtype,
        "created": utc_now(),
        "engine_version": __version__,
        "source": {
            "patch_size": store.patch_size,
            "target_mpp": store.target_mpp,
            "pixels": "store" if store.has_pixels else "slide",
        },
    }
    block_rows = store.sections.tiling.shard_patches
    array, progress = store.create_features(
        encoder_id, encoder.embed_dim, attrs, block_rows=block_rows, dtype=dtype
    )
    remaining = set(progress.remaining()) if store.n_patches else set()
    return _StoreRun(result, store, encoder_id, array, progress, remaining)


def _same_setup(old: dict[str, Any], new: dict[str, Any], dtype: str) -> bool:
    """Whether partial features were made by the same weights, preprocessing and output (safe to resume)."""
    keys = ("checkpoint_sha256", "preprocessing", "output_kind", "embed_dim")
    return all(old.get(k) == new.get(k) for k in keys) and old.get("dtype") == dtype


def _complete(run: _StoreRun, observer: StageObserver) -> None:
    run.store.complete_features(run.encoder_id, run.progress)
    run.result.status = "done"
    if run.began:
        run.result.seconds = time.perf_counter() - run.began
    observer.slide_finished(run.result.outcome())


class _Outputs:
    """Per-block feature buffers; writes a block and marks it done when all its rows arrived."""

    def __init__(
        self,
        runs: dict[int, _StoreRun],
        tasks: list[BlockTask],
        dtype: np.dtype,
        report: EmbedReport,
        observer: StageObserver,
        checkpoint: Path,
    ):
        self.checkpoint = checkpoint
        self.runs = runs
        self.tasks = tasks
        self.dtype = dtype
        self.report = report
        self.observer = observer
        self.buffers: dict[int, np.ndarray] = {}
        self.filled: dict[int, int] = {}

    def fail(self, index: int, reason: str, exit_code: int = 1) -> None:
        """Block ``index`` could not be read or written: fail its store, drop its pending blocks."""
        run = self.runs.pop(self.tasks[index].store, None)
        if run is not None:
            run.result.status, run.result.reason = "failed", reason
            run.result.exit_code = exit_code
            self.observer.slide_finished(run.result.outcome())

    def add(self, features: np.ndarray, segments: list[Segment]) -> None:
        """Place a batch's (B, D) ``features`` rows; complete blocks are written."""
        for seg in segments:
            task = self.tasks[seg.index]
            run = self.runs.get(task.store)
            if run is None:
                continue  # its store failed meanwhile
            self.observer.work_done(STAGE, run.result.slide_id, seg.hi - seg.lo)
            buffer = self.buffers.setdefault(
                seg.index, np.empty((task.rows, features.shape[1]), self.dtype)
            )
            buffer[seg.lo : seg.hi] = features[seg.at : seg.at + seg.hi - seg.lo]
            self.filled[seg.index] = self.filled.get(seg.index, 0) + seg.hi - seg.lo
            if self.filled[seg.index] == task.rows:
                del self.filled[seg.index]
                self._write(run, seg.index, self.buffers.pop(seg.index))

    def _write(self, run: _StoreRun, index: int, rows: np.ndarray) -> None:
        task = self.tasks[index]
        if not np.isfinite(rows).all():
            error = EncoderError(
                f"the encoder produced NaN or infinite features for patches {task.start}-{task.stop - 1}"
                f" of {run.result.slide_id} (checkpoint {self.checkpoint})",
                hint="the checkpoint's weights are unusable: check or replace the file",
            )
            self.fail(index, describe(error), error.exit_code)
            return
        began = time.perf_counter()
        try:
            run.array[task.start : task.stop] = rows
            run.progress.mark_done(task.block)
        except Exception as error:
            self.fail(index, f"cannot write features: {describe(error)}", exit_code_of(error))
            return
        finally:
            self.report.write_seconds += time.perf_counter() - began
        run.result.embedded += task.rows
        run.remaining.discard(task.block)
        if not run.remaining:
            _complete(self.runs.pop(task.store), self.observer)


@dataclass
class _InFlight:
    """A batch submitted to the GPU: its features arrive in ``host`` once ``done`` has fired."""

    host: torch.Tensor
    segments: list[Segment]
    start: torch.cuda.Event
    done: torch.cuda.Event


def _run(
    runs: dict[int, _StoreRun],
    tasks: list[BlockTask],
    paths: list[Path],
    encoder: Encoder,
    device: torch.device,
    precision: str,
    batch_size: int,
    workers: int,
    report: EmbedReport,
    observer: StageObserver,
) -> None:
    """Read, encode and write every task's block (see the module docstring for the overlap scheme)."""
    if not tasks:
        return
    out_dtype = np.dtype(next(iter(runs.values())).array.dtype)
    outputs = _Outputs(runs, tasks, out_dtype, report, observer, encoder.checkpoint_path)
    cuda = device.type == "cuda"
    batcher = Rebatcher(batch_size, pin_memory=cuda)
    in_flight: _InFlight | None = None
    blocks = iter_blocks(tasks, paths, workers)
    with torch.inference_mode():
        while True:
            waited = time.perf_counter()
            item = next(blocks, None)
            report.wait_seconds += time.perf_counter() - waited
            if item is not None:
                report.read_seconds += item.read_seconds
                run = runs.get(tasks[item.index].store)
                if run is not None and not run.began:
                    run.began = time.perf_counter()
                if item.error:
                    outputs.fail(item.index, item.error, item.exit_code)
                    continue
                if run is None:
                    continue
            batches = batcher.add(item.index, item.pixels) if item is not None else batcher.flush()
            for pixels, segments in batches:
                if cuda:
                    submitted = _submit(encoder, pixels, segments, device, precision, out_dtype)
                    if in_flight is not None:
                        _collect(in_flight, outputs, report)
                    in_flight = submitted
                else:
                    began = time.perf_counter()
                    with autocast(device, precision):
                        features = encoder.image(pixels)
                    report.model_seconds += time.perf_counter() - began
                    outputs.add(features.numpy().astype(out_dtype, copy=False), segments)
            if item is None:
                break
    if in_flight is not None:
        _collect(in_flight, outputs, report)


def _submit(
    encoder: Encoder,
    pixels: torch.Tensor,
    segments: list[Segment],
    device: torch.device,
    precision: str,
    out_dtype: np.dtype,
) -> _InFlight:
    """Queue copy-in, preprocessing, forward and copy-out of one batch on the GPU; returns at once."""
    start, done = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    x = pixels.to(device, non_blocking=True)
    with autocast(device, precision):
        features = encoder.image(x)
    features = features.to(torch.float16 if out_dtype == np.float16 else torch.float32)
    host = torch.empty(features.shape, dtype=features.dtype, pin_memory=True)
    host.copy_(features, non_blocking=True)
    done.record()
    return _InFlight(host, segments, start, done)


def _collect(batch: _InFlight, outputs: _Outputs, report: EmbedReport) -> None:
    batch.done.synchronize()
    report.model_seconds += batch.start.elapsed_time(batch.done) / 1000.0
    outputs.add(batch.host.numpy(), batch.segments)

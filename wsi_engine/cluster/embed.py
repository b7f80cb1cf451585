"""``embed`` on a Dask cluster: one task per store, spread over the workers.

Each task runs :func:`~wsi_engine.encoders.embed.embed_stores` on one store
in a worker, with the encoder loaded once per worker process and reused by
its later tasks (:func:`_worker_encoder`). When the cluster declares GPUs
(the Dask resource ``GPU``, :mod:`~wsi_engine.dask_workers`) every task
asks for one, so each GPU embeds one store at a time and CPU-only workers
get none; ``device="auto"`` then picks the worker's GPU. A worker killed
mid-store is survived: Dask runs the task again elsewhere and
``embed_stores`` resumes the store from its marked blocks, so the features
equal an uninterrupted run's. Stores are sent as absolute paths that every
worker must see (checked first).
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Unpack

from wsi_engine.dask_workers import GPU_RESOURCE, absolute, gpu_resources, prepare_cluster
from wsi_engine.encoders.embed import EmbedKeywords, embed_stores, resolve_device
from wsi_engine.stage import StageObserver
from wsi_engine.store.layout import store_slide_id

_encoders: dict[tuple[str, str | None, str], tuple[Any, float]] = {}
_encoders_lock = threading.Lock()


@dataclass(frozen=True)
class EmbedOptions:
    """What each task needs: the encoder, its checkpoint and :func:`embed_stores`'s keywords."""

    encoder: str
    """preset name or absolute YAML path"""
    checkpoint: str | None = None
    keywords: EmbedKeywords = field(default_factory=lambda: EmbedKeywords())

    @property
    def device(self) -> str:
        return self.keywords.get("device", "auto")


def _worker_encoder(options: EmbedOptions) -> tuple[Any, float]:
    """(encoder, seconds it took to load) for this worker process, loaded on first use."""
    from wsi_engine.encoders import load_encoder

    key = (options.encoder, options.checkpoint, options.device)
    with _encoders_lock:
        if key not in _encoders:
            began = time.perf_counter()
            encoder = load_encoder(
                options.encoder,
                checkpoint=options.checkpoint,
                device=resolve_device(options.device),
            )
            _encoders[key] = (encoder, time.perf_counter() - began)
            return _encoders[key]
        return _encoders[key][0], 0.0


def embed_one_store(store: str, options: EmbedOptions) -> Any:
    """Embed one store in this worker (a Dask task); returns its ``EmbedReport``.

    Problems are returned as a failed store result, never raised, so the
    reason arrives intact whatever the cluster does with exceptions.
    """
    from wsi_engine.encoders.report import EmbedReport, StoreResult
    from wsi_engine.errors import describe

    try:
        encoder, load_seconds = _worker_encoder(options)
        report = embed_stores([store], encoder, **options.keywords)
    except Exception as error:
        precision = options.keywords.get("precision", "auto")
        report = EmbedReport(options.encoder, options.device, "", precision, 0, 0)
        report.results.append(
            StoreResult(store, store_slide_id(store), 0, "failed", describe(error))
        )
        return report
    report.load_seconds += load_seconds
    return report


def embed_on_cluster(
    client: Any,
    store_paths: list[str | Path],
    encoder: str | Path,
    *,
    checkpoint: str | Path | None = None,
    observer: StageObserver | None = None,
    **keywords: Unpack[EmbedKeywords],
) -> Any:
    """Embed every store of ``store_paths`` (stores or folders) on ``client``'s workers.

    Returns one ``EmbedReport`` for all stores (telemetry summed over tasks,
    ``wall_seconds`` as the client saw it); ``observer`` hears of each
    store (stage ``embed``). Raises :class:`~wsi_engine.errors.OutputError` when a worker cannot
    see a store or the checkpoint, and the encoder's errors for a bad preset.
    """
    from distributed import as_completed

    from wsi_engine.encoders import load_encoder_config
    from wsi_engine.encoders.report import EmbedReport, StoreResult
    from wsi_engine.errors import describe
    from wsi_engine.store import find_stores

    began = time.perf_counter()
    name = str(absolute(encoder)) if Path(encoder).is_file() else str(encoder)
    encoder_id = load_encoder_config(name).encoder_id  # a bad preset fails here, not per store
    options = EmbedOptions(name, str(absolute(checkpoint)) if checkpoint else None, keywords)
    paths = [absolute(p) for p in find_stores([absolute(p) for p in store_paths])]
    reads = [*paths, *([options.checkpoint] if options.checkpoint else [])]
    prepare_cluster(client, reads, paths)
    observer = observer or StageObserver()
    observer.stage_started("embed", len(paths))
    resources = {GPU_RESOURCE: 1} if gpu_resources(client) else None
    token = uuid.uuid4().hex[:8]
    futures = {
        client.submit(
            embed_one_store,
            str(path),
            options,
            key=f"embed-{path.name}-{token}",
            resources=resources,
            pure=False,
        ): path
        for path in paths
    }
    total = EmbedReport(
        encoder_id,
        options.device,
        "",
        keywords.get("precision", "auto"),
        keywords.get("batch_size", 64),
        0,
    )
    for future in as_completed(futures):
        path = futures[future]
        try:
            part = future.result()
        except Exception as error:  # e.g. the task killed its workers repeatedly (KilledWorker)
            result = StoreResult(str(path), store_slide_id(path), 0, "failed")
            result.reason = f"the Dask task failed: {describe(error)}"
            total.results.append(result)
        else:
            _add(total, part)
            result = part.results[0] if part.results else None
        if result is not None:
            observer.slide_finished(result.outcome())
    total.results.sort(key=lambda r: r.store)
    total.wall_seconds = time.perf_counter() - began
    return total


def _add(total: Any, part: Any) -> None:
    """Fold one task's report into ``total``."""
    total.results.extend(part.results)
    for name in ("load_seconds", "read_seconds", "wait_seconds", "model_seconds", "write_seconds"):
        setattr(total, name, getattr(total, name) + getattr(part, name))
    if part.device_name and part.device_name not in total.device_name.split("; "):
        total.device_name = "; ".join(filter(None, [total.device_name, part.device_name]))
    total.device = part.device or total.device
    total.precision = part.precision or total.precision
    total.workers = max(total.workers, part.workers)

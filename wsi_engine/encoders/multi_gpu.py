"""Several GPUs: one Dask worker process per GPU, stores sharded between them.

With ``dask-cuda`` installed its ``LocalCUDACluster`` starts the workers;
otherwise a plain Dask cluster starts one nanny per GPU with
``CUDA_VISIBLE_DEVICES`` pinned to that GPU. Each worker runs
:func:`~wsi_engine.encoders.embed.embed_stores` on its share of the stores
(balanced by patch count) on its one visible GPU, with its own decode
workers. Progress is reported per finished share. The same code runs with
CPU processes (``device_type="cpu"``), which is how it is tested without GPUs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wsi_engine.encoders.config import EncoderConfig
from wsi_engine.encoders.report import STAGE, EmbedReport
from wsi_engine.stage import StageObserver
from wsi_engine.store import PatchStore

EmbedFunction = Callable[..., EmbedReport]
"""``embed_stores``'s signature: (paths, encoder, *, gpus, **options) → report."""


def shard_stores(paths: list[Path], n_shards: int) -> list[list[Path]]:
    """Split stores into ``n_shards`` lists of about equal patch count (largest first, greedy)."""
    sizes = []
    for path in paths:
        try:
            sizes.append((PatchStore.open(path).n_patches, path))
        except Exception:  # reported by the worker that gets it
            sizes.append((0, path))
    shards: list[list[Path]] = [[] for _ in range(n_shards)]
    loads = [0] * n_shards
    for n, path in sorted(sizes, key=lambda item: (-item[0], str(item[1]))):
        target = loads.index(min(loads))
        shards[target].append(path)
        loads[target] += n
    return shards


def _cluster(n_processes: int, device_type: str) -> Any:
    if device_type == "cuda":
        try:
            from dask_cuda import LocalCUDACluster

            return LocalCUDACluster(
                n_workers=n_processes, threads_per_worker=1, dashboard_address=None
            )
        except ImportError:
            pass
    from distributed import Nanny, Scheduler, SpecCluster

    def env(i: int) -> dict[str, str]:
        return {"CUDA_VISIBLE_DEVICES": str(i)} if device_type == "cuda" else {}

    workers = {
        f"{device_type}-{i}": {
            "cls": Nanny,
            "options": {"nthreads": 1, "env": env(i), "silence_logs": logging.ERROR},
        }
        for i in range(n_processes)
    }
    return SpecCluster(
        workers=workers,
        scheduler={"cls": Scheduler, "options": {"dashboard_address": None}},
        silence_logs=logging.ERROR,
    )


def _embed_share(
    embed: EmbedFunction, paths: list[Path], encoder: Any, options: dict[str, Any]
) -> EmbedReport:
    return embed(paths, encoder, gpus=1, **options)


def embed_sharded(
    paths: list[Path],
    encoder: str | Path | EncoderConfig,
    *,
    n_processes: int,
    device_type: str = "cuda",
    observer: StageObserver | None = None,
    embed: EmbedFunction,
    **options: Any,
) -> EmbedReport:
    """Embed ``paths`` with one worker process per device; returns the merged :class:`EmbedReport`.

    ``embed`` embeds one share on one device
    (:func:`~wsi_engine.encoders.embed.embed_stores`, which passes itself in).
    """
    import dask
    from distributed import Client, as_completed

    observer = observer or StageObserver()
    began = time.perf_counter()
    shards = shard_stores(paths, n_processes)
    options = {
        **options,
        "device": device_type,
        "workers": max(0, options.get("workers", 1) // n_processes),
    }
    observer.stage_started(STAGE, len(paths))
    observer.work_planned(
        STAGE, "", sum(PatchStore.open(p).n_patches for s in shards for p in s if p.is_dir())
    )
    merged: EmbedReport | None = None
    with dask.config.set({"distributed.worker.daemon": False}):  # workers start decode processes
        with _cluster(n_processes, device_type) as cluster, Client(cluster) as client:
            client.wait_for_workers(n_processes)
            addresses = sorted(client.scheduler_info()["workers"])
            futures = [
                client.submit(
                    _embed_share, embed, shard, encoder, options, workers=[address], pure=False
                )
                for shard, address in zip(shards, addresses, strict=True)
                if shard
            ]
            for future in as_completed(futures):
                report = future.result()
                observer.work_done(STAGE, "", report.embedded)
                for result in report.results:
                    observer.slide_finished(result.outcome())
                merged = report if merged is None else _merge(merged, report)
    if merged is None:
        merged = EmbedReport("", device_type, device_type, options.get("precision", ""), 0, 0)
    merged.device = f"{device_type} x{n_processes}"
    merged.wall_seconds = time.perf_counter() - began
    return merged


def _merge(a: EmbedReport, b: EmbedReport) -> EmbedReport:
    a.results.extend(b.results)
    for name in ("read_seconds", "wait_seconds", "model_seconds", "write_seconds"):
        setattr(a, name, getattr(a, name) + getattr(b, name))
    return a

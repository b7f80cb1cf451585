"""The ``tile`` stage of ``wsi-engine run``: slide files → complete patch stores (:func:`tile_slides`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from wsi_engine.stage import (
    ProgressOnly,
    SlideJob,
    StageObserver,
    StageResult,
    by_overwrite,
    stage_key,
)
from wsi_engine.tiling.config import TilingConfig
from wsi_engine.tiling.pipeline import tile_slides


class TileStage:
    """Key: the tiling configuration and the slide file's fingerprint; complete: the store exists."""

    name = "tile"

    def __init__(
        self,
        stores_dir: Path,
        config: TilingConfig,
        *,
        workers: int | None = None,
        scheduler: str | None = None,
    ):
        self.stores_dir = stores_dir
        self.config = config
        self.workers = workers
        self.scheduler = scheduler
        self.details: dict[str, float] = {}

    def key(self, job: SlideJob) -> str:
        return stage_key("tile", self.config.model_dump(mode="json"), job.keys["fingerprint"])

    def complete(self, job: SlideJob, record: dict[str, Any]) -> bool:
        return job.store.is_dir()

    def select(self, todo: list[SlideJob], ready: list[SlideJob]) -> list[SlideJob]:
        return todo

    def run(self, jobs: list[SlideJob], observer: StageObserver) -> Iterator[StageResult]:
        for overwrite, group in by_overwrite(jobs):
            report = tile_slides(
                [job.path for job in group],
                self.stores_dir,
                self.config,
                workers=self.workers,
                scheduler=self.scheduler,
                overwrite=overwrite,
                observer=ProgressOnly(observer),
            )
            by_path = {Path(r.path).resolve(): r for r in report.results}
            for job in group:
                tiled = by_path.get(job.path.resolve())
                if tiled is None:
                    yield StageResult.failure(self.name, job.slide_id, "not tiled")
                    continue
                result = tiled.outcome()
                result.record |= {"fingerprint": job.keys["fingerprint"], "path": str(job.path)}
                yield result

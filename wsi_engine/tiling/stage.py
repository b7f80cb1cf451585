"""The ``tile`` stage of ``wsi-engine run``: slide files → complete patch stores (:func:`tile_slides`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from wsi_engine import stage
from wsi_engine.stage import SlideJob, StageObserver, StagePayload, StageResult, TileRecord
from wsi_engine.tiling.config import TilingConfig
from wsi_engine.tiling.pipeline import tile_slides


class TileStage(stage.SlideStage):
    """Key: the tiling configuration and the slide file's fingerprint; complete: the store exists."""

    name = "tile"
    record_type = TileRecord

    def __init__(
        self,
        stores_dir: Path,
        config: TilingConfig,
        *,
        workers: int | None = None,
        scheduler: str | None = None,
    ):
        super().__init__()
        self.stores_dir = stores_dir
        self.config = config
        self.workers = workers
        self.scheduler = scheduler

    def key(self, job: SlideJob) -> str:
        return stage.stage_key("tile", self.config.model_dump(mode="json"), job.keys["fingerprint"])

    def complete(self, job: SlideJob, record: StagePayload) -> bool:
        return job.store.is_dir()

    def run(
        self, jobs: list[SlideJob], observer: StageObserver
    ) -> Iterator[StageResult[TileRecord]]:
        for overwrite, group in stage.by_overwrite(jobs):
            report = tile_slides(
                [job.path for job in group],
                self.stores_dir,
                self.config,
                workers=self.workers,
                scheduler=self.scheduler,
                overwrite=overwrite,
                observer=stage.ProgressOnly(observer),
            )
            for job, result in stage.matched(self.name, group, report.results):
                if result.record is not None:
                    slide_file = {"fingerprint": job.keys["fingerprint"], "path": str(job.path)}
                    result.record = result.record.model_copy(update=slide_file)
                yield result

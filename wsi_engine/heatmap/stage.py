"""The ``heatmap`` stage of ``wsi-engine run``: scores in the stores → heatmaps and the cohort report."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from wsi_engine import stage
from wsi_engine.heatmap.render import make_heatmaps
from wsi_engine.heatmap.settings import HeatmapSettings
from wsi_engine.stage import (
    HeatmapRecord,
    PredictRecord,
    SlideJob,
    StageObserver,
    StagePayload,
    StageResult,
)

REPORT_NAME = "report.html"


class HeatmapStage(stage.SlideStage):
    """Key: the heatmap settings and the predict key; complete: the slide's folder exists.

    The cohort report lists every slide, so when any slide is out of date (or
    the report is missing) every slide is drawn again; those that were up to
    date come back ``skipped``. The score id is the one the predict stage
    recorded (the first in sorted order if slides carry several).
    """

    name = "heatmap"
    record_type = HeatmapRecord

    def __init__(self, out_dir: Path, settings: HeatmapSettings):
        super().__init__()
        self.out_dir = out_dir
        self.settings = settings

    def key(self, job: SlideJob) -> str:
        return stage.stage_key(
            "heatmap", self.settings.model_dump(mode="json"), job.keys["predict"]
        )

    def complete(self, job: SlideJob, record: StagePayload) -> bool:
        return (self.out_dir / job.slide_id).is_dir()

    def select(self, todo: list[SlideJob], ready: list[SlideJob]) -> list[SlideJob]:
        report_missing = (
            "html" in self.settings.formats and not (self.out_dir / REPORT_NAME).is_file()
        )
        return [*todo, *ready] if todo or report_missing else []

    def run(
        self, jobs: list[SlideJob], observer: StageObserver
    ) -> Iterator[StageResult[HeatmapRecord]]:
        if not jobs:
            return
        score_ids = sorted({str(job.recorded(PredictRecord).score_id) for job in jobs})
        rendered = make_heatmaps(
            [job.store for job in jobs],
            score_ids[0],
            self.out_dir,
            formats=self.settings.formats,
            scale=self.settings.scale,
            top_k=self.settings.top_k,
            smooth_um=self.settings.smooth_um,
            observer=stage.ProgressOnly(observer),
        )
        for job, result in stage.matched(self.name, jobs, rendered.slides):
            if not result.failed and not job.needed:
                result.status = "skipped"
            result.counts = {"patches": job.n_patches, "processed": job.n_patches}
            yield result

"""The ``embed`` stage of ``wsi-engine run``: patch stores → ``features/<encoder_id>`` (:func:`embed_stores`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from wsi_engine import stage
from wsi_engine.encoders.aliases import load_encoder_config
from wsi_engine.encoders.embed import EmbedReport, embed_stores
from wsi_engine.encoders.settings import EmbedSettings
from wsi_engine.stage import EmbedRecord, SlideJob, StageObserver, StagePayload, StageResult
from wsi_engine.store import PatchStore

TIMINGS = ("load_seconds", "read_seconds", "wait_seconds", "model_seconds", "write_seconds")


class EmbedStage(stage.SlideStage):
    """Key: the encoder preset, the weights file's identity and the tile key; complete: features exist.

    Runs in this process; :class:`wsi_engine.cluster.stages.ClusterEmbedStage` runs it on a cluster.
    """

    name = "embed"
    record_type = EmbedRecord

    def __init__(self, settings: EmbedSettings):
        super().__init__()
        self.settings = settings
        self.encoder_config = load_encoder_config(settings.encoder)
        self.encoder_id = self.encoder_config.encoder_id
        self.weights = _weights_identity(settings.checkpoint)

    def key(self, job: SlideJob) -> str:
        return stage.stage_key(
            "embed", self.encoder_config.model_dump(mode="json"), self.weights, job.keys["tile"]
        )

    def complete(self, job: SlideJob, record: StagePayload) -> bool:
        return PatchStore.open(job.store).has_features(self.encoder_id)

    def run(
        self, jobs: list[SlideJob], observer: StageObserver
    ) -> Iterator[StageResult[EmbedRecord]]:
        for overwrite, group in stage.by_overwrite(jobs):
            report = self._embed([str(job.store) for job in group], overwrite, observer)
            for name in TIMINGS:
                self.details[name] = round(self.details.get(name, 0.0) + getattr(report, name), 3)
            for _, result in stage.matched(self.name, group, report.results):
                if not result.failed:
                    rate = result.processed / result.seconds if result.seconds > 0 else None
                    result.record = EmbedRecord(
                        encoder_id=self.encoder_id,
                        patches_per_s=None if rate is None else round(rate, 2),
                        device=report.device_name,
                        precision=report.precision,
                    )
                yield result

    def arguments(self, overwrite: bool) -> dict[str, Any]:
        """The keyword arguments of :func:`embed_stores` for these settings."""
        settings = self.settings
        return dict(
            checkpoint=settings.checkpoint,
            device=settings.device,
            batch_size=settings.batch_size,
            precision=settings.precision,
            workers=settings.workers,
            overwrite=overwrite,
        )

    def _embed(self, paths: list[str], overwrite: bool, observer: StageObserver) -> EmbedReport:
        return embed_stores(
            paths,
            self.settings.encoder,
            observer=stage.ProgressOnly(observer),
            **self.arguments(overwrite),
        )


def _weights_identity(checkpoint: str | None) -> list[Any]:
    """(resolved path, size, mtime ns) of a weights file: a changed file re-embeds."""
    if not checkpoint:
        return []
    stat = os.stat(checkpoint) if os.path.exists(checkpoint) else None
    return [
        str(Path(checkpoint).resolve()),
        stat.st_size if stat else None,
        stat.st_mtime_ns if stat else None,
    ]

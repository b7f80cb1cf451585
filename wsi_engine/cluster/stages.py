"""The embed and predict stages of ``wsi-engine run --scheduler``: one Dask task per store.

Same keys, completeness and results as the local stages; only where the work
runs differs (the workers must see the stores and the fit run at the same
absolute paths, checked first by :func:`~wsi_engine.dask_workers.prepare_cluster`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

from wsi_engine.cluster.embed import embed_on_cluster
from wsi_engine.dask_workers import absolute, prepare_cluster
from wsi_engine.encoders.report import EmbedReport
from wsi_engine.encoders.settings import EmbedSettings
from wsi_engine.encoders.stage import EmbedStage
from wsi_engine.mil.stage import PredictStage, predict_task
from wsi_engine.stage import PredictRecord, SlideJob, StageObserver, StageResult
from wsi_engine.tiling import dask_client


class ClusterEmbedStage(EmbedStage):
    """:class:`EmbedStage` on the cluster at ``scheduler`` (GPU workers if it has them)."""

    def __init__(self, settings: EmbedSettings, scheduler: str):
        super().__init__(settings)
        self.scheduler = scheduler

    def _embed(self, paths: list[str], overwrite: bool, observer: StageObserver) -> EmbedReport:
        with dask_client(None, self.scheduler) as client:
            return embed_on_cluster(
                client, paths, self.settings.encoder, **self.arguments(overwrite)
            )


class ClusterPredictStage(PredictStage):
    """:class:`PredictStage` with one task per store on the cluster at ``scheduler``."""

    def __init__(self, run_dir: str | Path, scheduler: str):
        super().__init__(run_dir)
        self.scheduler = scheduler

    def run(
        self, jobs: list[SlideJob], observer: StageObserver
    ) -> Iterator[StageResult[PredictRecord]]:
        if not jobs:
            return
        from distributed import as_completed

        run_dir = absolute(self.run_dir)
        stores = [absolute(job.store) for job in jobs]
        token = uuid.uuid4().hex[:8]
        with dask_client(None, self.scheduler) as client:
            prepare_cluster(client, [run_dir, *stores], stores)
            futures = [
                client.submit(
                    predict_task,
                    str(run_dir),
                    str(store),
                    key=f"predict-{store.name}-{token}",
                    pure=False,
                )
                for store in stores
            ]
            for future in as_completed(futures):
                yield future.result()

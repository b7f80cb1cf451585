"""The ``predict`` stage of ``wsi-engine run``: features → ``scores/<score_id>`` and slide probabilities."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from wsi_engine import stage
from wsi_engine.errors import WsiEngineError
from wsi_engine.mil.predict import Predictor
from wsi_engine.mil.rundir import read_run
from wsi_engine.stage import PredictRecord, SlideJob, StageObserver, StagePayload, StageResult
from wsi_engine.store import PatchStore, store_slide_id
from wsi_engine.training.stores import predict_store


class PredictStage(stage.SlideStage):
    """Key: the fit run's ``run.json`` and the embed key; complete: scores and the slide's probabilities.

    The run's models are loaded once for all slides; an unusable run fails
    every slide, a store that cannot be predicted only its own. Each result's
    record holds the score id, class names, probabilities and predicted class
    (what ``predictions.csv`` is written from).
    """

    name = "predict"
    record_type = PredictRecord

    def __init__(self, run_dir: str | Path):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.run_key = stage.stage_key(read_run(self.run_dir).to_json())

    def key(self, job: SlideJob) -> str:
        return stage.stage_key("predict", self.run_key, job.keys["embed"])

    def complete(self, job: SlideJob, record: StagePayload) -> bool:
        probs = isinstance(record, PredictRecord) and record.probs is not None
        return probs and bool(PatchStore.open(job.store).score_runs())

    def run(
        self, jobs: list[SlideJob], observer: StageObserver
    ) -> Iterator[StageResult[PredictRecord]]:
        if not jobs:
            return
        try:
            predictor = Predictor(self.run_dir)
        except WsiEngineError as error:
            for job in jobs:
                yield StageResult.failure(self.name, job.slide_id, error)
            return
        for job in jobs:
            yield predict_one(predictor, job.store)


def predict_one(predictor: Predictor, store: Path) -> StageResult[PredictRecord]:
    """The predict result of one store; its record holds what ``predictions.csv`` needs."""
    result = predict_store(store, predictor.encoder_id, predictor.feature_dim, predictor.score)
    row, names = result.record, predictor.class_names
    record = None
    if row is not None:
        record = PredictRecord(
            score_id=predictor.score_id,
            class_names=names,
            probs=[row[f"prob_{c}"] for c in names],
            predicted=row["predicted"],
        )
    return replace(result, record=record)


def predict_task(run_dir: str, store: str) -> StageResult[PredictRecord]:
    """:func:`predict_one` in a Dask worker: loads the run's models itself (they are small)."""
    try:
        predictor = Predictor(run_dir)
    except WsiEngineError as error:
        return StageResult.failure(PredictStage.name, store_slide_id(store), error)
    return predict_one(predictor, Path(store))

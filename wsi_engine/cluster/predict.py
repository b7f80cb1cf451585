"""``predict`` on a Dask cluster: one task per store, results gathered into one CSV.

Each task runs :func:`wsi_engine.mil.predict.predict` on one store in a
worker (the fold models are small: each task loads them), writing the
store's ``scores/<score_id>`` there; the client gathers the rows, writes
``out_csv`` and computes the metrics of labelled slides exactly as a local
run does. Paths are sent absolute and checked on every worker first.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path
from typing import Any, Unpack

from wsi_engine.dask_workers import absolute, prepare_cluster
from wsi_engine.mil.predict import PredictOptions, PredictResult, finish_predictions, predict
from wsi_engine.stage import StageObserver, StageResult


def predict_one_store(run_dir: str, store: str, options: PredictOptions) -> PredictResult:
    """Predict one store in this worker (a Dask task); returns its ``PredictResult``."""
    handle, scratch = tempfile.mkstemp(suffix=".csv", prefix="wsi-engine-predict-")
    os.close(handle)
    try:
        return predict(run_dir, [store], scratch, **options)
    finally:
        Path(scratch).unlink(missing_ok=True)


def predict_on_cluster(
    client: Any,
    run_dir: str | Path,
    store_dirs: list[str | Path],
    out_csv: str | Path,
    *,
    observer: StageObserver | None = None,
    **options: Unpack[PredictOptions],
) -> PredictResult:
    """:func:`wsi_engine.mil.predict.predict` with one task per store on ``client``'s workers.

    ``options`` go to every task unchanged (``device`` is resolved on each
    worker). Returns the same ``PredictResult`` (rows in store order), written
    and scored by :func:`~wsi_engine.mil.predict.finish_predictions` as a local
    run is. An unusable run (a :class:`~wsi_engine.errors.WsiEngineError` in
    every task) is raised as the first task raised it.
    """
    from distributed import as_completed

    from wsi_engine.store import find_stores

    run_dir = absolute(run_dir)
    paths = [absolute(p) for p in find_stores([absolute(p) for p in store_dirs])]
    prepare_cluster(client, [run_dir, *paths], paths if options.get("write_scores", True) else [])
    observer = observer or StageObserver()
    observer.stage_started("predict", len(paths))
    token = uuid.uuid4().hex[:8]
    futures = {
        client.submit(
            predict_one_store,
            str(run_dir),
            str(path),
            options,
            key=f"predict-{path.name}-{token}",
            pure=False,
        ): path
        for path in paths
    }
    parts: dict[Path, Any] = {}
    for future in as_completed(futures):
        part = future.result()  # an unusable run raises here, as predict() does locally
        parts[futures[future]] = part
        for row in part.rows:
            observer.slide_finished(StageResult("predict", row["slide_id"], "done"))
        for slide_id, reason in part.failures.items():
            observer.slide_finished(StageResult.failure("predict", slide_id, reason))
    ordered = [parts[path] for path in paths]
    rows = [row for part in ordered for row in part.rows]
    failures = {k: v for part in ordered for k, v in part.failures.items()}
    score_id = ordered[0].score_id if ordered else options.get("score_id") or ""
    class_names = (
        [c.removeprefix("prob_") for c in rows[0] if c.startswith("prob_")] if rows else []
    )
    return finish_predictions(
        score_id, rows, failures, class_names, out_csv, labelled=options.get("labels") is not None
    )

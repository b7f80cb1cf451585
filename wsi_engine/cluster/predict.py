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
from typing import Any

from wsi_engine.dask_workers import absolute, prepare_cluster
from wsi_engine.stage import StageObserver, StageResult


def predict_one_store(run_dir: str, store: str, options: dict[str, Any]) -> Any:
    """Predict one store in this worker (a Dask task); returns its ``PredictResult``."""
    from wsi_engine.mil.predict import predict

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
    shots: int | None = None,
    fold: str = "all",
    score_id: str | None = None,
    write_scores: bool = True,
    labels: dict[str, str] | None = None,
    observer: StageObserver | None = None,
    device: str = "auto",
) -> Any:
    """:func:`wsi_engine.mil.predict.predict` with one task per store on ``client``'s workers.

    Returns the same ``PredictResult`` (rows in store order). An unusable run
    (a :class:`~wsi_engine.errors.WsiEngineError` in every task) is raised
    as the first task raised it.
    """
    import numpy as np
    from distributed import as_completed

    from wsi_engine.mil.metrics import classification_metrics
    from wsi_engine.mil.predict import PredictResult
    from wsi_engine.store import find_stores
    from wsi_engine.training.rundir import write_rows

    run_dir = absolute(run_dir)
    paths = [absolute(p) for p in find_stores([absolute(p) for p in store_dirs])]
    prepare_cluster(client, [run_dir, *paths], paths if write_scores else [])
    observer = observer or StageObserver()
    observer.stage_started("predict", len(paths))
    options = {
        "shots": shots,
        "fold": fold,
        "score_id": score_id,
        "write_scores": write_scores,
        "labels": labels,
        "device": device,  # resolved on each worker
    }
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
    result = PredictResult(ordered[0].score_id if ordered else score_id or "", rows, failures)
    columns = list(rows[0]) if rows else ["slide_id", "predicted", "n_patches"]
    write_rows(Path(out_csv), rows, columns)
    class_names = [c.removeprefix("prob_") for c in columns if c.startswith("prob_")]
    if labels is not None:
        known = [r for r in rows if r["label"] in class_names]
        if known and len({r["label"] for r in known}) > 1:
            targets = [class_names.index(r["label"]) for r in known]
            probs = [[r[f"prob_{c}"] for c in class_names] for r in known]
            result.metrics = classification_metrics(np.array(targets), np.array(probs))
    return result

"""A fitted model's input read from patch stores, one store at a time, with per-store failures.

A store that cannot be used (missing or unreadable, no patches, no complete
features of the run's encoder, features of another width, NaN or infinite
features) is a failure keyed by its slide id; the other stores go on.
Whether failures are an error is the caller's decision (:func:`failures_error`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from wsi_engine.errors import (
    BatchFailures,
    DataError,
    OutputError,
    StoreError,
    batch_failures,
    exit_code_of_reason,
)
from wsi_engine.stage import StageObserver, StageResult
from wsi_engine.store import PatchStore, require_stores, store_slide_id


def read_bag(store_path: Path, encoder_id: str) -> np.ndarray:
    """(N, D) features as stored (float16/float32); DataError if any value is NaN or infinite."""
    values = PatchStore.open(store_path).read_features(encoder_id, dtype=None)
    finite = np.isfinite(values).all(axis=1)
    if not finite.all():
        raise DataError(
            f"features of encoder '{encoder_id}' contain NaN or infinite values in {int((~finite).sum())} of {len(values)} patches",
            path=store_path,
            hint=f"re-embed this store (`wsi-engine embed --encoder {encoder_id} --overwrite`)",
        )
    return values


def usable_features(path: Path, encoder_id: str, feature_dim: int) -> tuple[PatchStore, np.ndarray]:
    """(store, features (N, D) float32) of a store a run can use, or StoreError/DataError saying why not."""
    store = PatchStore.open(path)
    if store.n_patches == 0:
        raise DataError("the store has no patches (no tissue)", path=path)
    features = read_bag(path, encoder_id).astype(np.float32)
    if features.shape[1] != feature_dim:
        raise DataError(
            f"features are {features.shape[1]}-d, the run was trained on {feature_dim}-d",
            path=path,
        )
    return store, features


def predict_stores(
    store_dirs: list[str | Path],
    encoder_id: str,
    feature_dim: int,
    predict_one: Callable[[PatchStore, np.ndarray], dict[str, Any]],
    observer: StageObserver | None = None,
    stage: str = "predict",
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """(rows, failures): ``predict_one(store, features)`` of every usable store, {slide_id: reason} of the others.

    ``observer`` hears of every store as a result of ``stage``, predicted or not.
    """
    paths = require_stores(list(store_dirs))
    observer = observer or StageObserver()
    observer.stage_started(stage, len(paths))
    rows, failures = [], {}
    for path in paths:
        result = predict_store(path, encoder_id, feature_dim, predict_one, stage)
        if result.record is None:
            failures[result.slide_id] = result.reason
        else:
            rows.append(result.record)
        observer.slide_finished(result)
    return rows, failures


def predict_store(
    path: Path,
    encoder_id: str,
    feature_dim: int,
    predict_one: Callable[[PatchStore, np.ndarray], dict[str, Any]],
    stage: str = "predict",
) -> StageResult:
    """``predict_one`` of one store as a stage result (its row in ``record``), or why it failed."""
    began = time.perf_counter()
    slide_id = store_slide_id(path)
    try:
        store, features = usable_features(path, encoder_id, feature_dim)
        row = predict_one(store, features)
    except (StoreError, DataError, OutputError) as error:  # OutputError: store locked
        return StageResult.failure(stage, slide_id, error, time.perf_counter() - began)
    n = store.n_patches
    counts = {"patches": n, "processed": n}
    return StageResult(
        stage, slide_id, "done", seconds=time.perf_counter() - began, counts=counts, record=row
    )


def failures_error(failures: dict[str, str], n_predicted: int, hint: str) -> BatchFailures:
    """The exit-1 error of a batch with ``failures`` ({slide_id: reason}) beside ``n_predicted`` predicted stores."""
    total = len(failures) + n_predicted
    return batch_failures(
        f"{len(failures)} of {total} store(s) could not be predicted; first: {next(iter(failures.values()))}",
        [exit_code_of_reason(reason) for reason in failures.values()],
        total,
        hint=hint,
    )

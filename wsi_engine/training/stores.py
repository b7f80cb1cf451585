"""A fitted model's input read from patch stores, one store at a time, with per-store failures.

A store that cannot be used (missing or unreadable, no patches, no complete
features of the run's encoder, features of another width, NaN or infinite
features) is a failure keyed by its slide id; the other stores go on.
Whether failures are an error is the caller's decision (:func:`failures_error`).
"""

from __future__ import annotations

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
    describe,
    exit_code_of_reason,
)
from wsi_engine.store import PatchStore, find_stores
from wsi_engine.store.layout import STORE_SUFFIX


def store_slide_id(path: str | Path) -> str:
    """Slide id of a store path: its folder name without ``.zarr``."""
    return Path(path).name.removesuffix(STORE_SUFFIX)


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
    on_slide: Callable[[str], None] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """(rows, failures): ``predict_one(store, features)`` of every usable store, {slide_id: reason} of the others.

    ``on_slide(slide_id)`` is called after each store, predicted or not.
    """
    paths = find_stores(list(store_dirs))
    if not paths:
        raise StoreError(
            "no patch stores found",
            path=", ".join(map(str, store_dirs)),
            hint="give store folders or <id>.zarr paths",
        )
    rows, failures = [], {}
    for path in paths:
        try:
            rows.append(predict_one(*usable_features(path, encoder_id, feature_dim)))
        except (StoreError, DataError, OutputError) as error:  # OutputError: store locked
            failures[store_slide_id(path)] = describe(error)
        if on_slide is not None:
            on_slide(store_slide_id(path))
    return rows, failures


def failures_error(failures: dict[str, str], n_predicted: int, hint: str) -> BatchFailures:
    """The exit-1 error of a batch with ``failures`` ({slide_id: reason}) beside ``n_predicted`` predicted stores."""
    total = len(failures) + n_predicted
    return batch_failures(
        f"{len(failures)} of {total} store(s) could not be predicted; first: {next(iter(failures.values()))}",
        [exit_code_of_reason(reason) for reason in failures.values()],
        total,
        hint=hint,
    )

"""``wsi-engine predict-patches``: per-patch class probabilities of a fit-patches run, written into stores.

For every store: ``scores/<score_id>/probs`` (N, C) float32 softmax
probabilities of the run's head (docs/store.md), attributes ``kind`` =
``patch``, ``model``, ``task``, ``class_names``, ``encoder_id``, the patch
run, and ``class_fractions`` (share of patches whose arg-max is each class).
The default score id is the patch run's id. Stores that cannot be predicted
(missing or empty store, no features of the run's encoder, another feature
width, NaN features) are skipped and returned in ``failures`` by slide id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wsi_engine.patch.rundir import load_head, read_patch_run
from wsi_engine.patch.train import predict_probs
from wsi_engine.slide.ids import sanitize_name
from wsi_engine.stage import StageObserver
from wsi_engine.store import PatchStore
from wsi_engine.training.rundir import write_rows
from wsi_engine.training.stores import predict_stores


@dataclass
class PatchPredictResult:
    """Rows of the predicted stores and {slide_id: reason} of the others."""

    score_id: str
    class_names: list[str]
    rows: list[dict[str, Any]]
    failures: dict[str, str] = field(default_factory=dict)


def predict_patches(
    run_dir: str | Path,
    store_dirs: list[str | Path],
    *,
    score_id: str | None = None,
    out_csv: str | Path | None = None,
    observer: StageObserver | None = None,
) -> PatchPredictResult:
    """Write ``scores/<score_id>`` with ``probs`` into every usable store of ``store_dirs``; optional per-slide CSV.

    ``observer`` hears of every store (stage ``predict-patches``), predicted or not.
    """
    run_dir = Path(run_dir)
    run = read_patch_run(run_dir)
    head, meta = load_head(run_dir / run.checkpoint)
    class_names, encoder_id = list(meta.class_names), run.encoder_id
    score_id = sanitize_name(score_id or run.run_id)

    def predict_one(store: PatchStore, features: np.ndarray) -> dict[str, Any]:
        probs = predict_probs(head, features)
        fractions = np.bincount(probs.argmax(1), minlength=len(class_names)) / len(probs)
        attrs = {
            "kind": "patch",
            "model": run.model,
            "task": run.task,
            "class_names": class_names,
            "encoder_id": encoder_id,
            "class_fractions": [float(f) for f in fractions],
            "fit_run": str(run_dir.resolve()),
            "fit_run_id": run.run_id,
        }
        PatchStore.open(store.path, mode="r+").write_scores(score_id, {"probs": probs}, attrs)
        return {
            "slide_id": store.slide_id,
            "n_patches": store.n_patches,
            **{f"fraction_{c}": float(f) for c, f in zip(class_names, fractions, strict=True)},
            **{f"mean_prob_{c}": float(p) for c, p in zip(class_names, probs.mean(0), strict=True)},
        }

    rows, failures = predict_stores(
        store_dirs, encoder_id, meta.feature_dim, predict_one, observer, "predict-patches"
    )
    if out_csv is not None:
        columns = [
            "slide_id",
            "n_patches",
            *(f"fraction_{c}" for c in class_names),
            *(f"mean_prob_{c}" for c in class_names),
        ]
        write_rows(Path(out_csv), rows, columns)
    return PatchPredictResult(score_id, class_names, rows, failures)

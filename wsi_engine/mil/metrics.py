"""Slide-level metrics and their summary over folds.

* ``accuracy``, ``balanced_accuracy`` (mean per-class recall), ``macro_f1``
  (unweighted mean of per-class F1, also for two classes);
* ``auc``: binary — ROC AUC of the second class's probability; multiclass —
  macro one-vs-rest ROC AUC on the softmax probabilities. NaN when the
  evaluated slides hold a single class.

Over folds: mean and sample standard deviation (ddof = 1; 0 for one fold) of
the folds where the metric is defined; ``n`` counts those folds and
``undefined`` the others (an AUC over a single class), so none is dropped
silently.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, roc_auc_score

METRICS: tuple[str, ...] = ("accuracy", "balanced_accuracy", "auc", "macro_f1")


def macro_auc(targets: np.ndarray, probs: np.ndarray) -> float:
    """ROC AUC of ``probs`` (n, C) against ``targets`` (n,); NaN if fewer than two classes are present."""
    targets = np.asarray(targets)
    n_classes = probs.shape[1]
    if len(np.unique(targets)) < 2:
        return float("nan")
    if n_classes == 2:
        return float(roc_auc_score(targets, probs[:, 1]))
    present = np.unique(targets)
    if len(present) < n_classes:  # OvR over the classes that occur
        scores = [roc_auc_score(targets == c, probs[:, c]) for c in present]
        return float(np.mean(scores))
    return float(
        roc_auc_score(
            targets, probs, multi_class="ovr", average="macro", labels=list(range(n_classes))
        )
    )


def classification_metrics(targets: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """The :data:`METRICS` of class probabilities ``probs`` (n, C) for integer ``targets`` (n,)."""
    targets = np.asarray(targets, dtype=np.int64)
    predicted = probs.argmax(1)
    present = sorted(set(targets.tolist()) | set(predicted.tolist()))
    with warnings.catch_warnings():  # sklearn warns when a part holds a single class
        warnings.simplefilter("ignore", UserWarning)
        return {
            "accuracy": float(accuracy_score(targets, predicted)),
            "balanced_accuracy": float(balanced_accuracy_score(targets, predicted)),
            "auc": macro_auc(targets, probs),
            "macro_f1": float(
                f1_score(targets, predicted, labels=present, average="macro", zero_division=0)
            ),
        }


def summarize(per_fold: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """{metric: {"mean", "std", "n", "undefined"}} over folds (NaN values counted in ``undefined``, not averaged)."""
    summary = {}
    for name in METRICS:
        values = np.array([f[name] for f in per_fold if not math.isnan(f[name])], dtype=float)
        mean = float(values.mean()) if len(values) else float("nan")
        std = (
            float(values.std(ddof=1)) if len(values) > 1 else (0.0 if len(values) else float("nan"))
        )
        summary[name] = {
            "mean": mean,
            "std": std,
            "n": len(values),
            "undefined": len(per_fold) - len(values),
        }
    return summary

"""Slide-level metrics and their summary over folds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from wsi_engine.mil.metrics import classification_metrics, summarize


def test_binary_metrics_use_the_second_class_probability():
    targets = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.8, 0.2]])
    m = classification_metrics(targets, probs)
    assert m["accuracy"] == 0.5 and m["balanced_accuracy"] == 0.5
    assert m["auc"] == pytest.approx(
        0.75
    )  # negatives 0.1, 0.6 vs positives 0.7, 0.2: 3 of 4 pairs ordered
    assert m["macro_f1"] == pytest.approx(0.5)


def test_multiclass_macro_one_vs_rest_auc_and_single_class_nan():
    targets = np.array([0, 1, 2, 0, 1, 2])
    probs = np.eye(3)[[0, 1, 2, 0, 2, 1]] * 0.7 + 0.1
    m = classification_metrics(targets, probs)
    assert m["accuracy"] == pytest.approx(4 / 6) and 0.5 < m["auc"] < 1.0
    assert math.isnan(
        classification_metrics(np.array([1, 1]), np.array([[0.2, 0.8], [0.6, 0.4]]))["auc"]
    )


def test_summary_counts_undefined_folds_instead_of_dropping_them():
    folds = [
        {"accuracy": 1.0, "balanced_accuracy": 1.0, "auc": 1.0, "macro_f1": 1.0},
        {"accuracy": 0.5, "balanced_accuracy": 0.5, "auc": float("nan"), "macro_f1": 0.5},
    ]
    s = summarize(folds)
    assert s["accuracy"] == {
        "mean": 0.75,
        "std": pytest.approx(np.std([1.0, 0.5], ddof=1)),
        "n": 2,
        "undefined": 0,
    }
    assert s["auc"] == {"mean": 1.0, "std": 0.0, "n": 1, "undefined": 1}

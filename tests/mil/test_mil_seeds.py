"""Bootstrap confidence intervals and the fast metrics behind them (``wsi_engine.mil.seeds``)."""

from __future__ import annotations

import numpy as np
import pytest

from wsi_engine.mil.metrics import classification_metrics
from wsi_engine.mil.seeds import SeedPredictions, bootstrap_ci, fast_metrics


def test_fast_metrics_match_the_reference_metrics():
    rng = np.random.default_rng(0)
    for n_classes in (2, 3):
        for _ in range(30):
            targets = rng.integers(0, n_classes, 20)
            probs = rng.dirichlet(np.ones(n_classes), 20)
            probs[:5] = probs[0]  # ties
            fast, reference = fast_metrics(targets, probs), classification_metrics(targets, probs)
            assert fast == pytest.approx(reference)


def test_bootstrap_interval_brackets_the_metric_and_shrinks_with_more_slides():
    rng = np.random.default_rng(1)

    def predictions(n):
        targets = np.repeat([0, 1], n // 2)
        score = np.clip(targets * 0.3 + rng.uniform(0, 0.7, n), 0, 1)
        probs = np.stack([1 - score, score], 1)
        return [SeedPredictions(0, tuple(map(str, range(n))), targets, probs)]

    small, large = bootstrap_ci(predictions(20), 300), bootstrap_ci(predictions(400), 300)
    low, high = small["auc"]
    assert 0 <= low < high <= 1
    assert large["auc"][1] - large["auc"][0] < high - low

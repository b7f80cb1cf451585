"""Spread of a fit over training seeds: mean ± std over seeds and a bootstrap 95 % CI over test slides.

``fit --seeds 0,1,2`` keeps the splits (made with ``--seed``) and repeats
the training once per seed (other initialisation, other epoch order). Per
shot setting and metric:

* ``mean``, ``std``: over seeds of each seed's mean over folds (sample std,
  ddof 1; 0 for one seed);
* ``ci_low``, ``ci_high``: percentile bootstrap 95 % interval over test
  slides. Every fold's test slides are pooled (test sets of different folds
  are disjoint, so each slide counts once); ``n_boot`` resamples of the
  slides, with replacement, stratified by class so every class is present;
  the metric of a resample is the mean over seeds of the metric on the
  resampled slides. The seed of the resampling is fixed, so equal runs
  give equal intervals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

from wsi_engine.mil.metrics import METRICS

N_BOOT = 1000


@dataclass(frozen=True)
class SeedPredictions:
    """Pooled test predictions of one (shots, seed): slide ids (n,), targets (n,), probs (n, C)."""

    seed: int
    slide_ids: tuple[str, ...]
    targets: np.ndarray
    probs: np.ndarray


def fast_metrics(targets: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """The :data:`~wsi_engine.mil.metrics.METRICS` in numpy (same definitions as
    :func:`~wsi_engine.mil.metrics.classification_metrics`, for the bootstrap's many resamples)."""
    n_classes = probs.shape[1]
    predicted = probs.argmax(1)
    present = np.unique(targets)
    recall = [np.mean(predicted[targets == c] == c) for c in present]
    f1 = []
    for c in np.union1d(present, np.unique(predicted)):
        tp = np.sum((predicted == c) & (targets == c))
        denominator = np.sum(predicted == c) + np.sum(targets == c)
        f1.append(2 * tp / denominator if denominator else 0.0)
    aucs = []
    if len(present) > 1:
        for c in [1] if n_classes == 2 else present:
            positive = targets == c
            ranks = rankdata(probs[:, c])
            n_pos = positive.sum()
            n_neg = len(targets) - n_pos
            aucs.append((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
    return {
        "accuracy": float(np.mean(predicted == targets)),
        "balanced_accuracy": float(np.mean(recall)),
        "auc": float(np.mean(aucs)) if aucs else math.nan,
        "macro_f1": float(np.mean(f1)),
    }


def _aligned(predictions: list[SeedPredictions]) -> tuple[np.ndarray, np.ndarray]:
    """(targets (n,), probs (S, n, C)) with every seed's slides in the first seed's order."""
    order = predictions[0].slide_ids
    probs = []
    for p in predictions:
        index = {s: i for i, s in enumerate(p.slide_ids)}
        probs.append(p.probs[[index[s] for s in order]])
    return predictions[0].targets, np.stack(probs)


def bootstrap_ci(
    predictions: list[SeedPredictions], n_boot: int = N_BOOT, seed: int = 0
) -> dict[str, tuple[float, float]]:
    """{metric: (low, high)} percentile 95 % bootstrap interval of the seed-mean metric (module docstring)."""
    targets, probs = _aligned(predictions)
    rng = np.random.default_rng(seed)
    by_class = [np.flatnonzero(targets == c) for c in np.unique(targets)]
    draws: dict[str, list[float]] = {m: [] for m in METRICS}
    for _ in range(n_boot):
        rows = np.concatenate([rng.choice(members, len(members)) for members in by_class])
        per_seed = [fast_metrics(targets[rows], p[rows]) for p in probs]
        for m in METRICS:
            values = [s[m] for s in per_seed if not math.isnan(s[m])]
            if values:
                draws[m].append(float(np.mean(values)))
    return {
        m: (
            (float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5)))
            if v
            else (math.nan, math.nan)
        )
        for m, v in draws.items()
    }


def seed_summary(
    rows: list[dict[str, float]], predictions: list[SeedPredictions]
) -> dict[str, dict[str, float]]:
    """{metric: {mean, std, n, undefined, seeds, ci_low, ci_high}} of one shot setting over seeds.

    ``rows``: that shot setting's fold rows (with ``seed``); NaN fold values
    are counted in ``undefined`` and left out of the seed's mean.
    """
    seeds = sorted({int(r["seed"]) for r in rows})
    ci = bootstrap_ci(predictions)
    out = {}
    for m in METRICS:
        per_seed, undefined, n = [], 0, 0
        for s in seeds:
            values = [r[m] for r in rows if int(r["seed"]) == s]
            defined = [v for v in values if not math.isnan(v)]
            undefined += len(values) - len(defined)
            n += len(defined)
            if defined:
                per_seed.append(float(np.mean(defined)))
        values = np.array(per_seed)
        out[m] = {
            "mean": float(values.mean()) if len(values) else math.nan,
            "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            "n": n,
            "undefined": undefined,
            "seeds": len(seeds),
            "ci_low": ci[m][0],
            "ci_high": ci[m][1],
        }
    return out

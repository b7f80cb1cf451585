"""Results of a fit run: per-fold and summary tables (CSV, JSON), ROC and training-curve figures."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from wsi_engine.mil.metrics import METRICS, summarize

TEST_PREFIX = "test_"
EVALUATED_ON = (
    "test_* metrics: each fold's test slides only, never used for training or checkpoint "
    "selection; mean/std over the folds where a metric is defined, n_* and undefined_* count "
    "the folds with and without it (an AUC over a single class is undefined)"
)
SPREAD_FOLDS = (
    "mean/std over folds; ci_low/ci_high: bootstrap 95 % interval over the pooled test slides"
)
SPREAD_SEEDS = (
    "mean/std over training seeds (same splits) of each seed's mean over folds; "
    "ci_low/ci_high: bootstrap 95 % interval over the pooled test slides of the seed-mean metric"
)
FOLD_COLUMNS = (
    "model",
    "shots",
    "fold",
    "seed",
    *(TEST_PREFIX + m for m in METRICS),
    "best_epoch",
    "epochs_run",
    "n_train",
    "n_val",
    "n_test",
    "seconds",
)


def test_named(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with its :data:`METRICS` renamed ``test_<metric>``."""
    return {(TEST_PREFIX + k if k in METRICS else k): v for k, v in row.items()}


def summary_by_shots(rows: list[dict[str, Any]]) -> dict[int, dict[str, dict[str, float]]]:
    """{shots: {metric: {"mean", "std", "n", "undefined"}}} from per-fold rows."""
    shots = sorted({r["shots"] for r in rows})
    return {m: summarize([r for r in rows if r["shots"] == m]) for m in shots}


def write_results(
    run_dir: Path,
    rows: list[dict[str, Any]],
    model: str,
    summary: dict[int, dict[str, dict[str, float]]] | None = None,
) -> dict[int, dict[str, dict[str, float]]]:
    """Write ``results.csv`` (fold rows, then one row per summary statistic and shots: ``mean``,
    ``std``, ``n``, ``undefined``, and ``ci_low``/``ci_high``/``seeds`` when present) and
    ``results.json``; metric columns are named ``test_<metric>``. ``summary`` defaults to
    :func:`summary_by_shots`."""
    summary = summary or summary_by_shots(rows)
    with open(run_dir / "results.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=FOLD_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(test_named(r) for r in rows)
        for shots, metrics in summary.items():
            for stat in next(iter(metrics.values())):
                writer.writerow(
                    {
                        "model": model,
                        "shots": shots,
                        "fold": stat,
                        **{TEST_PREFIX + k: v[stat] for k, v in metrics.items()},
                    }
                )
    many = len({r.get("seed") for r in rows}) > 1
    payload = {
        "model": model,
        "evaluated_on": EVALUATED_ON,
        "spread": SPREAD_SEEDS if many else SPREAD_FOLDS,
        "folds": [test_named(r) for r in rows],
        "summary": {str(k): test_named(v) for k, v in summary.items()},
    }
    (run_dir / "results.json").write_text(json.dumps(payload, indent=1), encoding="utf-8")
    return summary


def _roc_curve(targets: np.ndarray, probs: np.ndarray, grid: np.ndarray) -> np.ndarray | None:
    """TPR on ``grid`` (FPR values): binary ROC of class 1, or the macro average of one-vs-rest curves."""
    from sklearn.metrics import roc_curve

    classes = [1] if probs.shape[1] == 2 else list(range(probs.shape[1]))
    curves = []
    for c in classes:
        positive = targets == c
        if positive.all() or not positive.any():
            continue
        fpr, tpr, _ = roc_curve(positive, probs[:, c])
        curves.append(np.interp(grid, fpr, tpr))
    return np.mean(curves, axis=0) if curves else None


def plot_roc(
    path: Path, curves: dict[int, list[tuple[np.ndarray, np.ndarray]]], class_names: list[str]
) -> None:
    """One panel per shots setting: the test ROC curve of every fold, ``curves[shots] = [(targets, probs)]``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.linspace(0, 1, 201)
    fig, axes = plt.subplots(1, len(curves), figsize=(4 * len(curves), 4), squeeze=False)
    kind = f"class '{class_names[1]}'" if len(class_names) == 2 else "macro one-vs-rest"
    for ax, (shots, folds) in zip(axes[0], sorted(curves.items()), strict=True):
        for fold, (targets, probs) in enumerate(folds):
            tpr = _roc_curve(targets, probs, grid)
            if tpr is not None:
                ax.plot(grid, tpr, lw=1, alpha=0.8, label=f"fold {fold}")
        ax.plot([0, 1], [0, 1], ls=":", c="grey")
        ax.set(
            title=f"{shots}-shot test ROC ({kind})",
            xlabel="false positive rate",
            ylabel="true positive rate",
        )
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_curves(path: Path, histories: dict[int, list[list[dict[str, Any]]]]) -> None:
    """One panel per shots setting: training loss and validation balanced accuracy per epoch, every fold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(histories), figsize=(4.5 * len(histories), 3.6), squeeze=False)
    for ax, (shots, folds) in zip(axes[0], sorted(histories.items()), strict=True):
        right = ax.twinx()
        for fold, history in enumerate(folds):
            epochs = [h["epoch"] for h in history]
            line = ax.plot(
                epochs, [h["train_loss"] for h in history], lw=1, label=f"fold {fold} loss"
            )[0]
            right.plot(
                epochs,
                [h["val_balanced_accuracy"] for h in history],
                lw=1,
                ls="--",
                c=line.get_color(),
            )
        ax.set(
            title=f"{shots}-shot: train loss (—), val bal. acc (--)",
            xlabel="epoch",
            ylabel="training loss",
        )
        right.set_ylim(0, 1.02)
        right.set_ylabel("validation balanced accuracy")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

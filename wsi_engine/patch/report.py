"""Results of a patch-classifier run: metrics table (CSV, JSON), confusion matrix figure, item lists.

Metrics are those of :mod:`wsi_engine.mil.metrics` (accuracy, balanced
accuracy, macro AUC, macro F1), one row per stage: the head before training
(``zero-shot`` when text-initialised, ``untrained`` when its class weights
are random) and ``trained`` (the selected epoch).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from wsi_engine.mil.metrics import METRICS
from wsi_engine.training.rundir import write_json, write_rows

METRIC_COLUMNS = ("stage", "evaluated_on", "n_patches", *METRICS)


def write_metrics(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    """``metrics.csv`` and ``metrics.json`` with one row per stage."""
    write_rows(run_dir / "metrics.csv", rows, METRIC_COLUMNS)
    write_json(run_dir / "metrics.json", rows)


def confusion_matrix(targets: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """(C, C) int64 counts, rows = target class, columns = predicted class."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(
        matrix, (np.asarray(targets, dtype=np.int64), np.asarray(predicted, dtype=np.int64)), 1
    )
    return matrix


def plot_confusion(path: Path, matrix: np.ndarray, class_names: list[str], title: str) -> None:
    """Confusion matrix figure: row-normalised colours, counts and row percentages in the cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    totals = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, totals, out=np.zeros(matrix.shape, dtype=float), where=totals > 0)
    size = 1.2 + 0.9 * len(class_names)
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(
            j,
            i,
            f"{count}\n{share[i, j]:.0%}",
            ha="center",
            va="center",
            fontsize=8,
            color="white" if share[i, j] > 0.6 else "black",
        )
    ticks = np.arange(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=30, ha="right")
    ax.set_yticks(ticks, class_names)
    ax.set(xlabel="predicted class", ylabel="target class", title=title)
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of the target class")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

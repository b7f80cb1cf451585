"""Result tables of the training and prediction commands: metrics per shot setting, stage or slide."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from rich.table import Table

METRIC_KEYS = ("accuracy", "balanced_accuracy", "auc", "macro_f1")


def result_table(
    title: str, columns: Sequence[str], rows: Iterable[Sequence[str]], *, labels: int = 1
) -> Table:
    """A table of text ``rows``: the first ``labels`` columns left-aligned (names), the others right-aligned."""
    table = Table(title=title)
    for index, name in enumerate(columns):
        table.add_column(name, justify="left" if index < labels else "right")
    for row in rows:
        table.add_row(*row)
    return table


def metric_cells(metrics: Mapping[str, Any], cell: Callable[[Any], str]) -> list[str]:
    """``cell(value)`` of each metric of :data:`METRIC_KEYS` in ``metrics``, "–" where one is missing."""
    return [cell(metrics[key]) if key in metrics else "–" for key in METRIC_KEYS]


def mean_std(stats: Mapping[str, float]) -> str:
    """``mean ± std [95 % CI]`` of a summary entry, 3 decimals (std 0, no CI when absent), and how
    many folds had it undefined."""
    text = f"{stats['mean']:.3f} ± {stats.get('std', 0.0):.3f}"
    if "ci_low" in stats and stats["ci_low"] == stats["ci_low"]:
        text += f" [{stats['ci_low']:.3f}, {stats['ci_high']:.3f}]"
    undefined = int(stats.get("undefined", 0))
    if undefined:
        text += f" ({undefined} of {undefined + int(stats.get('n', 0))} folds undefined)"
    return text

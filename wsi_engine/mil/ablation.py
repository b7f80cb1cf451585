"""Paired comparison of fit runs on the same splits and seeds (``fit --fusion sot,none,...``).

Every run's fold rows are keyed by (shots, seed, fold); a mode's difference to the reference mode
is taken unit by unit (same training slides, same test slides, same seed), and summarised per
shots and metric as the mean difference with a 95 % Student-t interval over the units.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: Test metrics compared (fold-row names; ``test_`` prefixed names are read too).
ABLATION_METRICS = ("balanced_accuracy", "auc")


def _metric(row: dict[str, Any], name: str) -> float:
    return float(row.get(f"test_{name}", row.get(name, math.nan)))


def t_interval(values: np.ndarray) -> tuple[float, float]:
    """(mean, half-width of the 95 % t-interval); NaN half-width below two values."""
    from scipy import stats

    values = values[~np.isnan(values)]
    if len(values) == 0:
        return math.nan, math.nan
    if len(values) == 1:
        return float(values[0]), math.nan
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return float(values.mean()), float(half)


def paired_differences(
    rows_by_mode: dict[str, list[dict[str, Any]]], reference: str
) -> list[dict[str, Any]]:
    """Per (shots, mode ≠ reference, metric): mean, CI half-width and count of paired differences."""

    def keyed(rows):
        return {(r["shots"], int(r.get("seed", 0)), r["fold"]): r for r in rows}

    base = keyed(rows_by_mode[reference])
    out = []
    for shots in sorted({k[0] for k in base}):
        for mode, rows in rows_by_mode.items():
            if mode == reference:
                continue
            other = keyed(rows)
            units = sorted(k for k in base if k[0] == shots and k in other)
            for metric in ABLATION_METRICS:
                diff = np.array(
                    [_metric(other[k], metric) - _metric(base[k], metric) for k in units]
                )
                mean, half = t_interval(diff)
                out.append(
                    {
                        "shots": shots,
                        "mode": mode,
                        "reference": reference,
                        "metric": metric,
                        "mean_difference": mean,
                        "ci95_half_width": half,
                        "units": int(np.sum(~np.isnan(diff))),
                    }
                )
    return out

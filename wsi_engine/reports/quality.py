"""How good a pairing is: score distribution, reports used, most and least similar pairs, class agreement.

All figures are about the best (top-1) report of each item unless named
otherwise. Scores are cosine similarities in the encoder's joint space.
Class agreement (only when both the items and the corpus reports carry class
labels, e.g. a labelled image folder and a corpus with ``--label-column``) is
the share of items whose top-1 report has the item's class; its chance level
is Σ_c p_items(c) · p_reports(c), what a report drawn at random would give.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wsi_engine.reports.corpus import ReportCorpus
from wsi_engine.reports.pairing import Pairs
from wsi_engine.training.rundir import write_json, write_rows

EXCERPT = 80


@dataclass(frozen=True)
class PairRow:
    """One item's top-1 pair for the tables."""

    item: str
    report_id: str
    score: float
    excerpt: str


@dataclass
class PairingQuality:
    """Summary of a pairing (module docstring); ``histogram`` = (bin edges, counts) of top-1 scores."""

    n_items: int
    k: int
    n_reports: int
    score_stats: dict[str, float]
    histogram: tuple[list[float], list[int]]
    distinct_top1: int
    distinct_topk: int
    most_similar: list[PairRow]
    least_similar: list[PairRow]
    class_agreement: float | None = None
    chance_agreement: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _row(pairs: Pairs, corpus: ReportCorpus, i: int) -> PairRow:
    report = corpus.reports[int(pairs.indices[i, 0])]
    text = report.text if len(report.text) <= EXCERPT else report.text[: EXCERPT - 1] + "…"
    return PairRow(pairs.item_ids[i], report.report_id, float(pairs.scores[i, 0]), text)


def agreement(
    pairs: Pairs, corpus: ReportCorpus, item_labels: list[str | None]
) -> tuple[float, float] | None:
    """(top-1 class agreement, chance level) over the items and reports that carry labels; None without."""
    report_labels = corpus.labels()
    rows = [
        i
        for i, label in enumerate(item_labels)
        if label is not None and report_labels[int(pairs.indices[i, 0])] is not None
    ]
    labelled_reports = [r for r in report_labels if r is not None]
    if not rows or not labelled_reports:
        return None
    hits = [item_labels[i] == report_labels[int(pairs.indices[i, 0])] for i in rows]
    items = [item_labels[i] for i in rows]
    chance = sum(
        items.count(c) / len(items) * labelled_reports.count(c) / len(labelled_reports)
        for c in set(items)
    )
    return float(np.mean(hits)), float(chance)


def pairing_quality(
    pairs: Pairs,
    corpus: ReportCorpus,
    item_labels: list[str | None] | None = None,
    n_rows: int = 5,
    bins: int = 10,
) -> PairingQuality:
    """The summary of ``pairs`` against ``corpus`` (module docstring)."""
    top1 = pairs.scores[:, 0].astype(np.float64)
    stats = {
        "mean": float(top1.mean()),
        "min": float(top1.min()),
        "q25": float(np.quantile(top1, 0.25)),
        "median": float(np.median(top1)),
        "q75": float(np.quantile(top1, 0.75)),
        "max": float(top1.max()),
    }
    if pairs.k > 1:
        stats["mean_top1_minus_topk"] = float((pairs.scores[:, 0] - pairs.scores[:, -1]).mean())
    counts, edges = np.histogram(top1, bins=bins)
    order = np.argsort(-top1, kind="stable")
    agree = agreement(pairs, corpus, item_labels) if item_labels is not None else None
    return PairingQuality(
        n_items=len(pairs.item_ids),
        k=pairs.k,
        n_reports=len(corpus.reports),
        score_stats=stats,
        histogram=([float(e) for e in edges], [int(c) for c in counts]),
        distinct_top1=len(np.unique(pairs.indices[:, 0])),
        distinct_topk=len(np.unique(pairs.indices)),
        most_similar=[_row(pairs, corpus, int(i)) for i in order[:n_rows]],
        least_similar=[_row(pairs, corpus, int(i)) for i in order[::-1][:n_rows]],
        class_agreement=None if agree is None else agree[0],
        chance_agreement=None if agree is None else agree[1],
    )


def write_pairing(
    folder: Path, pairs: Pairs, corpus: ReportCorpus, quality: PairingQuality
) -> None:
    """``pairs.csv`` (item, rank, report_id, score) and ``pairing_quality.json`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [
        {
            "item": item,
            "rank": rank + 1,
            "report_index": int(pairs.indices[i, rank]),
            "report_id": corpus.reports[int(pairs.indices[i, rank])].report_id,
            "score": f"{pairs.scores[i, rank]:.6f}",
        }
        for i, item in enumerate(pairs.item_ids)
        for rank in range(pairs.k)
    ]
    write_rows(folder / "pairs.csv", rows, ("item", "rank", "report_index", "report_id", "score"))
    write_json(folder / "pairing_quality.json", {"corpus": corpus.corpus_id, **quality.to_json()})

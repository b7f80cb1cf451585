"""``fit --privileged-text CORPUS``: each training slide's paired report as an auxiliary target of the bag head.

The cohort's features must be in the corpus's joint space
(:func:`~wsi_engine.reports.pairing.check_compatible`). Only slides that are
in some split's training part are paired (mean-pooled joint features,
:mod:`wsi_engine.reports.slides`); validation and test slides never see a
report. For every (shots, fold) a fresh :class:`~wsi_engine.reports.distill.BagDistiller`
with that fold's training slides adds λ · (1 − cos(h_t, W b)) to each
training bag's loss (b = the head's ``bag_embedding``; Libra-MIL and ABMIL).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wsi_engine.errors import ConfigError, DataError
from wsi_engine.reports.corpus import ReportCorpus
from wsi_engine.reports.distill import BagDistiller
from wsi_engine.reports.pairing import Pairs, check_compatible, pair
from wsi_engine.reports.quality import PairingQuality, pairing_quality
from wsi_engine.reports.slides import pooled_embedding

BAG_MODELS = ("libra", "abmil")


@dataclass
class SlideTextTargets:
    """Paired report embedding h_t of every training slide, the pairs and their quality."""

    corpus: ReportCorpus
    targets: dict[str, np.ndarray]
    pairs: Pairs
    quality: PairingQuality
    weight: float

    def distiller(self, bag_dim: int, train_ids: list[str]) -> BagDistiller:
        """A new distiller for one fold: only ``train_ids`` have targets."""
        return BagDistiller(bag_dim, {s: self.targets[s] for s in train_ids}, self.weight)


def slide_text_targets(
    corpus_path: str | Path,
    model: str,
    task: str,
    feature_attrs: dict,
    feature_dim: int,
    slide_ids: list[str],
    read_bag: Callable[[str], np.ndarray],
    labels: dict[str, str],
    weight: float,
) -> SlideTextTargets:
    """Pair the training slides ``slide_ids`` (features (N, D) from ``read_bag``) with the corpus's reports."""
    if model not in BAG_MODELS:
        raise ConfigError(
            f"--privileged-text applies to --model {' or '.join(BAG_MODELS)} (a bag representation to distil into), not '{model}'"
        )
    corpus = ReportCorpus.load(Path(corpus_path))
    check_compatible(corpus, feature_attrs, feature_dim, f"--privileged-text {corpus_path}")
    if corpus.meta.get("task") not in (None, task):
        raise DataError(
            f"the report corpus was imported for task '{corpus.meta['task']}', this run is task '{task}'",
            path=corpus_path,
            hint=f"re-import it with --task {task}",
        )
    ids = sorted(slide_ids)
    pairs = pair(np.stack([pooled_embedding(read_bag(s)) for s in ids]), corpus, ids, 1)
    quality = pairing_quality(pairs, corpus, [labels.get(s) for s in ids])
    targets = dict(zip(ids, pairs.top1(corpus), strict=True))
    return SlideTextTargets(corpus, targets, pairs, quality, weight)

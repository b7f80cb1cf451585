"""Patch-level AUC against ground truth: (a) the bag model's attention, (b) the patch classifier.

For a class c of interest (e.g. ``tumor``) and per patch a ground-truth value
(the fraction of the patch inside annotated lesions,
:func:`wsi_engine.tissue.patch_truth_fraction`), a patch is positive
when its truth is ≥ ``threshold`` (0.5). Scores:

(a) bag attention: N · A_jc, the class-c attention relative to the bag
    average (columns of A sum to 1 over each slide's N patches, so raw
    values of slides of different sizes are not comparable; the scaling
    makes 1 mean "average" on every slide);
(b) patch classifier: P_jc, its probability of class c.

Both are reported pooled over all patches of all slides (one ROC) and as the
mean of per-slide AUCs over slides holding both positive and negative patches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from wsi_engine.errors import DataError
from wsi_engine.store import PatchStore


@dataclass(frozen=True)
class SlidePatchScores:
    """One slide: ``truth`` (N,) lesion fraction (or 0/1), ``attention`` (N, C) bag attention, ``probs`` (N, C)."""

    slide_id: str
    truth: np.ndarray
    attention: np.ndarray
    probs: np.ndarray


@dataclass(frozen=True)
class PatchAucReport:
    """Pooled and mean per-slide AUCs of (a) bag attention and (b) patch-classifier probabilities."""

    bag_attention: float
    patch_classifier: float
    bag_attention_per_slide: float
    patch_classifier_per_slide: float
    n_slides: int
    n_patches: int
    n_positive: int

    @property
    def not_worse(self) -> bool:
        """True when the pooled patch-classifier AUC is at least the bag attention's."""
        return self.patch_classifier >= self.bag_attention


def attention_evidence(attention: np.ndarray, class_index: int) -> np.ndarray:
    """(N,) N · A[:, c]: class-c attention relative to the bag average."""
    attention = np.asarray(attention, dtype=np.float64)
    return len(attention) * attention[:, class_index]


def patch_auc(truth: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> float:
    """ROC AUC of ``scores`` (N,) for the positives ``truth >= threshold``; NaN when one side is empty."""
    positive = np.asarray(truth, dtype=np.float64) >= threshold
    if positive.all() or not positive.any():
        return float("nan")
    return float(roc_auc_score(positive, np.asarray(scores, dtype=np.float64)))


def _mean(values: list[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return float(np.mean(kept)) if kept else float("nan")


def compare_patch_auc(
    slides: list[SlidePatchScores], class_index: int, threshold: float = 0.5
) -> PatchAucReport:
    """AUCs of bag attention and patch probabilities for class ``class_index`` against the slides' truth."""
    if not slides:
        raise ValueError("no slides to evaluate")
    truth = np.concatenate([s.truth for s in slides])
    attention = [attention_evidence(s.attention, class_index) for s in slides]
    probs = [np.asarray(s.probs, dtype=np.float64)[:, class_index] for s in slides]
    return PatchAucReport(
        bag_attention=patch_auc(truth, np.concatenate(attention), threshold),
        patch_classifier=patch_auc(truth, np.concatenate(probs), threshold),
        bag_attention_per_slide=_mean(
            [patch_auc(s.truth, a, threshold) for s, a in zip(slides, attention, strict=True)]
        ),
        patch_classifier_per_slide=_mean(
            [patch_auc(s.truth, p, threshold) for s, p in zip(slides, probs, strict=True)]
        ),
        n_slides=len(slides),
        n_patches=int(len(truth)),
        n_positive=int((truth >= threshold).sum()),
    )


def slide_scores_from_store(
    store_path: str | Path, bag_score_id: str, patch_score_id: str, truth_geojson: str | Path
) -> SlidePatchScores:
    """A slide's truth (from ``truth_geojson``), bag ``attention`` and patch ``probs`` read from its store."""
    from wsi_engine.tissue import patch_truth_fraction

    store = PatchStore.open(store_path)
    bag, bag_attrs = store.read_scores(bag_score_id)
    patch, patch_attrs = store.read_scores(patch_score_id)
    if "attention" not in bag or "probs" not in patch:
        raise DataError(
            f"scores '{bag_score_id}' need 'attention' and '{patch_score_id}' need 'probs'",
            path=store_path,
            hint="give the score id written by `predict` first, then the one written by `predict-patches`",
        )
    if list(bag_attrs.get("class_names", [])) != list(patch_attrs.get("class_names", [])):
        raise DataError("the bag and patch scores use different class orders", path=store_path)
    truth = patch_truth_fraction(store.coords(), store.patch_size_level0, truth_geojson)
    return SlidePatchScores(store.slide_id, truth, bag["attention"], patch["probs"])

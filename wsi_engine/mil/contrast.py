"""Diagnostic and background prototypes from bag labels, for Libra-MIL's ``contrast`` fusion.

Tissue that every class shares (stroma, normal parenchyma, background) looks alike in the slides
of every class; tissue specific to class c does not. Two pieces of evidence say how specific a patch
j of a class-c training slide is:

* r_j = max_{i: class(i) ≠ c} cos(x_j, x_i), its nearest other-class similarity: low when no
  patch of another class resembles it (works when diagnostic tissue forms its own region of the
  feature space, as on our real-feature benchmark);
* p_j, the probability of class c from an L2-regularised logistic regression of the patches on
  their slide's label (the slide label as a noisy patch label): high when a linear direction
  separates it from the other classes' patches (works when the difference is a shift along a
  direction, which nearest neighbours miss in noisy features).

Each patch's candidacy is the mean of its two ranks within its class (rank of −r_j and of p_j).
A class's candidates are its patches with p_j ≥ ``min_probability`` (clearly class-specific), at
most the ``quantile`` fraction (at least ``per_class``) of its patches, by candidacy. A class with
fewer than ``per_class`` such patches (a class defined by the absence of something, as "normal"
often is, or features that do not separate) gets no diagnostic prototypes: its slots become
background prototypes, and with none at all the fusion leaves the weights uniform. The
diagnostic prototypes are ``per_class`` k-means centres of each such class's candidates; the
background prototypes are k-means centres of all the other patches. Only slide labels are used
(the weak labels of multiple-instance learning), never patch labels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from pydantic import Field

from wsi_engine.config.loader import StrictModel
from wsi_engine.errors import DataError
from wsi_engine.mil.base import InstanceSample

_BLOCK = 2048  # rows of the similarity matrix held at once


class ContrastConfig(StrictModel):
    """Settings of Libra-MIL's contrast fusion (``--set contrast.<name>=...``)."""

    per_class: int = Field(4, ge=1, description="diagnostic visual prototypes per class")
    background: int = Field(8, ge=1, description="background visual prototypes")
    quantile: float = Field(
        0.05,
        gt=0,
        lt=1,
        description="largest fraction of a class's training patches taken as its candidates",
    )
    min_probability: float = Field(
        0.9,
        gt=0,
        lt=1,
        description="least slide-label logistic-regression probability of a candidate's class",
    )
    background_mass: float = Field(
        0.5, gt=0, lt=1, description="share of a bag's mass the plan sends to background prototypes"
    )


@dataclass(frozen=True)
class ContrastPrototypes:
    """``centres`` (C·per_class + background, D) float32: the first ``n_diagnostic`` are the
    diagnostic prototypes (class by class, ``per_class`` for each class that has candidates), the
    rest background; ``candidates`` (M,) bool, the sample's patches chosen as diagnostic."""

    centres: np.ndarray
    n_diagnostic: int
    candidates: np.ndarray


def nearest_other_class_similarity(features: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(M,) largest cosine similarity of each patch to a patch of another class (−1 when none)."""
    unit = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    unit = unit.astype(np.float32)
    out = np.full(len(unit), -1.0, dtype=np.float32)
    for start in range(0, len(unit), _BLOCK):
        rows = slice(start, start + _BLOCK)
        sim = unit[rows] @ unit.T
        sim[targets[rows, None] == targets[None, :]] = -1.0
        out[rows] = sim.max(1)
    return out


def class_specificity(features: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(candidacy (M,), p (M,)): each patch's mean rank within its slide's class by dissimilarity
    to the other classes (−r) and by the logistic regression's probability p of that class."""
    from scipy.stats import rankdata
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    dissimilarity = -nearest_other_class_similarity(features, targets)
    classifier = make_pipeline(StandardScaler(), LogisticRegression(C=0.01, max_iter=2000))
    probability = classifier.fit(features, targets).predict_proba(features)
    column = np.searchsorted(classifier.classes_, targets)
    own = probability[np.arange(len(targets)), column]
    candidacy = np.zeros(len(targets))
    for c in np.unique(targets):
        members = targets == c
        candidacy[members] = (rankdata(dissimilarity[members]) + rankdata(own[members])) / 2
    return candidacy, own


def contrast_prototypes(
    sample: InstanceSample, n_classes: int, config: ContrastConfig, seed: int
) -> ContrastPrototypes:
    """Diagnostic (``config.per_class`` per class) and background prototypes of a labelled sample."""
    from sklearn.cluster import KMeans

    per_class, background = config.per_class, config.background
    counts = np.bincount(sample.targets, minlength=n_classes)
    if (counts < per_class).any():
        raise DataError(
            f"the contrast fusion needs training patches of every class (at least {per_class} each) "
            f"to find diagnostic prototypes; got {counts.tolist()} per class",
            hint="label at least one slide of every class, or use --fusion none",
        )
    candidacy, probability = class_specificity(sample.features, sample.targets)
    candidates = np.zeros(len(candidacy), dtype=bool)
    classes = []
    for c in range(n_classes):
        members = np.flatnonzero((sample.targets == c) & (probability >= config.min_probability))
        if len(members) < per_class:
            continue
        take = max(per_class, math.ceil(config.quantile * int((sample.targets == c).sum())))
        candidates[members[np.argsort(-candidacy[members], kind="stable")[:take]]] = True
        classes.append(c)
    n_background = background + per_class * (n_classes - len(classes))
    rest = np.flatnonzero(~candidates)
    if len(rest) < n_background:
        raise DataError(
            f"the contrast fusion needs at least {n_background} background training patches, "
            f"got {len(rest)}",
            hint="lower --set contrast.background, or label more slides",
        )

    def centres(rows: np.ndarray, k: int) -> np.ndarray:
        kmeans = KMeans(n_clusters=k, n_init=3, random_state=seed % 2**31)
        return kmeans.fit(sample.features[rows]).cluster_centers_

    diagnostic = [
        centres(np.flatnonzero(candidates & (sample.targets == c)), per_class) for c in classes
    ]
    prototypes = np.concatenate([*diagnostic, centres(rest, n_background)]).astype(np.float32)
    return ContrastPrototypes(prototypes, per_class * len(classes), candidates)

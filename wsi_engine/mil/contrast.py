"""Diagnostic and background prototypes from bag labels, for Libra-MIL's ``contrast`` fusion.

A patch of a class-c training slide that has no close counterpart among the patches of the other
classes' training slides is a candidate diagnostic patch: tissue that every class shares (stroma,
normal parenchyma, background) has near-duplicates across classes, tissue specific to class c has
none. Per patch j of class c,

    r_j = max_{i: class(i) ≠ c} cos(x_j, x_i)           (nearest other-class similarity)

and the ``quantile`` fraction of each class's patches with the lowest r_j (at least ``per_class``
patches) are that class's candidates. The diagnostic prototypes are ``per_class`` k-means centres of
each class's candidates; the background prototypes are ``background`` k-means centres of all the other
patches. Only slide labels are used (the weak labels of multiple-instance learning), never patch labels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from wsi_engine.errors import DataError
from wsi_engine.mil.base import InstanceSample

_BLOCK = 2048  # rows of the similarity matrix held at once


@dataclass(frozen=True)
class ContrastPrototypes:
    """``centres`` (C·per_class + background, D) float32: the diagnostic prototypes, class by class,
    then the background ones; ``candidates`` (M,) bool, the sample's patches chosen as diagnostic."""

    centres: np.ndarray
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


def contrast_prototypes(
    sample: InstanceSample,
    n_classes: int,
    per_class: int,
    background: int,
    quantile: float,
    seed: int,
) -> ContrastPrototypes:
    """Diagnostic (``per_class`` per class) and ``background`` prototypes of a labelled sample."""
    from sklearn.cluster import KMeans

    counts = np.bincount(sample.targets, minlength=n_classes)
    if (counts < per_class).any():
        raise DataError(
            f"the contrast fusion needs training patches of every class (at least {per_class} each) "
            f"to find diagnostic prototypes; got {counts.tolist()} per class",
            hint="label at least one slide of every class, or use --fusion none",
        )
    similarity = nearest_other_class_similarity(sample.features, sample.targets)
    candidates = np.zeros(len(similarity), dtype=bool)
    for c in range(n_classes):
        members = np.flatnonzero(sample.targets == c)
        take = max(per_class, math.ceil(quantile * len(members)))
        candidates[members[np.argsort(similarity[members], kind="stable")[:take]]] = True
    rest = np.flatnonzero(~candidates)
    if len(rest) < background:
        raise DataError(
            f"the contrast fusion needs at least {background} background training patches, "
            f"got {len(rest)}",
            hint="lower --set background_prototypes, or label more slides",
        )

    def centres(rows: np.ndarray, k: int) -> np.ndarray:
        kmeans = KMeans(n_clusters=k, n_init=3, random_state=seed % 2**31)
        return kmeans.fit(sample.features[rows]).cluster_centers_

    diagnostic = [
        centres(np.flatnonzero(candidates & (sample.targets == c)), per_class)
        for c in range(n_classes)
    ]
    prototypes = np.concatenate([*diagnostic, centres(rest, background)]).astype(np.float32)
    return ContrastPrototypes(prototypes, candidates)

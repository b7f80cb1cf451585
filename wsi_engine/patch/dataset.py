"""The training set of a patch classifier, whatever its source, and its split by slide (or image).

Rows are patches. Each belongs to a *group* (its slide; for image folders,
each image is its own group): the validation split is made by group, so no
slide contributes patches to both sides.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wsi_engine.patch.targets import UNLABELLED


@dataclass
class PatchSet:
    """M patches of G groups, C classes.

    ``features`` (M, D) float32; ``hard`` (M,) int64 class or −1; ``soft``
    (M, C) float32 teacher distributions or None; ``group`` (M,) int64 group
    index; ``group_names`` (G,) slide ids or image paths; ``group_labels`` (G,)
    int64 label of each group; ``views`` (M, D) float32 features of the same
    location at a second resolution (NaN rows where there is none) or None.
    """

    features: np.ndarray
    hard: np.ndarray
    soft: np.ndarray | None
    group: np.ndarray
    group_names: list[str]
    group_labels: np.ndarray
    views: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.features)

    def subset(self, rows: np.ndarray) -> PatchSet:
        """The patches ``rows`` (indices or bool mask), groups kept."""
        soft = None if self.soft is None else self.soft[rows]
        views = None if self.views is None else self.views[rows]
        return PatchSet(
            self.features[rows],
            self.hard[rows],
            soft,
            self.group[rows],
            self.group_names,
            self.group_labels,
            views,
        )

    def labelled(self) -> np.ndarray:
        """(M,) bool: patches with a hard target."""
        return self.hard != UNLABELLED

    def counts(self, n_classes: int) -> np.ndarray:
        """(C,) hard targets per class."""
        return np.bincount(self.hard[self.labelled()], minlength=n_classes)


def split_groups(group_labels: np.ndarray, val_fraction: float, seed: int) -> np.ndarray:
    """(G,) bool validation mask: per label, round(val_fraction · n) groups, at least one when n ≥ 2, seeded."""
    rng = np.random.default_rng(seed)
    val = np.zeros(len(group_labels), dtype=bool)
    if val_fraction <= 0:
        return val
    for label in np.unique(group_labels):
        members = np.flatnonzero(group_labels == label)
        if len(members) < 2:
            continue
        take = min(len(members) - 1, max(1, round(val_fraction * len(members))))
        val[rng.choice(members, size=take, replace=False)] = True
    return val


def split_patch_set(patches: PatchSet, val_fraction: float, seed: int) -> tuple[PatchSet, PatchSet]:
    """(training, validation) patches by group (:func:`split_groups`)."""
    val_groups = split_groups(patches.group_labels, val_fraction, seed)
    in_val = val_groups[patches.group]
    return patches.subset(~in_val), patches.subset(in_val)


def split_three_ways(
    patches: PatchSet, roles: list[str] | None, fraction: float, seed: int
) -> tuple[PatchSet, PatchSet, PatchSet]:
    """(training, validation, test) patches by group: by ``roles`` (G,) ``train``/``val``/``test``
    when given, else at random (:func:`split_groups`): test groups first, then validation
    groups among the rest, ``fraction`` each."""
    if roles is not None:
        role = np.asarray(roles)[patches.group]
        return tuple(patches.subset(role == r) for r in ("train", "val", "test"))
    test_groups = split_groups(patches.group_labels, fraction, seed)
    rest = np.flatnonzero(~test_groups)
    val_groups = np.zeros_like(test_groups)
    val_groups[rest[split_groups(patches.group_labels[rest], fraction, seed + 1)]] = True
    in_test, in_val = test_groups[patches.group], val_groups[patches.group]
    return (
        patches.subset(~in_test & ~in_val),
        patches.subset(in_val),
        patches.subset(in_test),
    )

"""With versus without privileged text, on the same splits and seeds: paired differences with confidence intervals.

Per seed s:

1. the groups (images or slides) are split, per class, into a *test* part
   (``test_fraction``, seeded by s) that neither arm trains or selects on, and
   the rest, from which ``train_per_class`` groups per class are drawn (all
   when None); these are split again into training and validation groups
   (``val_fraction`` of fit-patches, seed s) for the epoch selection;
2. the patch head is built and trained image-only (``train_head``); then
   *without*: it is trained image-only once more (same settings, so both arms
   get the same training budget), and *with*: CLIP-IT's stages run on top of
   it (:func:`~wsi_engine.patch.privileged.distill_patch_head`), so both arms
   share the initialisation, the data and the first stage;
4. both are evaluated on the test patches (metrics of :mod:`wsi_engine.mil.metrics`).

Per seed, the difference (with − without) gets a 95 % paired bootstrap
interval over the test patches (both arms resampled together, stratified
by class, ``n_boot`` resamples, percentile interval). Over seeds, the mean difference
gets a 95 % Student-t interval (n − 1 degrees of freedom); with a single seed
that interval is undefined (NaN).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np

from wsi_engine.mil.metrics import classification_metrics
from wsi_engine.mil.seeds import fast_metrics
from wsi_engine.patch.dataset import PatchSet, split_groups, split_patch_set
from wsi_engine.patch.head import HeadConfig, build_head
from wsi_engine.patch.privileged import distill_patch_head
from wsi_engine.patch.train import PatchTrainConfig, predict_probs, train_head
from wsi_engine.prompts import TaskEmbeddings
from wsi_engine.reports.corpus import ReportCorpus
from wsi_engine.reports.settings import PrivilegedTextConfig

ABLATION_METRICS = ("balanced_accuracy", "auc", "macro_f1", "accuracy")


@dataclass
class SeedOutcome:
    """Test metrics of both arms for one seed, the paired differences and their bootstrap intervals."""

    seed: int
    n_train: int
    n_test: int
    without: dict[str, float]
    with_text: dict[str, float]
    difference: dict[str, float]
    interval: dict[str, tuple[float, float]]
    class_agreement: float | None = None
    chance_agreement: float | None = None


@dataclass
class AblationResult:
    """Per-seed outcomes and, per metric, the mean difference over seeds with its t interval."""

    seeds: list[SeedOutcome]
    mean_difference: dict[str, float] = field(default_factory=dict)
    interval: dict[str, tuple[float, float]] = field(default_factory=dict)
    evaluated_on: str = "held-out test patches (never trained or selected on)"


def paired_bootstrap(
    targets: np.ndarray,
    probs_a: np.ndarray,
    probs_b: np.ndarray,
    metrics: tuple[str, ...],
    n_boot: int,
    seed: int,
) -> dict[str, tuple[float, float]]:
    """Per metric, the 95 % percentile interval of metric(a) − metric(b) over resamples of the same test rows.

    Resamples are stratified by class (every class keeps its count), as in
    :func:`wsi_engine.mil.seeds.bootstrap_ci`, whose numpy metrics they use.
    """
    rng = np.random.default_rng(seed)
    by_class = [np.flatnonzero(targets == c) for c in np.unique(targets)]
    values: dict[str, list[float]] = {m: [] for m in metrics}
    for _ in range(n_boot):
        rows = np.concatenate([rng.choice(members, len(members)) for members in by_class])
        a = fast_metrics(targets[rows], probs_a[rows])
        b = fast_metrics(targets[rows], probs_b[rows])
        for m in metrics:
            if not (math.isnan(a[m]) or math.isnan(b[m])):
                values[m].append(a[m] - b[m])
    return {
        m: (float(np.quantile(v, 0.025)), float(np.quantile(v, 0.975)))
        if v
        else (float("nan"), float("nan"))
        for m, v in values.items()
    }


def t_interval(values: list[float]) -> tuple[float, float]:
    """95 % Student-t interval of the mean of ``values`` (NaN for fewer than two)."""
    from scipy import stats

    x = np.array([v for v in values if not math.isnan(v)], dtype=float)
    if len(x) < 2:
        return float("nan"), float("nan")
    half = stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return float(x.mean() - half), float(x.mean() + half)


def _subsample(patches: PatchSet, per_class: int | None, seed: int) -> PatchSet:
    """The patches of ``per_class`` groups per class (all groups when None), seeded."""
    if per_class is None:
        return patches
    rng = np.random.default_rng([seed, 7])
    present = np.unique(patches.group)
    keep = []
    for label in np.unique(patches.group_labels[present]):
        members = present[patches.group_labels[present] == label]
        keep.extend(rng.choice(members, size=min(per_class, len(members)), replace=False))
    return patches.subset(np.isin(patches.group, keep))


def ablate(
    patches: PatchSet,
    class_names: list[str],
    corpus: ReportCorpus,
    seeds: list[int],
    *,
    head: HeadConfig,
    train: PatchTrainConfig,
    privileged: PrivilegedTextConfig,
    text: TaskEmbeddings | None = None,
    train_per_class: int | None = None,
    test_fraction: float = 0.3,
    n_boot: int = 300,
) -> AblationResult:
    """Run both arms for every seed (module docstring)."""
    n_classes = len(class_names)
    outcomes = []
    for seed in seeds:
        test_groups = split_groups(patches.group_labels, test_fraction, seed + 1_000_003)
        in_test = test_groups[patches.group]
        test = patches.subset(in_test)
        pool = _subsample(patches.subset(~in_test), train_per_class, seed)
        fit_part, val = split_patch_set(pool, train.val_fraction, seed)
        baseline = build_head(head, patches.features.shape[1], n_classes, text, seed)
        train_head(baseline, fit_part, val, n_classes, train, seed)
        without_head = copy.deepcopy(baseline)
        train_head(without_head, fit_part, val, n_classes, train, seed)
        probs_without = predict_probs(without_head, test.features)
        clip = distill_patch_head(
            baseline, fit_part, val, n_classes, class_names, corpus, train, privileged, seed
        )
        probs_with = predict_probs(clip.model, test.features)
        targets = test.hard
        without = classification_metrics(targets, probs_without)
        with_text = classification_metrics(targets, probs_with)
        outcomes.append(
            SeedOutcome(
                seed=seed,
                n_train=len(fit_part),
                n_test=len(test),
                without=without,
                with_text=with_text,
                difference={m: with_text[m] - without[m] for m in ABLATION_METRICS},
                interval=paired_bootstrap(
                    targets, probs_with, probs_without, ABLATION_METRICS, n_boot, seed
                ),
                class_agreement=clip.quality.class_agreement,
                chance_agreement=clip.quality.chance_agreement,
            )
        )
    result = AblationResult(outcomes)
    for metric in ABLATION_METRICS:
        values = [o.difference[metric] for o in outcomes]
        result.mean_difference[metric] = float(np.nanmean(values))
        result.interval[metric] = t_interval(values)
    return result

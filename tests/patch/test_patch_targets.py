"""Confidence rules that turn bag evidence into patch targets."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from wsi_engine.errors import ConfigError
from wsi_engine.patch.targets import SlideEvidence, TargetConfig, resolve_background, slide_targets


def evidence(
    attention_column: np.ndarray, n_classes: int = 2, label: int = 1, prob: float = 0.9
) -> SlideEvidence:
    """Evidence whose class-``label`` attention is ``attention_column`` (normalised) and other columns uniform."""
    n = len(attention_column)
    attention = np.full((n, n_classes), 1.0 / n)
    attention[:, label] = attention_column / attention_column.sum()
    probs = np.full(n_classes, (1 - prob) / (n_classes - 1))
    probs[label] = prob
    return SlideEvidence(attention, None, probs)


def rules(**values) -> TargetConfig:
    """Target rules ranking by the label's attention (``auto`` is resolved per bag run, not here)."""
    return TargetConfig(**{"evidence": "attention", **values})


def test_background_slide_is_all_background_and_one_hot():
    targets = slide_targets(evidence(np.arange(1.0, 11.0), label=0), 0, 0, rules())
    assert (targets.hard == 0).all()
    np.testing.assert_allclose(targets.soft, np.tile([1.0, 0.0], (10, 1)))


def test_lesion_slide_top_quantile_positive_bottom_background_rest_unlabelled():
    column = np.arange(1.0, 11.0)  # patch 9 has the most attention
    targets = slide_targets(
        evidence(column), 1, 0, rules(positive_quantile=0.2, negative_quantile=0.3)
    )
    assert targets.hard.tolist() == [0, 0, 0, -1, -1, -1, -1, -1, 1, 1]
    # soft targets: the label's attention against the bag average, r / (1 + r) with r = N·A
    relative = 10 * column / column.sum()
    np.testing.assert_allclose(targets.soft[:, 1], relative / (1 + relative), rtol=1e-5)
    np.testing.assert_allclose(targets.soft.sum(1), 1.0, rtol=1e-6)


def test_subtyping_task_without_background_leaves_bottom_unlabelled_and_soft_over_classes():
    ev = evidence(np.arange(1.0, 11.0), n_classes=3, label=2)
    targets = slide_targets(ev, 2, None, rules())
    assert (targets.hard[-2:] == 2).all() and (targets.hard[:-2] == -1).all()
    expected = ev.attention / ev.attention.sum(1, keepdims=True)  # q ∝ A over every class (T = 1)
    np.testing.assert_allclose(targets.soft, expected, rtol=1e-5)


def test_positives_need_above_average_evidence_and_a_confident_bag():
    uniform = evidence(np.ones(10))
    assert (slide_targets(uniform, 1, 0, rules(min_relative_evidence=1.5)).hard != 1).all()
    peaked = evidence(np.arange(1.0, 11.0), prob=0.3)
    hard = slide_targets(peaked, 1, 0, rules(min_slide_prob=0.5)).hard
    assert (hard != 1).all() and (hard == 0).sum() == 2  # negatives still taken


def test_instance_score_evidence_ranks_by_the_score():
    ev = SlideEvidence(
        np.full((5, 2), 0.2), np.array([0.0, 5.0, 1.0, 2.0, 3.0]), np.array([0.1, 0.9])
    )
    hard = slide_targets(
        ev, 1, 0, TargetConfig(evidence="instance_score", negative_quantile=0.2)
    ).hard
    assert hard.tolist() == [0, 1, -1, -1, -1]
    with pytest.raises(ConfigError, match="instance_score"):
        slide_targets(evidence(np.ones(5)), 1, 0, TargetConfig(evidence="instance_score"))


def test_auto_evidence_must_be_resolved_before_targets_are_made():
    assert TargetConfig().evidence == "auto"
    with pytest.raises(ValueError, match="not resolved"):
        slide_targets(evidence(np.ones(5)), 1, 0, TargetConfig())


def test_background_class_resolution():
    assert resolve_background(["normal", "tumor"], "auto") == 0
    assert resolve_background(["LUAD", "LUSC"], "auto") is None
    assert resolve_background(["normal", "tumor"], "none") is None
    assert resolve_background(["a", "b"], "b") == 1
    with pytest.raises(ConfigError, match="not a task class"):
        resolve_background(["a", "b"], "c")
    with pytest.raises(ValidationError):
        TargetConfig(positive_quantile=0.7, negative_quantile=0.5)

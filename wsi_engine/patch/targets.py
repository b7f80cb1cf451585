"""Patch targets from a bag model's per-patch evidence and the slide label.

For one labelled slide of N patches, C task classes, slide label y and
(optionally) a background class b, the inputs are the bag model's
``attention`` A (N, C) (each column sums to 1 over the bag), its
``instance_score`` s (N,) when it has one, and its slide probabilities π (C,).

Evidence logits ℓ (N,), ranked within the slide:

* ``evidence="attention"``: ℓ_j = log A_jy, the attention of the label's
  class query;
* ``evidence="instance_score"``: ℓ_j = s_j (Libra-MIL's fused transport
  score, ABMIL's largest attention logit): class-agnostic;
* ``evidence="auto"`` (default): the bag run's preferred evidence
  (:attr:`~wsi_engine.mil.base.MILModel.preferred_evidence`), i.e.
  ``instance_score`` for Libra-MIL runs with a fusion and ``attention`` for
  the others; :func:`wsi_engine.patch.evidence.resolve_evidence` resolves it
  before any target is made.

Relative evidence r_j = N · softmax_j(ℓ)_j (= N · A_jy for attention): 1 is
the bag average, so values are comparable across slides of any size.

Hard targets (class index, or −1 = no hard label):

===========================  ===============================================
slide                        rule
===========================  ===============================================
label y = b (background)     every patch → b (a normal slide holds no lesion)
label y ≠ b, b exists        top ⌈q_pos·N⌉ by ℓ with r_j ≥ r_min → y;
                             bottom ⌊q_neg·N⌋ → b; the rest −1
no background class          top ⌈q_pos·N⌉ with r_j ≥ r_min → y; the rest −1
                             ("not LUAD" is not "LUSC": the bottom quantile
                             of a subtype slide is left to distillation)
===========================  ===============================================

Defaults: q_pos = ``positive_quantile`` = 0.2, q_neg = ``negative_quantile``
= 0.2, r_min = ``min_relative_evidence`` = 1 (above-average evidence only).
No positives are taken from a slide whose bag probability of its own label
π_y is below ``min_slide_prob`` (off by default). Positives win when the two
quantiles overlap (tiny slides). The background class is the class named by
``background_class``; ``auto`` picks the one task class whose lower-cased name
is in :data:`BACKGROUND_NAMES`, and none when zero or several are.

Soft targets (distillation, reference §4.1 L2 term): the bag model's
per-patch class distribution q_j, T = ``soft_temperature``:

* background slide: one-hot b (the label says so);
* lesion slide, background class exists: the label's evidence against the
  bag average, q_jy = r_j^(1/T) / (1 + r_j^(1/T)), q_jb = 1 − q_jy (an
  average patch is a coin flip; the same evidence as the hard targets);
* no background class: q_jc ∝ A_jc^(1/T) over all classes, which class
  query looks at patch j the most.

The background class's own attention column is deliberately not used against
the label's: bag models use it inconsistently (ABMIL's background branch also
looks at lesions, Libra-MIL's background query tends to look away from them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from wsi_engine.config.loader import StrictModel
from wsi_engine.errors import ConfigError

BACKGROUND_NAMES = (
    "normal",
    "benign",
    "background",
    "negative",
    "healthy",
    "non-tumour",
    "non-tumor",
    "nontumour",
    "nontumor",
    "non-neoplastic",
)
"""Class names (lower case) that ``background_class: auto`` recognises."""

UNLABELLED = -1


class TargetConfig(StrictModel):
    """Confidence rules that turn bag evidence into patch targets (module docstring)."""

    evidence: Literal["auto", "attention", "instance_score"] = Field(
        "auto", description="per-patch evidence; auto: the bag run's preferred one"
    )
    positive_quantile: float = Field(
        0.2, gt=0, le=1, description="top fraction of a slide's patches labelled with its class"
    )
    negative_quantile: float = Field(
        0.2, ge=0, lt=1, description="bottom fraction of a lesion slide labelled background"
    )
    min_relative_evidence: float = Field(
        1.0, ge=0, description="positives need N·softmax(evidence) ≥ this (1 = bag average)"
    )
    min_slide_prob: float = Field(
        0.0,
        ge=0,
        le=1,
        description="no positives from slides whose bag probability of their label is lower",
    )
    background_class: str = Field(
        "auto", description="'auto', 'none' or the name of the background class"
    )
    soft_temperature: float = Field(1.0, gt=0, description="temperature T of the soft targets")

    @model_validator(mode="after")
    def _quantiles_fit(self) -> TargetConfig:
        if self.positive_quantile + self.negative_quantile > 1:
            raise ValueError("positive_quantile + negative_quantile must not exceed 1")
        return self


@dataclass(frozen=True)
class SlideEvidence:
    """A bag model's view of one slide: ``attention`` (N, C), ``instance_score`` (N,) or None, ``slide_probs`` (C,)."""

    attention: np.ndarray
    instance_score: np.ndarray | None
    slide_probs: np.ndarray


@dataclass(frozen=True)
class SlideTargets:
    """``hard`` (N,) int64 class index or −1; ``soft`` (N, C) float32 rows summing to 1."""

    hard: np.ndarray
    soft: np.ndarray


def resolve_background(class_names: list[str] | tuple[str, ...], option: str) -> int | None:
    """Index of the background class named by ``option`` (``auto``, ``none`` or a class name), or None."""
    if option == "none":
        return None
    if option == "auto":
        found = [i for i, name in enumerate(class_names) if name.lower() in BACKGROUND_NAMES]
        return found[0] if len(found) == 1 else None
    if option not in class_names:
        raise ConfigError(
            f"background class '{option}' is not a task class",
            hint=f"use auto, none or one of {', '.join(class_names)}",
        )
    return list(class_names).index(option)


def evidence_logits(evidence: SlideEvidence, label: int, kind: str) -> np.ndarray:
    """(N,) within-slide evidence logits ℓ of the ``kind`` rule (``attention`` or ``instance_score``)."""
    if kind == "instance_score":
        if evidence.instance_score is None:
            raise ConfigError(
                "evidence 'instance_score' needs a bag model that has one (libra or abmil)",
                hint="use --evidence attention",
            )
        return np.asarray(evidence.instance_score, dtype=np.float64)
    if kind != "attention":
        raise ValueError(f"evidence {kind!r} is not resolved to attention or instance_score")
    return np.log(np.clip(np.asarray(evidence.attention[:, label], dtype=np.float64), 1e-30, None))


def relative_evidence(logits: np.ndarray) -> np.ndarray:
    """(N,) N · softmax(logits): 1 is the bag average."""
    shifted = np.exp(logits - logits.max())
    return len(logits) * shifted / shifted.sum()


def class_distribution(attention: np.ndarray, temperature: float) -> np.ndarray:
    """(N, C) q_jc ∝ A_jc^(1/T)."""
    logits = np.log(np.clip(np.asarray(attention, dtype=np.float64), 1e-30, None)) / temperature
    q = np.exp(logits - logits.max(axis=1, keepdims=True))
    return q / q.sum(axis=1, keepdims=True)


def slide_targets(
    evidence: SlideEvidence, label: int, background: int | None, config: TargetConfig
) -> SlideTargets:
    """Hard and soft targets of one slide of class ``label`` (rules in the module docstring)."""
    n, n_classes = evidence.attention.shape
    hard = np.full(n, UNLABELLED, dtype=np.int64)
    soft = np.zeros((n, n_classes), dtype=np.float32)
    if label == background:
        hard[:] = label
        soft[:, label] = 1.0
        return SlideTargets(hard, soft)
    logits = evidence_logits(evidence, label, config.evidence)
    relative = relative_evidence(logits)
    if background is None:
        soft[:] = class_distribution(evidence.attention, config.soft_temperature)
    else:
        odds = relative ** (1.0 / config.soft_temperature)
        soft[:, label] = odds / (1.0 + odds)
        soft[:, background] = 1.0 - soft[:, label]
    order = np.argsort(-logits, kind="stable")  # strongest evidence first
    n_pos = min(n, math.ceil(config.positive_quantile * n))
    n_neg = min(n - n_pos, math.floor(config.negative_quantile * n))
    if background is not None and n_neg:
        hard[order[n - n_neg :]] = background
    if float(evidence.slide_probs[label]) >= config.min_slide_prob:
        top = order[:n_pos]
        hard[top[relative[top] >= config.min_relative_evidence]] = label
    return SlideTargets(hard, soft)

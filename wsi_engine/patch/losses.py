"""Patch-level auxiliary losses: L2 distillation and multi-scale metric losses.

The classification loss itself (ce, focal, reinforced focal) is
:func:`wsi_engine.mil.losses.make_loss`, shared with the bag models.

``distillation_l2`` (reference §4.1, AMLPF-CLIP's KD term)
    mean_i ‖p_i − q_i‖₂ for student probabilities p (B, C) and teacher
    distributions q (B, C). The released code takes the Frobenius norm over
    the whole batch; averaging the per-patch norms instead keeps the weight
    independent of the batch size (our choice).

Metric losses on unit embeddings, d(a, b) = ‖a − b‖₂ ∈ [0, 2] (reference §4.3;
SMSE's own equations are unpublished, these are our stand-ins). The positive of
anchor i is the same location seen at the other resolution; its negative is
the hardest in-batch patch with another hard label (anchors without a
labelled negative are skipped):

``pair``
    d(a, p)² + max(0, m − d(a, n))²
``triplet``
    max(0, d(a, p) − d(a, n) + m)
"""

from __future__ import annotations

from typing import Literal

import torch

MetricName = Literal["none", "pair", "triplet"]


def distillation_l2(probs: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean over rows of ‖probs − teacher‖₂; both (B, C)."""
    return (probs - teacher).norm(dim=-1).mean()


def hardest_negatives(
    embedded: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(anchor indices (K,), index of each anchor's closest patch with another label (K,)).

    ``embedded`` (B, D) unit rows, ``labels`` (B,) with −1 for unlabelled
    patches, which are neither anchors nor negatives.
    """
    distance = torch.cdist(embedded, embedded)
    valid = (labels[:, None] != labels[None, :]) & (labels[:, None] >= 0) & (labels[None, :] >= 0)
    distance = distance.masked_fill(~valid, float("inf"))
    nearest = distance.min(dim=1)
    anchors = torch.nonzero(torch.isfinite(nearest.values)).squeeze(-1)
    return anchors, nearest.indices[anchors]


def multiscale_metric_loss(
    anchor: torch.Tensor,
    positive: torch.Tensor,
    labels: torch.Tensor,
    kind: MetricName,
    margin: float,
) -> torch.Tensor:
    """``kind`` loss of anchors (B, D) with their other-scale views ``positive`` (B, D); 0 when no triplet exists."""
    anchors, negatives = hardest_negatives(anchor, labels)
    if kind == "none" or not len(anchors):
        return anchor.new_zeros(())
    d_pos = (anchor[anchors] - positive[anchors]).norm(dim=-1)
    d_neg = (anchor[anchors] - anchor[negatives]).norm(dim=-1)
    if kind == "pair":
        return (d_pos**2 + torch.relu(margin - d_neg) ** 2).mean()
    return torch.relu(d_pos - d_neg + margin).mean()

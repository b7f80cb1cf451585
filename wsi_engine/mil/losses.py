"""Bag-level classification losses (logits (B, C), integer targets (B,) → scalar mean).

With p_t the softmax probability of the true class:

``ce``
    −log p_t.
``focal``
    −(1 − p_t)^γ · log p_t (Lin et al. 2017); γ = ``gamma``.
``reinforced-focal``
    −(1 − p_t)^γ · (1 + λ · 𝟙[argmax p ≠ y]) · log p_t.
    Our formula (method reference §4.3, not SMSE's, whose equations are
    unpublished): the focal factor suppresses easy, well-classified bags and
    the indicator adds λ times more loss to misclassified ones. The
    indicator has no gradient; λ = ``reinforce``.

Class balance is left to the slide resampler (:mod:`wsi_engine.mil.sampling`),
so no class weights α appear here.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from pydantic import Field

LossName = Literal["ce", "focal", "reinforced-focal"]
LOSSES: tuple[str, ...] = ("ce", "focal", "reinforced-focal")

FocalGamma = Annotated[
    float, Field(ge=0, description="focusing exponent of the focal losses and of the resampler")
]
"""γ, a training-config field shared by the bag and patch trainers."""

ReinforceWeight = Annotated[float, Field(ge=0, description="λ of the reinforced focal loss")]
"""λ, a training-config field shared by the bag and patch trainers."""


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, targets)


def focal(logits: torch.Tensor, targets: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    log_pt = F.log_softmax(logits, dim=-1).gather(-1, targets[:, None]).squeeze(-1)
    return (-((1.0 - log_pt.exp()) ** gamma) * log_pt).mean()


def reinforced_focal(
    logits: torch.Tensor, targets: torch.Tensor, gamma: float = 2.0, reinforce: float = 1.0
) -> torch.Tensor:
    log_pt = F.log_softmax(logits, dim=-1).gather(-1, targets[:, None]).squeeze(-1)
    wrong = (logits.argmax(-1) != targets).to(logits.dtype)
    return (-((1.0 - log_pt.exp()) ** gamma) * (1.0 + reinforce * wrong) * log_pt).mean()


def make_loss(
    name: str, gamma: float = 2.0, reinforce: float = 1.0
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The loss function ``name`` (one of :data:`LOSSES`) with its parameters bound."""
    if name == "ce":
        return cross_entropy
    if name == "focal":
        return partial(focal, gamma=gamma)
    if name == "reinforced-focal":
        return partial(reinforced_focal, gamma=gamma, reinforce=reinforce)
    raise ValueError(f"unknown loss {name!r}; use one of {', '.join(LOSSES)}")

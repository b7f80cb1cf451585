"""The interface every MIL head implements, so training and prediction are model-agnostic."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass
class MILOutput:
    """Result of one bag (N instances, C classes).

    ``logits`` (C,); ``attention`` (N, C), each column summing to 1 over the
    bag, or ``None``; ``instance_score`` (N,) one scalar of evidence per
    instance, or ``None``; ``bag_embedding`` (H,) the bag representation
    before the classifier (for auxiliary losses such as CLIP-IT's text
    distillation), or ``None``; ``aux_loss`` a scalar the trainer adds to the
    classification loss (e.g. a prototype loss), or ``None``.
    """

    logits: torch.Tensor
    attention: torch.Tensor | None = None
    instance_score: torch.Tensor | None = None
    bag_embedding: torch.Tensor | None = None
    aux_loss: torch.Tensor | None = None


class MILModel(nn.Module):
    """Base class: ``forward(features (N, D)) -> MILOutput``."""

    def forward(self, features: torch.Tensor) -> MILOutput:  # pragma: no cover - interface
        raise NotImplementedError

    def diagnostics(self) -> dict[str, float]:
        """Scalars worth logging once per epoch (learned temperatures, fusion weights...)."""
        return {}

    @property
    def preferred_evidence(self) -> str:
        """The per-patch output that best ranks a bag's patches as evidence for its class.

        ``attention`` (default) or ``instance_score``; ``fit-patches`` builds its targets from it
        unless told otherwise.
        """
        return "attention"

    @property
    def wants_instance_sample(self) -> bool:
        """True when :meth:`prepare` needs a sample of training patches before training."""
        return False

    def prepare(self, sample: InstanceSample, seed: int) -> None:
        """Data-dependent initialisation from a sample of pooled training patches (default: none)."""

    def param_groups(self, lr: float) -> list[dict]:
        """Optimiser parameter groups (default: one group at ``lr``)."""
        return [{"params": list(self.parameters()), "lr": lr}]

    def gradient_norms(self) -> dict[str, float]:
        """Gradient magnitudes worth logging, read after ``backward`` (default: none)."""
        return {}

    def evaluation_diagnostics(self, bags: Iterable[torch.Tensor]) -> dict[str, float]:
        """Scalars describing the model's behaviour on held-out ``bags`` (default: none)."""
        return {}


@dataclass(frozen=True)
class InstanceSample:
    """Training patches pooled over the training slides, for data-dependent initialisation.

    ``features`` (M, D) float32; ``targets`` (M,) the class index of each patch's slide (bag
    labels, never patch labels); ``bags`` (M,) the index of each patch's slide.
    """

    features: np.ndarray
    targets: np.ndarray
    bags: np.ndarray

    @classmethod
    def from_bags(cls, bags: list[np.ndarray], targets: list[int]) -> InstanceSample:
        """All patches of ``bags`` (each (N_i, D)), labelled with their bag's class ``targets``."""
        return cls(
            np.concatenate(bags).astype(np.float32),
            np.concatenate(
                [np.full(len(b), t, dtype=np.int64) for b, t in zip(bags, targets, strict=True)]
            ),
            np.concatenate([np.full(len(b), i, dtype=np.int64) for i, b in enumerate(bags)]),
        )


def mlp_projection(in_dim: int, out_dim: int, activation: bool = True) -> nn.Sequential:
    """Linear → LayerNorm (→ GELU): the instance and prompt projections of the heads."""
    layers: list[nn.Module] = [nn.Linear(in_dim, out_dim), nn.LayerNorm(out_dim)]
    if activation:
        layers.append(nn.GELU())
    return nn.Sequential(*layers)

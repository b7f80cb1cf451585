"""Baseline MIL heads on the same features and trainer: mean and max pooling, gated-attention ABMIL.

Evidence conventions (written to stores by ``predict``):

* pooling baselines score every instance with a shared classifier f (N, C)
  and pool per class (mean or max). Their ``attention`` column c is
  softmax_j f(x_j)_c: which patches push the bag towards class c (for max
  pooling, a soft version of the arg-max patch). No ``instance_score``.
* ABMIL (gated attention, one attention branch per class, Ilse et al. 2018
  with CLAM-style class branches) returns its per-class attention and, as
  ``instance_score``, each patch's largest pre-softmax attention logit.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from wsi_engine.config.loader import StrictModel
from wsi_engine.mil.base import MILModel, MILOutput, mlp_projection


class PoolingConfig(StrictModel):
    """Hyper-parameters of :class:`InstancePooling`."""

    dim: int = Field(256, ge=4, description="hidden width of the instance classifier")


class InstancePooling(MILModel):
    """Instance classifier f = Linear(Linear-LN-GELU(x)) (N, C), pooled over the bag by mean or max."""

    def __init__(
        self, config: PoolingConfig, feature_dim: int, n_classes: int, mode: Literal["mean", "max"]
    ):
        super().__init__()
        self.mode = mode
        self.instance_classifier = nn.Sequential(
            mlp_projection(feature_dim, config.dim), nn.Linear(config.dim, n_classes)
        )

    def forward(self, features: torch.Tensor) -> MILOutput:
        scores = self.instance_classifier(features)  # (N, C)
        logits = scores.mean(0) if self.mode == "mean" else scores.max(0).values
        return MILOutput(logits=logits, attention=torch.softmax(scores, dim=0))


class ABMILConfig(StrictModel):
    """Hyper-parameters of :class:`GatedABMIL`."""

    dim: int = Field(256, ge=4, description="instance embedding width")
    attention_dim: int = Field(128, ge=4, description="width of the gated attention network")


class GatedABMIL(MILModel):
    """Gated attention MIL with one attention branch and one linear classifier per class.

    h = Linear-LN-GELU(x) (N, H); a = W (tanh(V h) ⊙ σ(U h)) (N, C);
    A = softmax_j a; z_c = Σ_j A_jc h_j; logit_c = w_cᵀ z_c + b_c; bag embedding mean_c z_c (H,).
    """

    def __init__(self, config: ABMILConfig, feature_dim: int, n_classes: int):
        super().__init__()
        self.embed = mlp_projection(feature_dim, config.dim)
        self.attention_v = nn.Linear(config.dim, config.attention_dim)
        self.attention_u = nn.Linear(config.dim, config.attention_dim)
        self.attention_w = nn.Linear(config.attention_dim, n_classes)
        self.classifiers = nn.Parameter(torch.randn(n_classes, config.dim) / config.dim**0.5)
        self.bias = nn.Parameter(torch.zeros(n_classes))

    def forward(self, features: torch.Tensor) -> MILOutput:
        h = self.embed(features)
        gated = torch.tanh(self.attention_v(h)) * torch.sigmoid(self.attention_u(h))
        scores = self.attention_w(gated)  # (N, C)
        attention = torch.softmax(scores, dim=0)
        pooled = attention.T @ h  # (C, H)
        logits = (pooled * self.classifiers).sum(-1) + self.bias
        return MILOutput(
            logits=logits,
            attention=attention,
            instance_score=scores.max(-1).values,
            bag_embedding=pooled.mean(0),
        )

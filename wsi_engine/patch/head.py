"""The patch classifier: a linear or residual-MLP head on frozen features, text-initialised.

For features x (B, D) and C classes (reference §4.1, multi-level prompt fusion):

    h = x̂                                      (linear head; x̂ = x / ‖x‖)
    h = normalize(x̂ + W₂ GELU(W₁ x̂))          (MLP head, ``hidden`` > 0; W₂ starts at 0)
    w_c = Σ_l softmax(ω)_l · t_{l,c}            (C, D) fused class weights
    logits = s · h w_cᵀ + b_c                    s = exp(log s), learnable, clamped to [1, 100]

t_{l,c} are learnable copies of the L2-normalised prompt embeddings of level l
(``label``, ``basic``, ``detailed`` by default) and class c; ω starts at 0 and
b at 0. Before training the head is therefore the zero-shot CLIP classifier
s · Σ_l ⅓ cos(x, t_{l,c}), AMLPF-CLIP's fused logits with softmax-normalised
level weights. Without language priors (image-only encoder, features not in
the text space, or ``--text-free``) the class weights are one level of random
unit vectors.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from wsi_engine.config.loader import StrictModel
from wsi_engine.prompts import TaskEmbeddings

PromptLevel = Literal["label", "basic", "detailed"]
MAX_LOGIT_SCALE = 100.0


class HeadConfig(StrictModel):
    """Shape and initialisation of :class:`PatchHead`."""

    hidden: int = Field(
        0, ge=0, description="0: linear head; > 0: residual MLP adapter of this width"
    )
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout inside the MLP adapter")
    levels: list[PromptLevel] = Field(
        default_factory=lambda: ["label", "basic", "detailed"],
        min_length=1,
        description="prompt levels fused into class weights",
    )
    logit_scale: float = Field(
        1 / 0.07, ge=1, le=MAX_LOGIT_SCALE, description="initial s (CLIP's initial 1/0.07)"
    )

    @property
    def kind(self) -> str:
        return "mlp" if self.hidden else "linear"


class PatchHead(nn.Module):
    """``forward(features (B, D)) -> logits (B, C)``; ``class_embeddings`` (L, C, D) initial t_{l,c}."""

    def __init__(
        self,
        config: HeadConfig,
        feature_dim: int,
        class_embeddings: torch.Tensor,
        level_names: list[str],
    ):
        super().__init__()
        levels, n_classes, dim = class_embeddings.shape
        if dim != feature_dim:
            raise ValueError(f"class embeddings are {dim}-d, features {feature_dim}-d")
        if levels != len(level_names):
            raise ValueError(f"{levels} embedding levels but {len(level_names)} level names")
        self.config = config
        self.level_names = list(level_names)
        self.class_embeddings = nn.Parameter(F.normalize(class_embeddings.float(), dim=-1))
        self.level_logits = nn.Parameter(torch.zeros(levels))
        self.log_scale = nn.Parameter(torch.tensor(math.log(config.logit_scale)))
        self.bias = nn.Parameter(torch.zeros(n_classes))
        self.adapter = None
        if config.hidden:
            self.adapter = nn.Sequential(
                nn.Linear(feature_dim, config.hidden),
                nn.GELU(),
                nn.Dropout(config.dropout),
                nn.Linear(config.hidden, feature_dim),
            )
            nn.init.zeros_(self.adapter[-1].weight)
            nn.init.zeros_(self.adapter[-1].bias)

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """(B, D) unit-norm patch embeddings h (the space of the metric losses)."""
        x = F.normalize(features, dim=-1)
        return x if self.adapter is None else F.normalize(x + self.adapter(x), dim=-1)

    def level_weights(self) -> torch.Tensor:
        """(L,) softmax weights of the prompt levels."""
        return torch.softmax(self.level_logits, dim=0)

    def class_weights(self) -> torch.Tensor:
        """(C, D) fused class weights w_c."""
        return torch.einsum("l,lcd->cd", self.level_weights(), self.class_embeddings)

    def scale(self) -> torch.Tensor:
        return self.log_scale.clamp(0.0, math.log(MAX_LOGIT_SCALE)).exp()

    def logits_from_embedding(self, embedded: torch.Tensor) -> torch.Tensor:
        """(B, C) logits of embeddings h (B, D) from :meth:`embed`."""
        return self.scale() * embedded @ self.class_weights().T + self.bias

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.logits_from_embedding(self.embed(features))

    def diagnostics(self) -> dict[str, float]:
        """Learned level weights and logit scale, for the training history."""
        weights = self.level_weights().detach()
        out = {
            f"level_weight.{n}": float(w) for n, w in zip(self.level_names, weights, strict=True)
        }
        out["logit_scale"] = float(self.scale().detach())
        return out


def build_head(
    config: HeadConfig, feature_dim: int, n_classes: int, text: TaskEmbeddings | None, seed: int
) -> PatchHead:
    """A new head: class weights from ``text``'s prompt levels, or random unit vectors when ``text`` is None.

    Random initial values (text-free class weights, the MLP adapter's first
    layer) come from ``seed`` alone; the global torch generator is left as it was.
    """
    if text is not None and len(text.class_names) != n_classes:
        raise ValueError(
            f"prompt embeddings have {len(text.class_names)} classes, expected {n_classes}"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if text is None:
            return PatchHead(
                config, feature_dim, torch.randn(1, n_classes, feature_dim), ["learned"]
            )
        embeddings = torch.from_numpy(np.asarray(text.levels(config.levels), dtype=np.float32))
        return PatchHead(config, feature_dim, embeddings, list(config.levels))


def empty_head(
    config: HeadConfig, feature_dim: int, n_classes: int, level_names: list[str]
) -> PatchHead:
    """A head of the right shapes to load a saved ``state_dict`` into."""
    return PatchHead(
        config, feature_dim, torch.ones(len(level_names), n_classes, feature_dim), level_names
    )

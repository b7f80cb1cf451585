"""Libra-MIL with a working stereoscopic OT fusion (docs/mil.md; method reference §1.12).

For one bag X (N, D) and C classes:

1. Project instances and prototypes: X' = φ_v(X) (N, H), P_v' = φ_v(P_v)
   (K_v, H), P_t' = φ_t(P_t) (K_t, H); φ_v = Linear-LN-GELU, φ_t = Linear-LN.
2. Similarities S_v = cos(X', P_v') (N, K_v), S_t = cos(X', P_t') (N, K_t).
3. Fusion (``config.fusion``):

   ``sot``
       μ = softmax(mean_j S_v / e^{τ_v}), ν = softmax(mean_j S_t / e^{τ_t});
       cost = 1 − cos(P_v', P_t') (K_v, K_t); T = Sinkhorn(μ, ν, cost, ε, L);
       s_j = S_v[j] T S_t[j]ᵀ.
   ``concat``
       s_j = a · [S_v[j], S_t[j]] + b (both prototype sets, no transport).
   ``none``
       no fusion (what the released Libra-MIL code computes, since its fusion
       is an exact identity; the prototypes then get no gradient).

   For ``sot``/``concat`` the instances are re-weighted by
   w = N · softmax_j(s_j / τ_f) (mean weight 1; τ_f learned, initialised at
   ``config.reweight_tau``) inside the attention: every query's attention
   to instance j is multiplied by w_j and renormalised,
   a_cj ∝ w_j · exp(q_c · k_j / √d_h), i.e. log w is added to the attention
   logits. (Scaling the keys/values, X_f = w ⊙ X', also scales the attention
   logits by w and made training unstable: docs/mil.md.) With ``none``,
   w = 1.
4. Class queries: per class, the prompt levels (label, basic, detailed,
   bag_low, bag_high by default) combined with learned softmax weights,
   Q = φ_t(Σ_l softmax(ω)_l · E_l) (C, H).
5. H = CrossAttention(Q, X', log w) (C, H); logits = g(H) (C,), g shared over classes.
   The bag representation (``bag_embedding``) is the class mean of H (H,).

Text-free form (no language priors): P_t is a second learned prototype set
(``config.kt_text_free`` rows, random) and the class queries are learned
vectors; the OT fusion then couples two learned prototype sets.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from kernels import sinkhorn_torch
from wsi_engine.config.loader import StrictModel
from wsi_engine.errors import DataError
from wsi_engine.mil.attention import CrossAttention, SharedScorer
from wsi_engine.mil.base import MILModel, MILOutput, mlp_projection
from wsi_engine.prompts import PROMPT_FIELDS, TaskEmbeddings

QueryLevel = Literal["label", "basic", "detailed", "bag_low", "bag_high"]


class LibraConfig(StrictModel):
    """Hyper-parameters of :class:`LibraMIL`."""

    dim: int = Field(512, ge=8, description="hidden width H")
    heads: int = Field(8, ge=1)
    kv: int = Field(10, ge=1, description="number of visual prototypes K_v")
    kt_text_free: int = Field(
        16, ge=1, description="size of the learned second prototype set (text-free form)"
    )
    fusion: Literal["sot", "none", "concat"] = "sot"
    ot_eps: float = Field(0.05, gt=0, description="entropic regularisation ε of the Sinkhorn plan")
    ot_iters: int = Field(20, ge=1, description="Sinkhorn iterations L")
    reweight_tau: float = Field(
        0.1, gt=0, description="initial temperature τ_f of the instance re-weighting"
    )
    proto_init: Literal["random", "kmeans"] = "random"
    query_levels: list[QueryLevel] = Field(
        default_factory=lambda: list(PROMPT_FIELDS),
        min_length=1,
        description="prompt levels fused into class queries",
    )


class LibraMIL(MILModel):
    """Libra-MIL head. ``text`` = the task's prompt embeddings, or ``None`` for the text-free form."""

    def __init__(
        self, config: LibraConfig, feature_dim: int, n_classes: int, text: TaskEmbeddings | None
    ):
        super().__init__()
        self.config = config
        self.text_free = text is None
        h = config.dim
        if text is None:
            text_dim = feature_dim
            entities = torch.randn(config.kt_text_free, feature_dim)
            levels = torch.randn(1, n_classes, feature_dim) / math.sqrt(feature_dim)
            self.level_names: list[str] = ["learned"]
        else:
            if len(text.class_names) != n_classes:
                raise ValueError(
                    f"prompt embeddings have {len(text.class_names)} classes, expected {n_classes}"
                )
            text_dim = text.dim
            entities = torch.from_numpy(np.array(text.entities, dtype=np.float32))
            levels = torch.from_numpy(np.array(text.levels(config.query_levels), dtype=np.float32))
            self.level_names = list(config.query_levels)
        self.phi_v = mlp_projection(feature_dim, h, activation=True)
        self.phi_t = mlp_projection(text_dim, h, activation=False)
        self.visual_prototypes = nn.Parameter(torch.randn(config.kv, feature_dim))
        self.text_prototypes = nn.Parameter(entities)
        self.query_embeddings = nn.Parameter(levels)
        self.level_logits = (
            nn.Parameter(torch.zeros(len(self.level_names))) if len(self.level_names) > 1 else None
        )
        self.tau_v = nn.Parameter(torch.tensor(1.0))
        self.tau_t = nn.Parameter(torch.tensor(1.0))
        self.log_tau_f = nn.Parameter(torch.tensor(math.log(config.reweight_tau)))
        self.concat_score = (
            nn.Linear(config.kv + entities.shape[0], 1) if config.fusion == "concat" else None
        )
        self.attention = CrossAttention(h, config.heads)
        self.scorer = SharedScorer(h)

    # ---------------------------------------------------------------- pieces
    def class_queries(self) -> torch.Tensor:
        """(C, H) projected class queries (softmax-weighted sum of the prompt levels)."""
        if self.level_logits is None:
            fused = self.query_embeddings[0]
        else:
            weights = torch.softmax(self.level_logits, dim=0)
            fused = torch.einsum("l,lcd->cd", weights, self.query_embeddings)
        return self.phi_t(fused)

    def fused_scores(self, x: torch.Tensor) -> torch.Tensor:
        """(N,) fused per-instance score s from projected instances x (N, H)."""
        pv = self.phi_v(self.visual_prototypes)
        pt = self.phi_t(self.text_prototypes)
        xn = F.normalize(x, dim=-1)
        sv = xn @ F.normalize(pv, dim=-1).T  # (N, Kv)
        st = xn @ F.normalize(pt, dim=-1).T  # (N, Kt)
        if self.concat_score is not None:
            return self.concat_score(torch.cat([sv, st], dim=-1)).squeeze(-1)
        mu = torch.softmax(sv.mean(0) / self.tau_v.exp(), dim=0)
        nu = torch.softmax(st.mean(0) / self.tau_t.exp(), dim=0)
        cost = (1.0 - F.normalize(pv, dim=-1) @ F.normalize(pt, dim=-1).T).clamp_min(
            0.0
        )  # (Kv, Kt); rounding can dip below 0
        plan = sinkhorn_torch(mu, nu, cost, self.config.ot_eps, num_iter=self.config.ot_iters)
        return ((sv @ plan) * st).sum(-1)

    @property
    def preferred_evidence(self) -> str:
        """``instance_score`` (the fused transport score s) when there is a fusion, else attention."""
        return "attention" if self.config.fusion == "none" else "instance_score"

    @property
    def wants_instance_sample(self) -> bool:
        return self.config.proto_init == "kmeans"

    def prepare(self, sample: np.ndarray, seed: int) -> None:
        """Initialise the visual prototypes by k-means on ``sample`` (M, D) of training patches."""
        from sklearn.cluster import KMeans

        k = self.config.kv
        if len(sample) < k:
            raise DataError(
                f"k-means initialisation of {k} visual prototypes got only {len(sample)} training patches"
            )
        centres = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(sample).cluster_centers_
        with torch.no_grad():
            self.visual_prototypes.copy_(torch.from_numpy(centres.astype(np.float32)))

    # --------------------------------------------------------------- forward
    def forward(self, features: torch.Tensor) -> MILOutput:
        x = self.phi_v(features)
        score = log_weights = None
        if self.config.fusion != "none":
            score = self.fused_scores(x)
            tau_f = self.log_tau_f.clamp(math.log(1e-3), math.log(1e3)).exp()
            log_weights = torch.log_softmax(score / tau_f, dim=0) + math.log(
                x.shape[0]
            )  # log w, w = N·softmax(s/τ_f)
        summaries, attn = self.attention(self.class_queries(), x, log_weights)
        return MILOutput(
            logits=self.scorer(summaries),
            attention=attn.mean(0).T,
            instance_score=score,
            bag_embedding=summaries.mean(0),
        )

    def diagnostics(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.level_logits is not None:
            weights = torch.softmax(self.level_logits.detach(), dim=0)
            out.update(
                {
                    f"query_weight.{n}": float(w)
                    for n, w in zip(self.level_names, weights, strict=True)
                }
            )
        if self.config.fusion != "none":
            out["tau_f"] = float(self.log_tau_f.detach().exp())
        if self.config.fusion == "sot":
            out["tau_v"] = float(self.tau_v.detach().exp())
            out["tau_t"] = float(self.tau_t.detach().exp())
        return out

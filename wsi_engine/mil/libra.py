"""Libra-MIL with a working stereoscopic OT fusion (docs/mil.md; method reference §1.12).

For one bag X (N, D) and C classes:

1. Project instances and prototypes: X' = φ_v(X) (N, H), P_v' = φ_v(P_v)
   (K_v, H), P_t' = φ_t(P_t) (K_t, H); φ_v = Linear-LN-GELU, φ_t = Linear-LN.
2. Similarities S_v = cos(X', P_v') (N, K_v), S_t = cos(X', P_t') (N, K_t).
3. Fusion (``config.fusion``), temperatures τ_v, τ_t learned (init ``marginal_tau``):

   ``contrast`` (default: the mode the real-feature benchmark supports, docs/mil.md)
       one plan per bag from its instances to the prototypes: P_v holds diagnostic
       prototypes (per class, from training patches of that class with no close
       counterpart in the other classes, :mod:`wsi_engine.mil.contrast`) and
       background prototypes; with text, the text prototypes join the diagnostic
       side. μ = 1/N per instance, ν gives the background side ``contrast.background_mass``;
       cost = 1 − cos(x'_j, P'_k); T = Sinkhorn(μ, ν, cost, ε, L) (torch twin);
       s_j = N Σ_{k diagnostic} T_jk, the share of instance j's mass sent to
       diagnostic prototypes. Replacing T by μνᵀ makes s constant (uniform weights).
   ``sot``
       one plan per bag: μ = softmax(mean_j S_v / τ_v), ν = softmax(mean_j S_t / τ_t);
       cost = 1 − cos(P_v', P_t') (K_v, K_t); T = Sinkhorn(μ, ν, cost, ε, L);
       s_j = S_v[j] T S_t[j]ᵀ (torch twin, differentiable).
   ``sot-instance``
       one plan per instance (the released code's marginals, method reference §1.6):
       μ_j = softmax(S_t[j] / τ_t) (K_t), ν_j = softmax(S_v[j] / τ_v) (K_v);
       T_j = Sinkhorn(μ_j, ν_j, costᵀ) (K_t, K_v); s_j = S_t[j] T_j S_v[j]ᵀ, through
       :func:`wsi_kernels.transport_scores` (Numba forward and backward on the CPU,
       the torch twin on a GPU; ``ot_backend``).
   ``concat``
       s_j = a · [S_v[j], S_t[j]] + b (both prototype sets, no transport).
   ``none``
       no fusion (what the released Libra-MIL code computes, since its fusion
       is an exact identity; the prototypes then get no gradient).

   For every mode but ``none`` the score is standardised within the bag,
   z = (s − mean s) / std s (``score_norm``, default; the raw ``sot`` scores of a bag
   differ by 1e-3, too little to re-weight anything), and the instances are re-weighted
   by the gated residual w = (1 − g)·1 + g·N·softmax(z / τ_f) (mean weight 1; g learned
   from ``gate_init`` 0.9, null for w = N·softmax(z / τ_f); τ_f learned from
   ``reweight_tau`` 1, 1/τ_f is the fusion strength) inside the attention: every query's attention
   to instance j is multiplied by w_j and renormalised,
   a_cj ∝ w_j · exp(q_c · k_j / √d_h), i.e. log w is added to the attention
   logits. (Scaling the keys/values, X_f = w ⊙ X', also scales the attention
   logits by w and made training unstable: docs/mil.md.) With ``none``,
   w = 1. The temperatures learn at ``fusion_lr_scale`` and the prototypes at
   ``prototype_lr_scale`` times the learning rate (:meth:`LibraMIL.param_groups`).
   With ``proto_loss`` λ > 0 the visual prototypes also minimise λ times the
   entropic-OT clustering cost of the bag (:meth:`LibraMIL.prototype_loss`).
4. Class queries: per class, the prompt levels (label, basic, detailed,
   bag_low, bag_high by default) combined with learned softmax weights,
   Q = φ_t(Σ_l softmax(ω)_l · E_l) (C, H).
5. H = CrossAttention(Q, X', log w) (C, H); logits = g(H) (C,), g shared over classes;
   with ``text_logit_scale`` > 0 plus the zero-shot text logit β·cos(Q_c, pooled X').
   The bag representation (``bag_embedding``) is the class mean of H (H,).

Text-free form (no language priors): P_t is a second learned prototype set
(``config.kt_text_free`` rows, random) and the class queries are learned
vectors; the OT fusion then couples two learned prototype sets.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from wsi_engine.config.loader import StrictModel
from wsi_engine.errors import DataError
from wsi_engine.mil.attention import CrossAttention, SharedScorer
from wsi_engine.mil.base import InstanceSample, MILModel, MILOutput, mlp_projection
from wsi_engine.mil.contrast import ContrastConfig, contrast_prototypes
from wsi_engine.prompts import PROMPT_FIELDS, TaskEmbeddings
from wsi_kernels import sinkhorn_torch, transport_scores

QueryLevel = Literal["label", "basic", "detailed", "bag_low", "bag_high"]


class LibraConfig(StrictModel):
    """Hyper-parameters of :class:`LibraMIL`."""

    dim: int = Field(512, ge=8, description="hidden width H")
    heads: int = Field(8, ge=1)
    kv: int = Field(10, ge=1, description="number of visual prototypes K_v")
    kt_text_free: int = Field(
        16, ge=1, description="size of the learned second prototype set (text-free form)"
    )
    fusion: Literal["contrast", "sot", "sot-instance", "none", "concat"] = Field(
        "contrast",
        description="instance re-weighting by the prototype fusion; default contrast, the mode the "
        "real-feature benchmark supports (docs/mil.md)",
    )
    contrast: ContrastConfig = Field(
        default_factory=ContrastConfig, description="the contrast fusion's prototypes and plan"
    )
    ot_eps: float = Field(0.05, gt=0, description="entropic regularisation ε of the Sinkhorn plan")
    ot_iters: int = Field(20, ge=1, description="Sinkhorn iterations L")
    reweight_tau: float = Field(
        1.0,
        gt=0,
        description="initial temperature τ_f of the instance re-weighting (of the standardised score)",
    )
    marginal_tau: float = Field(
        0.1,
        gt=0,
        description="initial temperature τ_v, τ_t of the sot marginal softmaxes (released code: "
        "e = 2.718, which leaves them uniform)",
    )
    gate_init: float | None = Field(
        0.9,
        gt=0,
        lt=1,
        description="gated residual re-weighting w = (1 − g) + g·N·softmax(z / τ_f), g learned "
        "from this initial value; null: w = N·softmax(z / τ_f)",
    )
    score_norm: Literal["standardize", "none"] = Field(
        "standardize", description="standardise the fused score within the bag before re-weighting"
    )
    fusion_lr_scale: float = Field(
        1.0, ge=0, description="learning-rate multiplier of the temperatures τ_v, τ_t, τ_f"
    )
    prototype_lr_scale: float = Field(
        1.0, ge=0, description="learning-rate multiplier of the visual and text prototypes"
    )
    proto_loss: float = Field(
        0.0, ge=0, description="weight λ of the OT clustering loss on the visual prototypes"
    )
    text_logit_scale: float = Field(
        0.0,
        ge=0,
        description="initial scale β of the zero-shot text logit β·cos(Q_c, pooled X') added to "
        "each class logit (text initialising the classifier); 0: off",
    )
    tie_init: bool = Field(
        False,
        description="initialise φ_t as a copy of φ_v when image and text embeddings share a space",
    )
    ot_backend: Literal["auto", "numba", "torch"] = Field(
        "auto", description="sot-instance transport: numba (CPU), torch, or auto (numba on CPU)"
    )
    proto_init: Literal["random", "data", "kmeans"] = Field(
        "random",
        description="visual prototypes: N(0, 1) (released code), N(mean, var) of training patches, or k-means",
    )
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
        if config.tie_init and text is not None and text_dim == feature_dim:
            # image and text share a space: start φ_t as φ_v's Linear-LN, so that the projected
            # queries and text prototypes keep their relation to the projected patches
            self.phi_t.load_state_dict(self.phi_v.state_dict())
        self.n_classes = n_classes
        self.visual_prototypes = nn.Parameter(torch.randn(self.n_visual_prototypes, feature_dim))
        if config.fusion == "contrast":
            # how many of the visual prototypes are diagnostic (set by prepare, kept in checkpoints)
            self.register_buffer(
                "n_diagnostic", torch.tensor(n_classes * config.contrast.per_class)
            )
        self.text_prototypes = nn.Parameter(entities)
        self.query_embeddings = nn.Parameter(levels)
        self.level_logits = (
            nn.Parameter(torch.zeros(len(self.level_names))) if len(self.level_names) > 1 else None
        )
        log_tau = math.log(config.marginal_tau)
        self.tau_v = nn.Parameter(torch.tensor(log_tau))  # used as τ_v = e^tau_v
        self.tau_t = nn.Parameter(torch.tensor(log_tau))
        self.log_tau_f = nn.Parameter(torch.tensor(math.log(config.reweight_tau)))
        gate = config.gate_init
        self.gate_logit = (
            nn.Parameter(torch.tensor(math.log(gate / (1.0 - gate)))) if gate is not None else None
        )
        self.concat_score = (
            nn.Linear(config.kv + entities.shape[0], 1) if config.fusion == "concat" else None
        )
        self.text_logit_scale = (
            nn.Parameter(torch.tensor(float(config.text_logit_scale)))
            if config.text_logit_scale > 0
            else None
        )
        self.attention = CrossAttention(h, config.heads)
        self.scorer = SharedScorer(h)
        self._initial_prototypes = self._prototype_snapshot()

    # ---------------------------------------------------------------- pieces
    def class_queries(self) -> torch.Tensor:
        """(C, H) projected class queries (softmax-weighted sum of the prompt levels)."""
        if self.level_logits is None:
            fused = self.query_embeddings[0]
        else:
            weights = torch.softmax(self.level_logits, dim=0)
            fused = torch.einsum("l,lcd->cd", weights, self.query_embeddings)
        return self.phi_t(fused)

    def fusion(self, x: torch.Tensor, independent: bool = False) -> Fusion:
        """Fused per-instance scores of projected instances x (N, H), with the marginals.

        ``independent=True`` replaces every transport plan T by the independent coupling μνᵀ
        (the diagnostic of whether the transport reaches the output).
        """
        pv = F.normalize(self.phi_v(self.visual_prototypes), dim=-1)
        pt = F.normalize(self.phi_t(self.text_prototypes), dim=-1)
        xn = F.normalize(x, dim=-1)
        sv, st = xn @ pv.T, xn @ pt.T  # (N, Kv), (N, Kt)
        if self.concat_score is not None:
            return Fusion(self.concat_score(torch.cat([sv, st], dim=-1)).squeeze(-1))
        if self.config.fusion == "contrast":
            return self._contrast_fusion(sv, st, independent)
        tau_v, tau_t = self.tau_v.clamp(-7.0, 7.0).exp(), self.tau_t.clamp(-7.0, 7.0).exp()
        cost = (1.0 - pv @ pt.T).clamp_min(0.0)  # (Kv, Kt); rounding can dip below 0
        eps, iters = self.config.ot_eps, self.config.ot_iters
        if self.config.fusion == "sot":
            mu = torch.softmax(sv.mean(0) / tau_v, dim=0)
            nu = torch.softmax(st.mean(0) / tau_t, dim=0)
            plan = (
                torch.outer(mu, nu)
                if independent
                else sinkhorn_torch(mu, nu, cost, eps, num_iter=iters)
            )
            return Fusion(((sv @ plan) * st).sum(-1), mu[None], nu[None], cost)
        mu = torch.softmax(sv / tau_v, dim=-1)  # (N, Kv) visual marginal of each instance
        nu = torch.softmax(st / tau_t, dim=-1)  # (N, Kt) text marginal
        if independent:
            score = (st * nu).sum(-1) * (sv * mu).sum(-1)
        else:  # plans (Kt, Kv) per instance, rows = text as in the released code
            score = transport_scores(st, sv, nu, mu, cost.T, eps, iters, self.config.ot_backend)
        return Fusion(score, mu, nu, cost)

    def _contrast_fusion(self, sv: torch.Tensor, st: torch.Tensor, independent: bool) -> Fusion:
        """One plan per bag from its N instances (mass 1/N each) to the prototypes: the diagnostic
        ones (visual, and the text entities when there is text and a visual one) share
        1 − ``contrast.background_mass``, the background ones ``contrast.background_mass``,
        evenly within each side; cost 1 − cos. s_j = N · (mass of instance j sent to diagnostic
        prototypes) ∈ [0, 1]."""
        kd = int(self.n_diagnostic)
        # text entities count as diagnostic only beside visual evidence of class-specific tissue
        diagnostic = [sv[:, :kd]] if self.text_free or kd == 0 else [sv[:, :kd], st]
        sims = torch.cat([*diagnostic, sv[:, kd:]], dim=-1)  # (N, K): diagnostic, then background
        n, k_all = sims.shape
        k_background = sv.shape[1] - kd
        k_diagnostic = k_all - k_background
        share = self.config.contrast.background_mass
        if k_diagnostic == 0:  # no class-specific tissue found: s = 0, uniform weights
            share = 1.0
        nu = torch.cat(
            [
                sims.new_full((k_diagnostic,), (1.0 - share) / max(k_diagnostic, 1)),
                sims.new_full((k_background,), share / k_background),
            ]
        )
        mu = sims.new_full((n,), 1.0 / n)
        cost = (1.0 - sims).clamp_min(0.0)
        eps, iters = self.config.ot_eps, self.config.ot_iters
        plan = (
            torch.outer(mu, nu)
            if independent
            else sinkhorn_torch(mu, nu, cost, eps, num_iter=iters)
        )
        score = n * plan[:, :k_diagnostic].sum(-1)
        return Fusion(score, mu[None], nu[None], cost)

    def fused_scores(self, x: torch.Tensor) -> torch.Tensor:
        """(N,) fused per-instance score s from projected instances x (N, H)."""
        return self.fusion(x).score

    def log_weights(self, score: torch.Tensor) -> torch.Tensor:
        """(N,) log w, w = N·softmax(z / τ_f), z the (standardised) fused score; with the gate
        g = sigmoid(gate_logit), w = (1 − g) + g·N·softmax(z / τ_f) (mean weight 1 either way)."""
        if self.config.score_norm == "standardize":
            score = (score - score.mean()) / (score.std(unbiased=False) + 1e-6)
        tau_f = self.log_tau_f.clamp(math.log(1e-3), math.log(1e3)).exp()
        log_w = torch.log_softmax(score / tau_f, dim=0) + math.log(score.shape[0])
        if self.gate_logit is None:
            return log_w
        log_g = F.logsigmoid(self.gate_logit)
        return torch.logaddexp(F.logsigmoid(-self.gate_logit), log_g + log_w)

    def text_logits(
        self, queries: torch.Tensor, x: torch.Tensor, log_weights: torch.Tensor | None
    ) -> torch.Tensor:
        """(C,) zero-shot text logits β·cos(Q_c, Σ_j a_j x'_j), a = softmax(log w) (uniform
        without fusion): the class descriptions score the fusion-weighted bag from the start,
        as CLIP's zero-shot classifier does, and β (init ``text_logit_scale``) is learned."""
        if log_weights is None:
            pooled = x.mean(0)
        else:
            pooled = torch.softmax(log_weights, dim=0) @ x
        return self.text_logit_scale * (F.normalize(queries, dim=-1) @ F.normalize(pooled, dim=-1))

    def prototype_loss(self, x: torch.Tensor) -> torch.Tensor:
        """Entropic-OT clustering cost of the bag on the visual prototypes (OTK/PANTHER-style).

        The plan π between the N instances (mass 1/N each) and the K_v prototypes (1/K_v each)
        is solved without gradient (ε, L of the fusion) on the cost 1 − cos(x'_j, P_v'_k); the
        loss ⟨π, cost⟩ then pulls every prototype towards the instances assigned to it, with
        the balanced marginal keeping every prototype in use.  The instances are detached: the
        loss moves the prototypes (and φ_v through them), not the instance embedding.
        """
        pv = F.normalize(self.phi_v(self.visual_prototypes), dim=-1)
        cost = (1.0 - F.normalize(x.detach(), dim=-1) @ pv.T).clamp_min(0.0)
        n, k = cost.shape
        with torch.no_grad():
            uniform_n = torch.full((n,), 1.0 / n, dtype=cost.dtype, device=cost.device)
            uniform_k = torch.full((k,), 1.0 / k, dtype=cost.dtype, device=cost.device)
            plan = sinkhorn_torch(
                uniform_n, uniform_k, cost, self.config.ot_eps, num_iter=self.config.ot_iters
            )
        return (plan * cost).sum()

    @property
    def preferred_evidence(self) -> str:
        """``instance_score`` (the fused score s) when there is a fusion, else attention (also for
        a contrast fusion that found no diagnostic prototypes: its score is then 0)."""
        if self.config.fusion == "none" or (
            self.config.fusion == "contrast" and int(self.n_diagnostic) == 0
        ):
            return "attention"
        return "instance_score"

    @property
    def n_visual_prototypes(self) -> int:
        """K_v: ``kv``, or for the contrast fusion C · ``contrast.per_class`` + ``contrast.background``."""
        if self.config.fusion != "contrast":
            return self.config.kv
        contrast = self.config.contrast
        return self.n_classes * contrast.per_class + contrast.background

    @property
    def wants_instance_sample(self) -> bool:
        return self.config.fusion == "contrast" or self.config.proto_init != "random"

    def prepare(self, sample: InstanceSample, seed: int) -> None:
        """Initialise the visual prototypes from a sample of training patches.

        ``contrast`` fusion: the diagnostic and background prototypes of
        :func:`wsi_engine.mil.contrast.contrast_prototypes` (``proto_init`` is not used).
        Otherwise by ``proto_init``: ``data``: draws from the normal distribution with the sample's per-feature mean and
        variance (prototypes at the scale of the patches, which N(0, 1) is not for features of
        another norm); ``kmeans``: the k-means centres.
        """
        if self.config.fusion == "contrast":
            found = contrast_prototypes(sample, self.n_classes, self.config.contrast, seed)
            self.n_diagnostic.fill_(found.n_diagnostic)
            self._set_visual_prototypes(found.centres)
            return
        features = sample.features
        if self.config.proto_init == "data":
            rng = np.random.default_rng(seed)
            draw = rng.standard_normal((self.config.kv, features.shape[1]))
            self._set_visual_prototypes(features.mean(0) + draw * features.std(0))
            return
        from sklearn.cluster import KMeans

        k = self.config.kv
        if len(features) < k:
            raise DataError(
                f"k-means initialisation of {k} visual prototypes got only {len(features)} training patches"
            )
        kmeans = KMeans(n_clusters=k, n_init=3, random_state=seed % 2**31)
        self._set_visual_prototypes(kmeans.fit(features).cluster_centers_)

    def _set_visual_prototypes(self, values: np.ndarray) -> None:
        with torch.no_grad():
            self.visual_prototypes.copy_(torch.from_numpy(values.astype(np.float32)))
        self._initial_prototypes = self._prototype_snapshot()

    # --------------------------------------------------------------- forward
    def forward(self, features: torch.Tensor) -> MILOutput:
        return self._forward(features)

    def _forward(self, features: torch.Tensor, independent: bool = False) -> MILOutput:
        x = self.phi_v(features)
        score = log_weights = aux = None
        if self.config.fusion != "none":
            score = self.fusion(x, independent).score
            log_weights = self.log_weights(score)
        if self.config.proto_loss > 0 and self.training:
            aux = self.config.proto_loss * self.prototype_loss(x)
        queries = self.class_queries()
        summaries, attn = self.attention(queries, x, log_weights)
        logits = self.scorer(summaries)
        if self.text_logit_scale is not None:
            logits = logits + self.text_logits(queries, x, log_weights)
        return MILOutput(
            logits=logits,
            attention=attn.mean(0).T,
            instance_score=score,
            bag_embedding=summaries.mean(0),
            aux_loss=aux,
        )

    # ----------------------------------------------------------- diagnostics
    def _prototype_snapshot(self) -> dict[str, torch.Tensor]:
        return {
            "visual_prototypes": self.visual_prototypes.detach().cpu().clone(),
            "text_prototypes": self.text_prototypes.detach().cpu().clone(),
        }

    def param_groups(self, lr: float) -> list[dict]:
        """Optimiser groups: temperatures at ``fusion_lr_scale``·lr (no weight decay), prototypes
        at ``prototype_lr_scale``·lr, everything else at lr."""
        scalars = [self.tau_v, self.tau_t, self.log_tau_f]
        if self.gate_logit is not None:
            scalars.append(self.gate_logit)
        prototypes = [self.visual_prototypes, self.text_prototypes]
        special = {id(p) for p in scalars + prototypes}
        rest = [p for p in self.parameters() if id(p) not in special]
        return [
            {"params": rest, "lr": lr},
            {"params": scalars, "lr": lr * self.config.fusion_lr_scale, "weight_decay": 0.0},
            {"params": prototypes, "lr": lr * self.config.prototype_lr_scale},
        ]

    def gradient_norms(self) -> dict[str, float]:
        """Root-mean-square gradient entry of the prototypes and of φ_v (after ``backward``)."""

        def rms(params) -> float:
            grads = [p.grad.reshape(-1) for p in params if p.grad is not None]
            return float(torch.cat(grads).pow(2).mean().sqrt()) if grads else 0.0

        return {
            "grad_rms.visual_prototypes": rms([self.visual_prototypes]),
            "grad_rms.text_prototypes": rms([self.text_prototypes]),
            "grad_rms.phi_v": rms(self.phi_v.parameters()),
        }

    @torch.inference_mode()
    def evaluation_diagnostics(self, bags: Iterable[torch.Tensor]) -> dict[str, float]:
        """What the fusion does on ``bags`` (means over bags; see docs/mil.md, fusion diagnostics).

        ``fusion.entropy_v``/``entropy_t``: entropy of μ, ν over log K (1 = uniform);
        ``fusion.kl_plan``: KL(T ‖ μνᵀ) (per-instance plans: mean over up to 256 instances);
        ``fusion.prob_change`` (and ``_max``): largest change of a class probability when every
        T is replaced by μνᵀ; ``fusion.ess``: effective sample size of the weights over N;
        ``fusion.max_weight``: largest weight (mean weight 1).
        """
        if self.config.fusion == "none":
            return {}
        was_training = self.training
        self.eval()
        rows = [self._bag_diagnostics(b) for b in bags]
        self.train(was_training)
        if not rows:
            return {}
        out = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
        if "fusion.prob_change" in out:
            out["fusion.prob_change_max"] = float(max(r["fusion.prob_change"] for r in rows))
        return out

    def _bag_diagnostics(self, features: torch.Tensor) -> dict[str, float]:
        x = self.phi_v(features)
        fusion = self.fusion(x)
        w = self.log_weights(fusion.score).exp()
        out = {
            "fusion.ess": float(w.sum() ** 2 / (w.pow(2).sum() * w.numel())),
            "fusion.max_weight": float(w.max()),
        }
        if fusion.mu is None:
            return out
        out["fusion.entropy_v"] = _normalised_entropy(fusion.mu)
        out["fusion.entropy_t"] = _normalised_entropy(fusion.nu)
        eps, iters = self.config.ot_eps, self.config.ot_iters
        if self.config.fusion in ("sot", "contrast"):
            mu, nu, cost = fusion.mu[0], fusion.nu[0], fusion.cost
        else:  # per-instance plans (Kt, Kv) on a subsample
            keep = torch.linspace(0, len(x) - 1, min(len(x), 256)).long()
            mu, nu, cost = fusion.nu[keep], fusion.mu[keep], fusion.cost.T
        plan = sinkhorn_torch(mu, nu, cost, eps, num_iter=iters)
        independent = mu.unsqueeze(-1) * nu.unsqueeze(-2)
        kl = (plan * (plan.clamp_min(1e-30) / independent).log()).sum((-2, -1))
        out["fusion.kl_plan"] = float(kl.mean())
        p = torch.softmax(self._forward(features).logits, -1)
        p0 = torch.softmax(self._forward(features, independent=True).logits, -1)
        out["fusion.prob_change"] = float((p - p0).abs().max())
        return out

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
        if self.gate_logit is not None:
            out["gate"] = float(torch.sigmoid(self.gate_logit.detach()))
        if self.config.fusion == "contrast":
            out["diagnostic_prototypes"] = float(self.n_diagnostic)
        if self.config.fusion in ("sot", "sot-instance"):
            out["tau_v"] = float(self.tau_v.detach().exp())
            out["tau_t"] = float(self.tau_t.detach().exp())
        for name, start in self._initial_prototypes.items():
            now = getattr(self, name).detach().cpu()
            out[f"displacement.{name}"] = float(
                (now - start).norm() / start.norm().clamp_min(1e-12)
            )
        return out


@dataclass
class Fusion:
    """Fused scores (N,) with, for the transport modes, the marginals (1 or N, K_v), (1 or N, K_t)
    and the prototype cost (K_v, K_t)."""

    score: torch.Tensor
    mu: torch.Tensor | None = None
    nu: torch.Tensor | None = None
    cost: torch.Tensor | None = None


def _normalised_entropy(p: torch.Tensor) -> float:
    """Mean entropy of the rows of ``p`` over log(row length): 1 for uniform rows."""
    h = -(p * p.clamp_min(1e-30).log()).sum(-1)
    return float(h.mean() / math.log(p.shape[-1])) if p.shape[-1] > 1 else 1.0

"""Multi-head cross-attention that also returns its attention weights (for per-patch evidence)."""

from __future__ import annotations

import math

import torch
from torch import nn


class CrossAttention(nn.Module):
    """Queries (C, H) attend over keys/values (N, H); ``heads`` heads of size H / heads.

    ``log_prior`` (N,), optional, is added to every attention logit: the
    attention to instance j is multiplied by exp(log_prior_j) and renormalised.
    Returns ``(out (C, H), weights (heads, C, N))``; no residual, no dropout.
    The weights are computed explicitly (cheap: C is the number of classes) so
    that every forward pass yields per-class patch attention.
    """

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"hidden dim {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.o_proj = nn.Linear(dim, dim)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        """(L, H) → (heads, L, H / heads)."""
        return x.reshape(x.shape[0], self.heads, -1).transpose(0, 1)

    def forward(
        self, queries: torch.Tensor, keys: torch.Tensor, log_prior: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        q = self._split(self.q_proj(queries))
        k = self._split(self.k_proj(keys))
        v = self._split(self.v_proj(keys))
        logits = q @ k.transpose(1, 2) / math.sqrt(q.shape[-1])
        if log_prior is not None:
            logits = logits + log_prior
        weights = torch.softmax(logits, dim=-1)
        out = (weights @ v).transpose(0, 1).reshape(queries.shape[0], -1)
        return self.o_proj(out), weights


class SharedScorer(nn.Sequential):
    """LayerNorm → Linear → ReLU → Linear(·, 1): one logit per class-conditioned summary (C, H) → (C,)."""

    def __init__(self, dim: int):
        super().__init__(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, 1))

    def forward(self, summaries: torch.Tensor) -> torch.Tensor:
        return super().forward(summaries).squeeze(-1)

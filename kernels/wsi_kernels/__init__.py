"""Compute kernels of wsi-engine, importable without the rest of the engine.

* :func:`sinkhorn` — batched entropic Sinkhorn (plain, log-domain, unbalanced) in Numba, CPU.
* :func:`sinkhorn_torch` — its differentiable torch twin (CPU/CUDA, float32/float64, autocast-safe).
  Imported lazily: ``import wsi_kernels`` does not import torch.
* :func:`transport_scores` — batched scores ``x^T T y`` of per-problem Sinkhorn plans with a shared
  cost, differentiable; on the CPU a Numba forward and a Numba backward (adjoint of the unrolled
  iterations), elsewhere the torch twin.  Imported lazily as well.
* :class:`SinkhornInfo` — cost, iterations and marginal error returned with ``return_info=True``.

Numba compiles the kernels on first use and caches them on disk (``NUMBA_CACHE_DIR`` if set, else
``__pycache__`` next to this package); the thread count follows ``NUMBA_NUM_THREADS``.
"""

from __future__ import annotations

from typing import Any

from ._common import SinkhornInfo
from .sinkhorn_numba import sinkhorn

__all__ = ["SinkhornInfo", "sinkhorn", "sinkhorn_torch", "transport_scores"]


def __getattr__(name: str) -> Any:
    """Import the torch-based functions on first access so that torch stays optional."""
    if name == "sinkhorn_torch":
        from .torch_twin import sinkhorn_torch

        return sinkhorn_torch
    if name == "transport_scores":
        from .transport_score import transport_scores

        return transport_scores
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Compute kernels of wsi-engine, importable without the rest of the engine.

* :func:`sinkhorn` — batched entropic Sinkhorn (plain, log-domain, unbalanced) in Numba, CPU.
* :func:`sinkhorn_torch` — its differentiable torch twin (CPU/CUDA, float32/float64, autocast-safe).
  Imported lazily: ``import kernels`` does not import torch.
* :class:`SinkhornInfo` — cost, iterations and marginal error returned with ``return_info=True``.

Numba compiles the kernels on first use and caches them on disk (``NUMBA_CACHE_DIR`` if set, else
``__pycache__`` next to this package); the thread count follows ``NUMBA_NUM_THREADS``.
"""

from __future__ import annotations

from typing import Any

from ._common import SinkhornInfo
from .sinkhorn_numba import sinkhorn

__all__ = ["SinkhornInfo", "sinkhorn", "sinkhorn_torch"]


def __getattr__(name: str) -> Any:
    """Import the torch twin on first access so that torch stays optional."""
    if name == "sinkhorn_torch":
        from .torch_twin import sinkhorn_torch

        return sinkhorn_torch
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Batched transport scores ``s_p = x_p^T T_p y_p`` with ``T_p = Sinkhorn(a_p, b_p, M)``, differentiable.

Libra-MIL's per-instance fusion (``sot-instance``) solves one small problem per patch: the plan
between that patch's text and visual prototype marginals, under a cost ``M`` shared by the bag.
Two implementations with the same results:

* ``backend="numba"`` (CPU): :mod:`wsi_kernels._numba_scores`.  The forward pass iterates block by
  block and contracts the scalings with ``x`` and ``y`` directly (no plan is formed); the backward
  pass is the adjoint of the unrolled iterations, recomputed block by block.  Nothing the size of
  the batch times the iteration count is kept between the passes: only the inputs.
* ``backend="torch"``: :func:`wsi_kernels.sinkhorn_torch` and an ``einsum`` under autograd (any
  device; every iteration is recorded).

``backend="auto"`` picks Numba for CPU tensors and torch otherwise.  The Numba backend uses at most
torch's intra-op thread count (``torch.set_num_threads``, the command line's ``--threads``).
"""

from __future__ import annotations

from contextlib import contextmanager

import numba
import numpy as np
import torch

from ._common import check_entries, check_masses, choose_method
from ._numba_scores import row_sums_and_range, score_backward, score_forward
from .torch_twin import sinkhorn_torch

BACKENDS = ("auto", "numba", "torch")
_F64 = np.finfo(np.float64)


def transport_scores(
    x: torch.Tensor,
    y: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    M: torch.Tensor,
    reg: float,
    num_iter: int,
    backend: str = "auto",
) -> torch.Tensor:
    """(B,) scores ``x_p^T T_p y_p``, ``T_p`` the ``num_iter``-step balanced Sinkhorn plan of (a_p, b_p, M).

    Args:
        x: (B, n) and y: (B, m): the vectors the plan is contracted with.
        a: (B, n) and b: (B, m): positive marginals, each row summing to the same mass.
        M: (n, m) cost shared by the batch, non-negative.
        reg: entropic regularisation (units of M).  num_iter: iterations (no tolerance check).
        backend: ``"numba"`` (CPU tensors only), ``"torch"`` or ``"auto"`` (module docstring).

    Gradients flow to all five tensors.  The Numba backend computes in float32 when all five
    tensors are float32 (as the torch twin does), else in float64, and returns the dtype of
    ``x``; it runs the plain scaling iteration, so it refuses (ValueError) costs with
    ``max(M) / reg`` beyond the float64 plain-iteration bound (354), where the torch twin would
    switch to the log domain.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    on_cpu = all(t.device.type == "cpu" for t in (x, y, a, b, M))
    if backend == "numba" and not on_cpu:
        raise ValueError("backend='numba' needs CPU tensors; use backend='torch' on a GPU")
    if backend == "torch" or not on_cpu:
        plan = sinkhorn_torch(a, b, M, reg, num_iter=num_iter)
        return torch.einsum("pij,pi,pj->p", plan, x.to(plan.dtype), y.to(plan.dtype)).to(x.dtype)
    return _NumbaScores.apply(x, y, a, b, M, float(reg), int(num_iter))


def _numpy(t: torch.Tensor) -> np.ndarray:
    """The tensor's data as a NumPy array: float32 and float64 as they are (no copy when
    contiguous), other dtypes as float64."""
    t = t.detach()
    if t.dtype not in (torch.float32, torch.float64):
        t = t.to(torch.float64)
    return t.contiguous().numpy()


def _check_inputs(a: np.ndarray, b: np.ndarray, M: np.ndarray, reg: float) -> None:
    """The rules of :func:`wsi_kernels.sinkhorn` for a balanced plain solve (ValueError
    otherwise)."""
    sums = []
    for name, t in (("a", a), ("b", b), ("M", M)):
        row_sums, low, high = row_sums_and_range(t)
        check_entries(name, np.isfinite(low) and np.isfinite(high), low)
        sums.append(row_sums)
    check_masses(sums[0], sums[1], True)
    if choose_method("auto", high / reg, _F64.max, _F64.tiny) != "plain":
        raise ValueError(
            f"max(M)/reg = {high / reg:.4g} is beyond the plain Sinkhorn iteration in float64 "
            "(354): use backend='torch' (log domain) or a larger reg"
        )


@contextmanager
def _torch_thread_count():
    """Run Numba on at most torch's intra-op thread count (``--threads`` governs both)."""
    previous = numba.get_num_threads()
    numba.set_num_threads(max(1, min(previous, torch.get_num_threads())))
    try:
        yield
    finally:
        numba.set_num_threads(previous)


class _NumbaScores(torch.autograd.Function):
    """Autograd wrapper: input checks, Numba forward and backward
    (:mod:`wsi_kernels._numba_scores`)."""

    @staticmethod
    def forward(ctx, x, y, a, b, M, reg, num_iter):
        arrays = [_numpy(t) for t in (x, y, a, b, M)]
        ctx.save_for_backward(x, y, a, b, M)
        ctx.reg, ctx.num_iter = reg, num_iter
        _check_inputs(*arrays[2:], reg)
        with _torch_thread_count():
            scores = score_forward(*arrays, reg, num_iter, numba.get_num_threads())
        return torch.from_numpy(scores).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        x, y, a, b, M = ctx.saved_tensors
        with _torch_thread_count():
            ga, gb, gx, gy, gM = score_backward(
                _numpy(M), _numpy(a), _numpy(b), _numpy(x), _numpy(y), _numpy(grad),
                ctx.reg, ctx.num_iter, numba.get_num_threads(),
            )  # fmt: skip
        out = [torch.from_numpy(g) for g in (gx, gy, ga, gb, gM)]
        dtypes = [t.dtype for t in (x, y, a, b, M)]
        return (*(g.to(d) for g, d in zip(out, dtypes, strict=True)), None, None)

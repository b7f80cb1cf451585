"""NumPy front end of the Numba Sinkhorn kernels: one POT-like call for one problem or a batch."""

from __future__ import annotations

from typing import Any, Unpack

import numba
import numpy as np

from . import _numba_fixed as _nf
from . import _numba_kernels as _nk
from ._common import (
    Options,
    SinkhornInfo,
    SolverOptions,
    batch_shape,
    check_entries,
    check_masses,
    choose_method,
    package,
    parse_options,
)

_F64 = np.finfo(np.float64)


def sinkhorn(
    a: Any,
    b: Any,
    M: Any,
    reg: float,
    *,
    return_info: bool = False,
    **options: Unpack[SolverOptions],
) -> np.ndarray | tuple[np.ndarray, SinkhornInfo]:
    r"""Entropic optimal transport plan(s) by Sinkhorn iterations (Numba, CPU, parallel over B).

    Solves, for each problem, :math:`\min_P \langle P, M\rangle + \mathrm{reg}\,\Omega(P)` with
    :math:`\Omega(P) = \sum P_{ij}(\log P_{ij} - 1)`, subject to ``P 1 = a`` and ``P^T 1 = b``
    (balanced, ``reg_m=None``), or with the constraints replaced by
    ``reg_m * KL(P 1 | a) + reg_m * KL(P^T 1 | b)`` (unbalanced).  Same problem as POT's
    ``ot.sinkhorn(a, b, M, reg)`` and ``ot.unbalanced.sinkhorn_unbalanced(a, b, M, reg, reg_m)``.

    Iteration: ``u = a / (K v)``, then ``v = b / (K^T u)``, from ``v = 1``, with
    ``K = exp(-M / reg)`` (rows first, like POT's unbalanced and batched solvers;
    ``ot.sinkhorn(b, a, M.T, reg, numItermax=k, stopThr=0).T`` gives the same k-step plan).
    In the balanced case the column sums equal ``b`` after the last step and the row sums
    approach ``a``.  Threads: ``NUMBA_NUM_THREADS`` (or ``numba.set_num_threads``); batches of
    fewer than 64 problems run on the calling thread.

    Args:
        a: source marginal, (n,) or (B, n), non-negative, finite.
        b: target marginal, (m,) or (B, m), non-negative, finite.
        M: cost matrix, (n, m) shared by the whole batch or (B, n, m); non-negative, finite.
            Unbatched ``a``/``b``/``M`` are shared by every problem of a batch.
        reg: entropic regularisation, > 0, in the units of ``M``.
        options (keywords; :class:`wsi_kernels._common.SolverOptions`, defaults below):
        num_iter: (None) exactly this many iterations, no tolerance check (Libra-MIL uses 20).
        tol: (1e-9) when ``num_iter`` is None, each problem stops at the first iteration whose
            marginal error (see :class:`SinkhornInfo`; balanced: ``||P 1 - a||_2``) is < tol.
        max_iter: (1000) iteration cap in tolerance mode.
        method: (``"auto"``) ``"plain"`` (scaling iteration), ``"log"`` (log-domain, stable for any reg) or
            ``"auto"``: plain when ``max(M) / reg <= log(float64 max) / 2`` (about 354), else
            log; problems whose plain iteration still over/underflows are re-solved in the log
            domain.  An explicit ``"plain"`` raises ValueError when ``max(M) / reg > 708`` (the
            kernel ``exp(-M/reg)`` would underflow) and FloatingPointError if the iteration
            produces non-finite values.
        reg_m: (None) None for the balanced problem; a number or a (rows, columns) pair (``inf`` = hard
            constraint on that side) for KL-relaxed marginals.
        reg_type: (``"kl"``) reference of the entropic term in the unbalanced problem, as in POT >= 0.9.5:
            ``"kl"`` (default, ``reg * KL(P | a b^T)``) or ``"entropy"`` (``reg * KL(P | 1)``).
            It does not change the balanced plan.
        return_info: also return a :class:`SinkhornInfo` (cost, n_iter, marginal_error).

    Mass rule: every marginal needs a positive total.  Balanced problems refuse (ValueError
    quoting both sums) marginals whose totals differ by more than a relative 1e-6; nothing is
    normalised silently.  Unbalanced problems accept any totals.

    Precision: the kernels compute in float64; the plan is float32 only when ``a``, ``b`` and
    ``M`` are all float32, else float64.

    Returns:
        The plan, (n, m) or (B, n, m), or ``(plan, info)`` with ``return_info=True``.

    Raises:
        ValueError: bad shapes, options, non-finite/negative entries, or masses (see above).
    """
    a, b, M = (_as_real_array(name, x) for name, x in (("a", a), ("b", b), ("M", M)))
    out_dtype = np.float32 if all(x.dtype == np.float32 for x in (a, b, M)) else np.float64
    B, n, m = batch_shape(a.shape, b.shape, M.shape)
    opts = parse_options(reg, **options)
    for name, x in (("a", a), ("b", b), ("M", M)):
        low, high = float(x.min()), float(x.max())  # NaN and inf show in the extremes
        check_entries(name, np.isfinite(low) and np.isfinite(high), low)
    max_cost = high  # of M, the last one checked
    check_masses(a.sum(axis=-1), b.sum(axis=-1), opts.balanced)

    size = 1 if B is None else B
    a2 = _nk.kernel_input(a, np.float64, (size, n))
    b2 = _nk.kernel_input(b, np.float64, (size, m))
    M3 = _nk.kernel_input(M.reshape(-1, n, m), np.float64)
    chosen = choose_method(opts.method, max_cost / opts.reg, _F64.max, _F64.tiny)
    plan, cost, n_iter, err = _solve(chosen, M3, a2, b2, opts)
    if chosen == "plain":
        chosen = _repair_overflow(opts, M3, a2, b2, plan, cost, n_iter, err)

    plan = plan.astype(out_dtype, copy=False)
    return package(plan, cost, n_iter, err, chosen, B is not None, return_info)


def _as_real_array(name: str, x: Any) -> np.ndarray:
    """``np.asarray(x)``, refusing anything that is not real numbers."""
    arr = np.asarray(x)
    if arr.dtype == np.bool_ or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise ValueError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    return arr


def _solve(method: str, M3: np.ndarray, a2: np.ndarray, b2: np.ndarray, opts: Options) -> tuple:
    """Run one kernel on a prepared batch; returns ``(plan, cost, n_iter, err)``.

    Balanced plain solves with a fixed iteration count (Libra-MIL's case) go to the dedicated
    kernel of :mod:`wsi_kernels._numba_fixed`; everything else to :mod:`wsi_kernels._numba_kernels`.
    """
    size, n, m = a2.shape[0], a2.shape[1], b2.shape[1]
    plan = np.empty((size, n, m))
    cost, err = np.empty(size), np.empty(size)
    n_iter = np.empty(size, dtype=np.int64)
    out = (plan, cost, n_iter, err)
    threads = numba.get_num_threads()
    if method == "plain" and opts.balanced and not opts.check_tol:
        chunks = _nf.chunks_for(size, threads)
        if chunks == 1:
            _nf.solve_blocks(M3, a2, b2, opts.reg, opts.iters, (0, -(-size // _nf.LANES)), out)
        else:
            _nf.sinkhorn_fixed(M3, a2, b2, opts.reg, opts.iters, chunks, *out)
        return out
    lanes, chunks = _nk.schedule(size, threads)
    args = (M3, a2, b2, opts.reg, opts.fi_a, opts.fi_b, opts.kl_ref, opts.iters, opts.check_tol)
    args += (opts.tol, method == "log", lanes)
    if chunks == 1:
        _nk.solve_blocks(*args, (0, -(-size // lanes)), out)
    else:
        _nk.sinkhorn_batch(*args, chunks, *out)
    return out


def _repair_overflow(opts, M3, a2, b2, plan, cost, n_iter, err) -> str:
    """Handle plain-iteration problems that produced non-finite values (in place).

    ``method="auto"`` re-solves them in the log domain; an explicit ``"plain"`` raises
    FloatingPointError naming them.  Returns the method label for :class:`SinkhornInfo`.
    """
    bad = np.flatnonzero(~(np.isfinite(cost) & np.isfinite(err)))
    if bad.size == 0:
        return "plain"
    if opts.method == "plain":
        raise FloatingPointError(
            f"plain Sinkhorn over/underflowed for {bad.size} problem(s) (first: {bad[0]}); "
            "use method='log' or 'auto'"
        )
    sub_M = M3 if M3.shape[0] == 1 else M3[bad]
    sub = _solve("log", sub_M, a2[bad], b2[bad], opts)
    for full, part in zip((plan, cost, n_iter, err), sub, strict=True):
        full[bad] = part
    return "plain+log"

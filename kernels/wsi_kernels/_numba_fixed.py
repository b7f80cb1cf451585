"""Numba kernel for the common case: balanced plain Sinkhorn with a fixed iteration count.

This is what Libra-MIL runs (20 iterations, no tolerance check), so it has its own kernel, written
with the explicit vectors of :mod:`wsi_kernels._simd` instead of relying on the loop vectoriser.

Layout: :data:`LANES` problems are solved together; entry (i, j) of the block's kernel matrix is
the ``LANES`` values ``K[(i * m + j) * LANES : ... + LANES]``, two vectors; when ``n < m`` the
block holds ``K^T`` instead, so that the row loop runs over the longer side.  Rows are padded with
zeros to a multiple of :data:`ROWS`, so the row loop needs no remainder (a zero row of ``K`` with a
zero marginal gives ``u = 0`` and adds nothing).

One iteration is one pass over ``K`` per block of :data:`ROWS` rows (:func:`_row_pass`): the row
products ``s = K v`` of the block, its scalings ``u = a / s``, and at once their contribution
``K^T u`` to the column products, then ``v = b / (K^T u)``.  That is the sequence of
:func:`wsi_kernels._numba_kernels.sinkhorn_batch` (``u`` first, from ``v = 1``); only the order of
the additions differs (fused multiply-adds, row by row), a few ulps.  Each ``K`` vector is loaded
twice per iteration and each ``v``, ``u`` and column product once per row block, so the loop runs at
about one vector FMA per load instead of one per three.

After the last iteration the plan ``P = diag(u) K diag(v)`` is formed with its cost ``<P, M>`` and
marginal error ``||P 1 - a||_2`` (the balanced form of the error the general kernels report).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._numba_kernels import (
    _JIT,
    _JIT_PARALLEL,
    CHUNKS_PER_THREAD,
    PARALLEL_MIN_BATCH,
    _from_lanes,
    _to_lanes,
)
from ._simd import WIDTH, vadd, vexp, vfma, vload, vmul, vratio, vsplat, vsqrt, vstore, vsub

#: Problems per block: two vectors, so every loop body has two independent chains.
LANES = 2 * WIDTH
#: Rows per step of the row pass: their row products share the loads of ``v``.
ROWS = 4


def chunks_for(batch: int, threads: int) -> int:
    """Parallel chunks for ``batch`` problems; 1 means: call :func:`solve_blocks` directly."""
    if batch < PARALLEL_MIN_BATCH or threads <= 1:
        return 1
    return min(-(-batch // LANES), CHUNKS_PER_THREAD * threads)


@njit(**_JIT)
def _kernel_matrix(Ms, n, m, reg, transposed, K):
    """``K = exp(-Ms / reg)`` for the block's (n, m) costs, stored as (m, n) when ``transposed``."""
    factor = vsplat(-1.0 / reg)
    for i in range(n):
        for j in range(m):
            k = (j * n + i) * LANES if transposed else (i * m + j) * LANES
            o = (i * m + j) * LANES
            vstore(K, k, vexp(vmul(vload(Ms, o), factor)))
            vstore(K, k + WIDTH, vexp(vmul(vload(Ms, o + WIDTH), factor)))


@njit(**_JIT)
def _column_sums(K, rows, m, col):
    """``col = K^T 1`` (K flat (rows, m, LANES); col flat (m, LANES))."""
    col[:] = 0.0
    for r in range(rows):
        for o in range(0, m * LANES, WIDTH):
            vstore(col, o, vadd(vload(col, o), vload(K, r * m * LANES + o)))


@njit(**_JIT)
def _row_pass(K, rows, m, v, a, u, col):
    """``u = a / (K v)`` for all rows and ``col = K^T u``; ``rows`` is a multiple of ROWS.

    Shapes (flat, lane layout): K (rows, m, LANES), v and col (m, LANES), a and u (rows, LANES).
    """
    W, L, row = WIDTH, LANES, m * LANES
    zero = vsplat(0.0)
    for o in range(0, m * L, W):
        vstore(col, o, zero)
    for r in range(0, rows, ROWS):
        k = r * row
        s00, s01, s10, s11, s20, s21, s30, s31 = zero, zero, zero, zero, zero, zero, zero, zero
        for j in range(m):
            o = k + j * L
            v0, v1 = vload(v, j * L), vload(v, j * L + W)
            s00, s01 = vfma(vload(K, o), v0, s00), vfma(vload(K, o + W), v1, s01)
            s10, s11 = vfma(vload(K, o + row), v0, s10), vfma(vload(K, o + row + W), v1, s11)
            o2, o3 = o + 2 * row, o + 3 * row
            s20, s21 = vfma(vload(K, o2), v0, s20), vfma(vload(K, o2 + W), v1, s21)
            s30, s31 = vfma(vload(K, o3), v0, s30), vfma(vload(K, o3 + W), v1, s31)
        t = r * L
        u00, u01 = vratio(vload(a, t), s00), vratio(vload(a, t + W), s01)
        u10, u11 = vratio(vload(a, t + L), s10), vratio(vload(a, t + L + W), s11)
        u20, u21 = vratio(vload(a, t + 2 * L), s20), vratio(vload(a, t + 2 * L + W), s21)
        u30, u31 = vratio(vload(a, t + 3 * L), s30), vratio(vload(a, t + 3 * L + W), s31)
        vstore(u, t, u00)
        vstore(u, t + W, u01)
        vstore(u, t + L, u10)
        vstore(u, t + L + W, u11)
        vstore(u, t + 2 * L, u20)
        vstore(u, t + 2 * L + W, u21)
        vstore(u, t + 3 * L, u30)
        vstore(u, t + 3 * L + W, u31)
        for j in range(m):
            o, c = k + j * L, j * L
            x0 = vfma(vload(K, o), u00, vload(col, c))
            x0 = vfma(vload(K, o + row), u10, x0)
            x0 = vfma(vload(K, o + 2 * row), u20, x0)
            vstore(col, c, vfma(vload(K, o + 3 * row), u30, x0))
            x1 = vfma(vload(K, o + W), u01, vload(col, c + W))
            x1 = vfma(vload(K, o + row + W), u11, x1)
            x1 = vfma(vload(K, o + 2 * row + W), u21, x1)
            vstore(col, c + W, vfma(vload(K, o + 3 * row + W), u31, x1))


@njit(**_JIT)
def _ratio_into(t, s, out):
    """``out = t / s`` (0 where ``t`` is 0) over flat lane arrays of equal size."""
    for o in range(0, out.size, WIDTH):
        vstore(out, o, vratio(vload(t, o), vload(s, o)))


@njit(**_JIT)
def _plan(K, transposed, Ms, u, v, a, n, m, P, stats):
    """``P = diag(u) K diag(v)``, (n, m); ``stats`` = (cost, marginal error) lanes.

    ``K`` as made by :func:`_kernel_matrix`; ``stats`` is (2, LANES): ``<P, M>`` and
    ``||P 1 - a||_2`` per problem.
    """
    W, L = WIDTH, LANES
    zero = vsplat(0.0)
    for h in range(0, L, W):
        cost, err2 = zero, zero
        for i in range(n):
            ui, row_sum = vload(u, i * L + h), zero
            for j in range(m):
                o = (i * m + j) * L + h
                k = (j * n + i) * L + h if transposed else o
                p = vmul(vmul(ui, vload(K, k)), vload(v, j * L + h))
                vstore(P, o, p)
                cost = vfma(p, vload(Ms, o), cost)
                row_sum = vadd(row_sum, p)
            d = vsub(vload(a, i * L + h), row_sum)
            err2 = vfma(d, d, err2)
        vstore(stats, h, cost)
        vstore(stats, L + h, vsqrt(err2))


@njit(**_JIT)
def solve_blocks(M, a, b, reg, num_iter, blocks, out):
    """Solve the blocks ``range(*blocks)`` of the batch; ``out`` = (plan, cost, n_iter, err).

    The row pass runs over the longer side: for ``n < m`` the block works on ``K^T`` (rows = the
    m columns), and the same sequence ``u_1, v_1, ..., u_k, v_k`` comes from starting with
    ``u_1 = a / (K 1)`` and letting the row pass produce the ``v``'s.
    """
    plan, cost, n_iter, err = out
    B, n, m = plan.shape
    L = LANES
    transposed = n < m
    R, C = (m, n) if transposed else (n, m)
    rows = -(-R // ROWS) * ROWS
    K = np.zeros(rows * C * L)  # padded rows stay 0
    t_rows = np.zeros(rows * L)  # marginal of the rows (b when transposed), 0 on padded rows
    t_cols, x, col, y = np.empty(C * L), np.empty(C * L), np.empty(C * L), np.empty(rows * L)
    Ms, P = np.empty(n * m * L), np.empty(n * m * L)
    stats = np.empty(2 * L)
    for blk in range(blocks[0], blocks[1]):
        first = blk * L
        count = min(L, B - first)
        if M.shape[0] != 1 or blk == blocks[0]:
            _to_lanes(M, first, count, Ms.reshape(n * m, L))
            _kernel_matrix(Ms, n, m, reg, transposed, K)
        _to_lanes(b if transposed else a, first, count, t_rows[: R * L].reshape(R, L))
        _to_lanes(a if transposed else b, first, count, t_cols.reshape(C, L))
        if transposed:
            _column_sums(K, rows, C, col)
            _ratio_into(t_cols, col, x)  # u_1
        else:
            x[:] = 1.0  # v_0
        for k in range(num_iter):
            _row_pass(K, rows, C, x, t_rows, y, col)
            if not transposed or k < num_iter - 1:
                _ratio_into(t_cols, col, x)
        u, v = (x, y) if transposed else (y, x)
        _plan(K, transposed, Ms, u, v, t_cols if transposed else t_rows, n, m, P, stats)
        _from_lanes(P.reshape(n * m, L), first, count, plan)
        for q in range(count):
            cost[first + q] = stats[q]
            err[first + q] = stats[L + q]
            n_iter[first + q] = num_iter


@njit(**_JIT_PARALLEL)
def sinkhorn_fixed(M, a, b, reg, num_iter, nchunks, plan, cost, n_iter, err):
    """Balanced plain Sinkhorn, ``num_iter`` iterations, in parallel over chunks of blocks.

    Args:
        M: (1, n, m) shared or (B, n, m) costs; a: (B, n), b: (B, m) marginals; float64,
            C-contiguous, validated by the caller.
        reg: entropic regularisation (units of M); num_iter: iterations (>= 1).
        nchunks: parallel chunks (:func:`chunks_for`).
        plan: (B, n, m) output; cost, err: (B,) float64 outputs; n_iter: (B,) int64 output.
    """
    nblocks = (plan.shape[0] + LANES - 1) // LANES
    out = (plan, cost, n_iter, err)
    for c in prange(nchunks):
        blocks = (c * nblocks // nchunks, (c + 1) * nblocks // nchunks)
        solve_blocks(M, a, b, reg, num_iter, blocks, out)

"""Numba backward pass of the batched transport score (adjoint of the unrolled Sinkhorn iterations).

For problem ``p`` of a batch, with the cost ``M`` (n, m) shared by the batch and ``K = exp(-M/reg)``:

    v_0 = 1;  for k = 1..L:  z_k = K v_{k-1},  u_k = a / z_k,  w_k = K^T u_k,  v_k = b / w_k
    P = diag(u_L) K diag(v_L),    s = x^T P y

(the iteration of :func:`kernels.sinkhorn` with ``num_iter=L``).  Given ``g = dLoss/ds`` per problem,
:func:`score_backward` returns the gradients of the loss with respect to ``x``, ``y``, ``a``, ``b``
(per problem) and ``M`` (summed over the batch).  It runs the iteration again for a block of
problems, keeping that block's iterates (``L (n + m)`` values per problem, in cache), then sweeps
them in reverse:

    ū_L = g x ⊙ K (v ⊙ y),   v̄_L = g y ⊙ K^T (u ⊙ x),   K̄ += (g x ⊙ u)(y ⊙ v)^T
    for k = L..1:
        b̄ += v̄ / w_k;   w̄ = -v̄ v_k / w_k;   ū += K w̄;          K̄ += u_k w̄^T
        ā += ū / z_k;   z̄ = -ū u_k / z_k;   v̄ = K^T z̄;  ū = 0;  K̄ += z̄ v_{k-1}^T
    M̄ = -K̄ ⊙ K / reg

Memory: the work arrays of one block per parallel chunk (independent of the batch size) plus the
outputs; nothing of size ``B x L`` or ``B x n x m`` is stored.  Layout as in
:mod:`kernels._numba_kernels`: ``LANES`` problems per block, problem index innermost, so every
loop runs over contiguous lanes.  Float64 throughout; marginals must be positive (the callers pass
softmax outputs).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._numba_kernels import _JIT, _JIT_PARALLEL, CHUNKS_PER_THREAD, _from_lanes, _to_lanes
from ._simd import WIDTH, vadd, vdiv, vfma, vload, vmul, vsplat, vstore, vsub

#: Problems per block: two vectors, so every loop body has two independent chains.
LANES = 2 * WIDTH


def chunks_for(batch: int, threads: int) -> int:
    """Parallel chunks for ``batch`` problems (1: run on the calling thread)."""
    blocks = -(-batch // LANES)
    if blocks < 4 or threads <= 1:
        return 1
    return min(blocks, CHUNKS_PER_THREAD * threads)


@njit(**_JIT)
def _matvec(K, v, out, accumulate):
    """``out[i] (+)= sum_j K[i, j] v[j]`` per lane; v (m L,), out (n L,) flat lane arrays."""
    n, m = K.shape
    W, L = WIDTH, LANES
    for i in range(n):
        if accumulate:
            s0, s1 = vload(out, i * L), vload(out, i * L + W)
        else:
            s0, s1 = vsplat(0.0), vsplat(0.0)
        for j in range(m):
            k = vsplat(K[i, j])
            s0 = vfma(k, vload(v, j * L), s0)
            s1 = vfma(k, vload(v, j * L + W), s1)
        vstore(out, i * L, s0)
        vstore(out, i * L + W, s1)


@njit(**_JIT)
def _outer(Kb, r1, c1, r2, c2):
    """``Kb[i, j] += r1[i] c1[j] + r2[i] c2[j]`` per lane; Kb flat (n, m, L)."""
    W, L = WIDTH, LANES
    n, m = r1.size // L, c1.size // L
    for i in range(n):
        a0, a1 = vload(r1, i * L), vload(r1, i * L + W)
        b0, b1 = vload(r2, i * L), vload(r2, i * L + W)
        for j in range(m):
            o, c = (i * m + j) * L, j * L
            vstore(Kb, o, vfma(a0, vload(c1, c), vfma(b0, vload(c2, c), vload(Kb, o))))
            x = vfma(b1, vload(c2, c + W), vload(Kb, o + W))
            vstore(Kb, o + W, vfma(a1, vload(c1, c + W), x))


@njit(**_JIT)
def _scale(t, s, out):
    """``out = t / s`` (flat lane arrays)."""
    for o in range(0, out.size, WIDTH):
        vstore(out, o, vdiv(vload(t, o), vload(s, o)))


@njit(**_JIT)
def _product(x, y, out):
    """``out = x * y`` (flat lane arrays)."""
    for o in range(0, out.size, WIDTH):
        vstore(out, o, vmul(vload(x, o), vload(y, o)))


@njit(**_JIT)
def _adjoint_step(bar, scaling, denom, acc, out):
    """Reverse of ``scaling = target / denom``: ``acc += bar / denom``, ``out = -bar scaling / denom``.

    ``bar`` (the adjoint of ``scaling``) is left at 0.
    """
    zero = vsplat(0.0)
    for o in range(0, out.size, WIDTH):
        r = vdiv(vload(bar, o), vload(denom, o))
        vstore(acc, o, vadd(vload(acc, o), r))
        vstore(out, o, vsub(zero, vmul(r, vload(scaling, o))))
        vstore(bar, o, zero)


@njit(**_JIT)
def _seed(g, x, u, r, xbar, ubar):
    """Adjoints of ``s = x^T diag(u) r`` (r = K (v ⊙ y)): ``xbar = g u r``, ``ubar = g x r``."""
    for o in range(0, x.size, WIDTH):
        gr = vmul(vload(g, o % LANES), vload(r, o))
        vstore(xbar, o, vmul(gr, vload(u, o)))
        vstore(ubar, o, vmul(gr, vload(x, o)))


@njit(**_JIT)
def _backward_blocks(K, KT, a, b, x, y, g, num_iter, blocks, grads, Kb):
    """Gradients for the blocks ``range(*blocks)``; ``K̄`` accumulates lane-wise into ``Kb``."""
    ga, gb, gx, gy = grads
    B, n = a.shape
    m = b.shape[1]
    L = LANES
    ta, tx, tb, ty = np.empty(n * L), np.empty(n * L), np.empty(m * L), np.empty(m * L)
    tg = np.empty(L)
    U, Z = np.empty((num_iter + 1, n * L)), np.empty((num_iter + 1, n * L))
    V, Wk = np.empty((num_iter + 1, m * L)), np.empty((num_iter + 1, m * L))
    rows, cols = np.empty((5, n * L)), np.empty((5, m * L))
    ubar, zbar, abar, xbar, rn = rows[0], rows[1], rows[2], rows[3], rows[4]
    vbar, wbar, bbar, ybar, rm = cols[0], cols[1], cols[2], cols[3], cols[4]
    for blk in range(blocks[0], blocks[1]):
        first = blk * L
        count = min(L, B - first)
        _to_lanes(a, first, count, ta.reshape(n, L))
        _to_lanes(b, first, count, tb.reshape(m, L))
        _to_lanes(x, first, count, tx.reshape(n, L))
        _to_lanes(y, first, count, ty.reshape(m, L))
        _to_lanes(g, first, count, tg.reshape(1, L))
        tg[count:] = 0.0  # repeated lanes must not add to the shared cost gradient
        V[0] = 1.0
        for k in range(1, num_iter + 1):
            _matvec(K, V[k - 1], Z[k], False)
            _scale(ta, Z[k], U[k])
            _matvec(KT, U[k], Wk[k], False)
            _scale(tb, Wk[k], V[k])
        u, v = U[num_iter], V[num_iter]
        # s = x^T diag(u) K diag(v) y: seed the adjoints and the plan's share of K̄
        _product(v, ty, rm)
        _matvec(K, rm, rn, False)  # K (v ⊙ y)
        _seed(tg, tx, u, rn, xbar, ubar)
        _product(u, tx, rn)
        _matvec(KT, rn, wbar, False)  # K^T (u ⊙ x)
        _seed(tg, ty, v, wbar, ybar, vbar)
        for o in range(n * L):
            zbar[o] = tg[o % L] * tx[o] * u[o]
        wbar[:] = 0.0
        _outer(Kb, zbar, rm, zbar, wbar)
        abar[:] = 0.0
        bbar[:] = 0.0
        for k in range(num_iter, 0, -1):
            _adjoint_step(vbar, V[k], Wk[k], bbar, wbar)  # v_k = b / w_k
            _matvec(K, wbar, ubar, True)  # w_k = K^T u_k
            _adjoint_step(ubar, U[k], Z[k], abar, zbar)  # u_k = a / z_k
            _matvec(KT, zbar, vbar, False)  # z_k = K v_{k-1}
            _outer(Kb, U[k], wbar, zbar, V[k - 1])
        _from_lanes(abar.reshape(n, L), first, count, ga)
        _from_lanes(bbar.reshape(m, L), first, count, gb)
        _from_lanes(xbar.reshape(n, L), first, count, gx)
        _from_lanes(ybar.reshape(m, L), first, count, gy)


@njit(**_JIT_PARALLEL)
def _backward(K, a, b, x, y, g, num_iter, nchunks, ga, gb, gx, gy, Kbar):
    """Parallel over chunks of blocks; ``Kbar`` (nchunks, n, m) receives each chunk's ``K̄``."""
    nblocks = (a.shape[0] + LANES - 1) // LANES
    n, m = K.shape
    KT = np.ascontiguousarray(K.T)
    grads = (ga, gb, gx, gy)
    for c in prange(nchunks):
        Kb = np.zeros(n * m * LANES)
        _backward_blocks(
            K, KT, a, b, x, y, g, num_iter,
            (c * nblocks // nchunks, (c + 1) * nblocks // nchunks), grads, Kb,
        )  # fmt: skip
        for i in range(n):
            for j in range(m):
                Kbar[c, i, j] = Kb[(i * m + j) * LANES : (i * m + j + 1) * LANES].sum()


def score_backward(
    M: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    g: np.ndarray,
    reg: float,
    num_iter: int,
    threads: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Gradients ``(ā, b̄, x̄, ȳ, M̄)`` of ``sum_p g_p s_p`` (module docstring).

    The iterations run in float64 whatever the inputs; the per-problem gradients come back in
    float32 when all of ``a``, ``b``, ``x``, ``y`` are float32 (no float64 copies of the batch are
    made then), else in float64.  ``M̄`` is float64.

    Args:
        M: (n, m) shared cost.  a, x: (B, n).  b, y: (B, m).  g: (B,) upstream gradient.
        reg: entropic regularisation; num_iter: Sinkhorn iterations of the forward pass.
        threads: Numba threads available (chooses the number of parallel chunks).
    """
    M = np.ascontiguousarray(M, dtype=np.float64)
    dtype = np.result_type(a, b, x, y, np.float32)  # float32 stays float32, else float64
    a, b, x, y, g = (np.ascontiguousarray(t, dtype=dtype) for t in (a, b, x, y, g))
    K = np.exp(M / -reg)
    B, n = a.shape
    m = b.shape[1]
    nchunks = chunks_for(B, threads)
    ga, gx = np.empty((B, n), dtype), np.empty((B, n), dtype)
    gb, gy = np.empty((B, m), dtype), np.empty((B, m), dtype)
    Kbar = np.empty((nchunks, n, m))
    _backward(K, a, b, x, y, g, num_iter, nchunks, ga, gb, gx, gy, Kbar)
    gM = Kbar.sum(axis=0) * K / -reg
    return ga, gb, gx, gy, gM

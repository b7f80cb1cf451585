"""Numba forward and backward of the batched transport score (shared cost, fixed iteration count).

For problem ``p`` of a batch, with the cost ``M`` (n, m) shared by the batch and ``K = exp(-M/reg)``:

    v_0 = 1;  for k = 1..L:  z_k = K v_{k-1},  u_k = a / z_k,  w_k = K^T u_k,  v_k = b / w_k
    P = diag(u_L) K diag(v_L),    s = x^T P y = (x ⊙ u_L)^T K (v_L ⊙ y)

(the iteration of :func:`wsi_kernels.sinkhorn` and of the torch twin with ``num_iter=L``; the
plan is never formed).  :func:`score_forward` returns ``s`` per problem.  Given ``g = dLoss/ds`` per
problem, :func:`score_backward` returns the gradients with respect to ``x``, ``y``, ``a``, ``b``
(per problem) and ``M`` (summed over the batch): the adjoint of the unrolled iterations.  It runs
the iteration again for a block of problems, keeping that block's iterates, then sweeps them in
reverse:

    ū_L = g x ⊙ K (v ⊙ y),   v̄_L = g y ⊙ K^T (u ⊙ x),   K̄ += (g x ⊙ u)(y ⊙ v)^T
    for k = L..1:
        b̄ += v̄ / w_k;   w̄_k = -v̄ v_k / w_k;   ū += K w̄_k;          K̄ += u_k w̄_k^T
        ā += ū / z_k;   z̄_k = -ū u_k / z_k;   v̄ = K^T z̄_k;  ū = 0;  K̄ += z̄_k v_{k-1}^T
    M̄ = -K̄ ⊙ K / reg

The ``2 L + 1`` rank-one terms of K̄ are not added one by one: the block keeps them as two stacks
of vectors (``A`` (2L+1, n) and ``B`` (2L+1, m) per lane) and contracts them once at the end of
the block (:func:`_contract`), with the sums held in registers.  Each scaling is computed as
``u = a (1 / z)`` (one division), and the iteration keeps ``1 / z_k`` and ``1 / w_k``, so the
reverse sweep multiplies instead of dividing.

Layout: :data:`LANES` problems per block with the problem index innermost, so every vector
operation covers 16 problems whatever ``n`` and ``m`` are; ``K`` is shared, so its entries are
broadcast scalars (460 of them for 46 x 10: the whole matrix stays in L1).  Products with ``K``
or ``K^T`` finish their rows as they go (the scaling's division, or the adjoint step:
:func:`_finish`); products with ``K`` run five columns at a time over whole rows
(:func:`_columns_then`), those with ``K^T`` five rows at a time (:func:`_matvec_then`): the fast
way round for a tall ``K`` (n >= m, as the model's 46 x 10; other shapes are right, only
slower).  Blocks are
split into chunks, one ``prange`` task per chunk with one flat work array (about
(3 L + 7)(n + m) LANES values: 0.3 MB in float32 for 46 x 10 and L = 20); the kernels address
its vectors by offset, never through array views, whose reference counts would cost more than a
short product.  Memory does not grow with the batch beyond the outputs:
nothing of size ``B x L`` or ``B x n x m`` exists.  Arithmetic in float32 when the cost and the
batch are all float32 (as the torch twin computes for such inputs: 8 lanes per AVX2 register
instead of 4), else in float64; ``K̄`` is summed over the blocks in float64.  Marginals must be
non-negative with positive ``K v`` (the callers pass softmax outputs).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._numba_kernels import (
    _JIT,
    _JIT_PARALLEL,
    CHUNKS_PER_THREAD,
    _from_lanes,
    _to_lanes,
    kernel_input,
)
from ._simd import WIDTH, vadd, vfma, vload, vmul, vrecip, vsplat, vstore, vsub, vzero

#: Problems per block: two vectors, so every loop body has independent chains.
LANES = 2 * WIDTH


def chunks_for(batch: int, threads: int) -> int:
    """Parallel chunks for ``batch`` problems (1: one chunk, still run through the kernel)."""
    blocks = -(-batch // LANES)
    if blocks < 4 or threads <= 1:
        return 1
    return min(blocks, CHUNKS_PER_THREAD * threads)


#: Epilogues of :func:`_matvec_then` (what is done with each row's sum ``s``).
SCALING, ADJOINT, PLAIN = 0, 1, 2


@njit(**_JIT)
def _finish(step, o, s, wk, t, p, acc, out):
    """The epilogue ``step`` for the vector of sums ``s`` at flat offset ``o`` of the operands
    (vectors of the work array ``wk`` that start at the offsets ``t``, ``p``, ``acc``, ``out``).

    SCALING: ``s`` is ``K v``: ``acc = 1 / s`` (kept for the backward), ``out = t acc``, the
    scaling ``t / s``.  ADJOINT: ``s`` is the adjoint of the scaling ``t = target p``
    (``p = 1 / denominator``): ``r = s p``, ``acc += r``, ``out = -r t`` (the adjoint of the
    denominator).  PLAIN: ``out = s``.
    """
    if step == SCALING:
        inverse = vrecip(s)
        vstore(wk, acc + o, inverse)
        vstore(wk, out + o, vmul(vload(wk, t + o), inverse))
    elif step == ADJOINT:
        r = vmul(s, vload(wk, p + o))
        vstore(wk, acc + o, vadd(vload(wk, acc + o), r))
        vstore(wk, out + o, vsub(vzero(wk), vmul(r, vload(wk, t + o))))
    else:
        vstore(wk, out + o, s)


@njit(**_JIT)
def _finish_row(step, row, rows, s0, s1, wk, t, p, acc, out):
    """:func:`_finish` for the two vectors of ``row`` when it is a real row (< ``rows``)."""
    if row < rows:
        _finish(step, row * LANES, s0, wk, t, p, acc, out)
        _finish(step, row * LANES + WIDTH, s1, wk, t, p, acc, out)


@njit(**_JIT)
def _matvec_then(K, wk, src, accumulate, init, step, t, p, acc, out):
    """``s_i = (init_i +) sum_j K[i, j] src_j`` per lane, then the epilogue ``step`` (:func:`_finish`)
    on each row's sums.

    The operands are lane vectors of the flat work array ``wk`` given by their offsets: ``src``
    (C LANES elements), the others (R LANES); offsets rather than array views, whose reference
    counts would cost more than a short product.  Five rows at a time: ten independent sums
    sharing the loads of ``src``, enough to hide the latency of the fused multiply-adds; the
    epilogue (divisions included) of a group overlaps the next group's multiply-adds.  Rows past
    the last repeat it and are not finished.
    """
    R, C = K.shape
    W, L = WIDTH, LANES
    for r in range(0, R, 5):
        r1, r2, r3, r4 = min(r + 1, R - 1), min(r + 2, R - 1), min(r + 3, R - 1), min(r + 4, R - 1)
        if accumulate:
            s00, s01 = vload(wk, init + r * L), vload(wk, init + r * L + W)
            s10, s11 = vload(wk, init + r1 * L), vload(wk, init + r1 * L + W)
            s20, s21 = vload(wk, init + r2 * L), vload(wk, init + r2 * L + W)
            s30, s31 = vload(wk, init + r3 * L), vload(wk, init + r3 * L + W)
            s40, s41 = vload(wk, init + r4 * L), vload(wk, init + r4 * L + W)
        else:
            s00 = s01 = s10 = s11 = s20 = s21 = s30 = s31 = s40 = s41 = vzero(wk)
        for j in range(C):
            x0, x1 = vload(wk, src + j * L), vload(wk, src + j * L + W)
            k = vsplat(K[r, j])
            s00, s01 = vfma(k, x0, s00), vfma(k, x1, s01)
            k = vsplat(K[r1, j])
            s10, s11 = vfma(k, x0, s10), vfma(k, x1, s11)
            k = vsplat(K[r2, j])
            s20, s21 = vfma(k, x0, s20), vfma(k, x1, s21)
            k = vsplat(K[r3, j])
            s30, s31 = vfma(k, x0, s30), vfma(k, x1, s31)
            k = vsplat(K[r4, j])
            s40, s41 = vfma(k, x0, s40), vfma(k, x1, s41)
        _finish_row(step, r, R, s00, s01, wk, t, p, acc, out)
        _finish_row(step, r + 1, R, s10, s11, wk, t, p, acc, out)
        _finish_row(step, r + 2, R, s20, s21, wk, t, p, acc, out)
        _finish_row(step, r + 3, R, s30, s31, wk, t, p, acc, out)
        _finish_row(step, r + 4, R, s40, s41, wk, t, p, acc, out)


@njit(**_JIT)
def _axpy2(k, x0, x1, s0, s1):
    """``(s0 + k x0, s1 + k x1)`` for the two vectors of a row, each rounded once."""
    kk = vsplat(k)
    return vfma(kk, x0, s0), vfma(kk, x1, s1)


@njit(**_JIT)
def _columns_then(K, wk, src, init, step, t, p, acc, out):
    """:func:`_matvec_then` for a tall ``K`` with few columns (the 46 x 10 cost): the same sums in
    the same order, five columns at a time, always from ``init`` (a row of zeros for none).

    The five columns' ``src`` vectors stay in registers while every row's partial sums (kept in
    ``out``) take their five multiply-adds; the last group of columns finishes the rows.  A row
    is one long loop with no rows repeated, where five-row groups over ten columns would spend
    more on each group's set-up and finish than on its multiply-adds.  Columns past the last
    multiply a zero vector (adding exactly 0).
    """
    R, C = K.shape
    W, L = WIDTH, LANES
    zero = vzero(wk)
    for c in range(0, C, 5):
        c1, c2, c3, c4 = min(c + 1, C - 1), min(c + 2, C - 1), min(c + 3, C - 1), min(c + 4, C - 1)
        x00, x01 = vload(wk, src + c * L), vload(wk, src + c * L + W)
        x10, x11 = vload(wk, src + c1 * L), vload(wk, src + c1 * L + W)
        x20, x21 = vload(wk, src + c2 * L), vload(wk, src + c2 * L + W)
        x30, x31 = vload(wk, src + c3 * L), vload(wk, src + c3 * L + W)
        x40, x41 = vload(wk, src + c4 * L), vload(wk, src + c4 * L + W)
        if c + 4 >= C:  # the repeated columns add nothing
            x10, x11 = (x10, x11) if c + 1 < C else (zero, zero)
            x20, x21 = (x20, x21) if c + 2 < C else (zero, zero)
            x30, x31 = (x30, x31) if c + 3 < C else (zero, zero)
            x40, x41 = (x40, x41) if c + 4 < C else (zero, zero)
        last, partial = c + 5 >= C, init if c == 0 else out
        for i in range(R):
            o = i * L
            s0, s1 = vload(wk, partial + o), vload(wk, partial + o + W)
            s0, s1 = _axpy2(K[i, c], x00, x01, s0, s1)
            s0, s1 = _axpy2(K[i, c1], x10, x11, s0, s1)
            s0, s1 = _axpy2(K[i, c2], x20, x21, s0, s1)
            s0, s1 = _axpy2(K[i, c3], x30, x31, s0, s1)
            s0, s1 = _axpy2(K[i, c4], x40, x41, s0, s1)
            if last:
                _finish_row(step, i, R, s0, s1, wk, t, p, acc, out)
            else:
                vstore(wk, out + o, s0)
                vstore(wk, out + o + W, s1)


@njit(**_JIT)
def _product(wk, x, y, out, size):
    """``out = x * y`` over ``size`` elements (offsets into the work array ``wk``)."""
    for o in range(0, size, WIDTH):
        vstore(wk, out + o, vmul(vload(wk, x + o), vload(wk, y + o)))


@njit(**_JIT)
def _lane_rows(wk, offset, rows):
    """The (rows, LANES) view of the work array from ``offset`` (for the layout changes)."""
    return wk[offset : offset + rows * LANES].reshape(rows, LANES)


@njit(**_JIT)
def _problem_to_lanes(a, x, b, y, first, count, lanes_a, lanes_x, lanes_b, lanes_y):
    """Marginals and similarity vectors of problems ``first .. first + count`` into lane layout."""
    _to_lanes(a, first, count, lanes_a)
    _to_lanes(x, first, count, lanes_x)
    _to_lanes(b, first, count, lanes_b)
    _to_lanes(y, first, count, lanes_y)


@njit(**_JIT)
def _forward_blocks(K, KT, a, b, x, y, num_iter, blocks, out):
    """Scores of the blocks ``range(*blocks)`` into ``out`` (B,)."""
    B, n = a.shape
    m = b.shape[1]
    W, L = WIDTH, LANES
    nL, mL = n * L, m * L
    wk, lane_scores = np.empty(6 * nL + 5 * mL, K.dtype), np.empty(L, K.dtype)
    ta, tx, z, u, rn = 0, nL, 2 * nL, 3 * nL, 4 * nL  # offsets of the lane vectors in wk
    tb, ty, w, v, rm = 5 * nL, 5 * nL + mL, 5 * nL + 2 * mL, 5 * nL + 3 * mL, 5 * nL + 4 * mL
    zeros = 5 * nL + 5 * mL
    wk[zeros : zeros + nL] = 0.0
    lanes_a, lanes_x = _lane_rows(wk, ta, n), _lane_rows(wk, tx, n)
    lanes_b, lanes_y = _lane_rows(wk, tb, m), _lane_rows(wk, ty, m)
    for blk in range(blocks[0], blocks[1]):
        first = blk * L
        count = min(L, B - first)
        _problem_to_lanes(a, x, b, y, first, count, lanes_a, lanes_x, lanes_b, lanes_y)
        wk[v : v + mL] = 1.0
        for _ in range(num_iter):
            _columns_then(K, wk, v, zeros, SCALING, ta, z, z, u)
            _matvec_then(KT, wk, u, False, w, SCALING, tb, w, w, v)
        _product(wk, v, ty, rm, mL)
        _columns_then(K, wk, rm, zeros, PLAIN, rn, rn, rn, rn)  # K (v ⊙ y)
        for h in range(0, L, W):
            s = vzero(wk)
            for i in range(n):
                o = i * L + h
                s = vfma(vmul(vload(wk, tx + o), vload(wk, u + o)), vload(wk, rn + o), s)
            vstore(lane_scores, h, s)
        for q in range(count):
            out[first + q] = lane_scores[q]


@njit(**_JIT_PARALLEL)
def _forward(K, KT, a, b, x, y, num_iter, nchunks, out):
    """Parallel over chunks of blocks (:func:`_forward_blocks`)."""
    nblocks = (a.shape[0] + LANES - 1) // LANES
    for c in prange(nchunks):
        blocks = (c * nblocks // nchunks, (c + 1) * nblocks // nchunks)
        _forward_blocks(K, KT, a, b, x, y, num_iter, blocks, out)


@njit(**_JIT)
def _adjoint_step(wk, bar, scaling, inverse, acc, out, size):
    """Reverse of ``scaling = target inverse``: ``acc += bar inverse``,
    ``out = -bar scaling inverse`` (:func:`_finish`'s ADJOINT epilogue over ``size`` elements)."""
    for o in range(0, size, WIDTH):
        _finish(ADJOINT, o, vload(wk, bar + o), wk, scaling, inverse, acc, out)


@njit(**_JIT)
def _seed(wk, g, x, u, r, xbar, ubar, size):
    """Adjoints of ``s = x^T diag(u) r`` (r = K (v ⊙ y)): ``xbar = g u r``, ``ubar = g x r``."""
    for o in range(0, size, WIDTH):
        gr = vmul(vload(wk, g + o % LANES), vload(wk, r + o))
        vstore(wk, xbar + o, vmul(gr, vload(wk, u + o)))
        vstore(wk, ubar + o, vmul(gr, vload(wk, x + o)))


@njit(**_JIT)
def _contract(A, Bs, out):
    """``out[i, j] = sum_c A[c, i] * Bs[c, j]`` per lane, folded to WIDTH lanes.

    A (S, n LANES), Bs (S, m LANES), out (n m WIDTH,).  Two rows by five columns at a time (for
    m = 10 the rows of ``A`` are read twice), the ten sums held in registers over all S slots;
    rows or columns past the last repeat it and store the same value again.
    """
    S = A.shape[0]
    n, m = A.shape[1] // LANES, Bs.shape[1] // LANES
    W, L = WIDTH, LANES
    for j in range(0, m, 5):
        j1, j2, j3, j4 = min(j + 1, m - 1), min(j + 2, m - 1), min(j + 3, m - 1), min(j + 4, m - 1)
        for i in range(0, n, 2):
            i1 = min(i + 1, n - 1)
            s00 = s01 = s02 = s03 = s04 = s10 = s11 = s12 = s13 = s14 = vzero(out)
            for c in range(S):
                ra, rb = c * n * L, c * m * L
                for h in range(0, L, W):
                    a0, a1 = vload(A, ra + i * L + h), vload(A, ra + i1 * L + h)
                    b = vload(Bs, rb + j * L + h)
                    s00, s10 = vfma(a0, b, s00), vfma(a1, b, s10)
                    b = vload(Bs, rb + j1 * L + h)
                    s01, s11 = vfma(a0, b, s01), vfma(a1, b, s11)
                    b = vload(Bs, rb + j2 * L + h)
                    s02, s12 = vfma(a0, b, s02), vfma(a1, b, s12)
                    b = vload(Bs, rb + j3 * L + h)
                    s03, s13 = vfma(a0, b, s03), vfma(a1, b, s13)
                    b = vload(Bs, rb + j4 * L + h)
                    s04, s14 = vfma(a0, b, s04), vfma(a1, b, s14)
            for row, t0, t1, t2, t3, t4 in (
                (i1, s10, s11, s12, s13, s14),
                (i, s00, s01, s02, s03, s04),
            ):
                vstore(out, (row * m + j4) * W, t4)
                vstore(out, (row * m + j3) * W, t3)
                vstore(out, (row * m + j2) * W, t2)
                vstore(out, (row * m + j1) * W, t1)
                vstore(out, (row * m + j) * W, t0)


@njit(**_JIT)
def _backward_blocks(K, KT, a, b, x, y, g, num_iter, blocks, grads, Kb):
    """Gradients for the blocks ``range(*blocks)``; ``K̄`` accumulates into ``Kb`` (n m WIDTH,)
    float64, still split over the WIDTH lanes of a vector (the caller sums them).

    Stacks for the K̄ contraction: ``A[k-1] = u_k``, ``A[T+k-1] = z̄_k``, ``A[2T] = g x ⊙ u_T``;
    ``Bs[k-1] = w̄_k``, ``Bs[T+k-1] = v_{k-1}``, ``Bs[2T] = y ⊙ v_T`` (T = num_iter); ``Z[k-1]``
    and ``Wd[k-1]`` hold ``1 / z_k`` and ``1 / w_k``.  All are rows of one flat work array,
    addressed by offsets.
    """
    ga, gb, gx, gy = grads
    B, n = a.shape
    m = b.shape[1]
    L, T = LANES, num_iter
    nL, mL, S = n * L, m * L, 2 * num_iter + 1
    wk = np.empty((S + T + 7) * nL + (S + T + 7) * mL + L, K.dtype)
    # offsets in wk: the stacks, then single rows of n and m lane vectors, then g
    A, Z = 0, S * nL
    ta, tx, ubar = (S + T) * nL, (S + T + 1) * nL, (S + T + 2) * nL
    abar, xbar, rn = (S + T + 3) * nL, (S + T + 4) * nL, (S + T + 5) * nL
    Bs = (S + T + 6) * nL
    Wd = Bs + S * mL
    tb, ty, vbar = Bs + (S + T) * mL, Bs + (S + T + 1) * mL, Bs + (S + T + 2) * mL
    bbar, ybar = Bs + (S + T + 3) * mL, Bs + (S + T + 4) * mL
    cm, vT = Bs + (S + T + 5) * mL, Bs + (S + T + 6) * mL
    tg = Bs + (S + T + 7) * mL
    zeros = tg + L
    wk[zeros : zeros + nL] = 0.0
    Kblk = np.empty(n * m * WIDTH, K.dtype)
    stack_a, stack_b = wk[A : A + S * nL].reshape(S, nL), wk[Bs : Bs + S * mL].reshape(S, mL)
    lanes_a, lanes_x = _lane_rows(wk, ta, n), _lane_rows(wk, tx, n)
    lanes_b, lanes_y = _lane_rows(wk, tb, m), _lane_rows(wk, ty, m)
    lanes_g = _lane_rows(wk, tg, 1)
    for blk in range(blocks[0], blocks[1]):
        first = blk * L
        count = min(L, B - first)
        _problem_to_lanes(a, x, b, y, first, count, lanes_a, lanes_x, lanes_b, lanes_y)
        _to_lanes(g, first, count, lanes_g)
        wk[tg + count : tg + L] = 0.0  # repeated lanes must not add to the shared cost gradient
        wk[Bs + T * mL : Bs + (T + 1) * mL] = 1.0  # v_0
        for k in range(1, T + 1):
            z, w, u = Z + (k - 1) * nL, Wd + (k - 1) * mL, A + (k - 1) * nL
            v = vT if k == T else Bs + (T + k) * mL
            _columns_then(K, wk, Bs + (T + k - 1) * mL, zeros, SCALING, ta, z, z, u)
            _matvec_then(KT, wk, u, False, w, SCALING, tb, w, w, v)
        u = A + (T - 1) * nL
        # s = (x ⊙ u)^T K (v ⊙ y): seed the adjoints and the plan's term of K̄
        _product(wk, vT, ty, Bs + 2 * T * mL, mL)
        _columns_then(K, wk, Bs + 2 * T * mL, zeros, PLAIN, rn, rn, rn, rn)  # K (v ⊙ y)
        _seed(wk, tg, tx, u, rn, xbar, ubar, nL)
        _product(wk, u, tx, rn, nL)
        _matvec_then(KT, wk, rn, False, cm, PLAIN, cm, cm, cm, cm)  # K^T (u ⊙ x)
        _seed(wk, tg, ty, vT, cm, ybar, vbar, mL)
        seed = A + 2 * T * nL
        for o in range(0, nL, WIDTH):  # g x ⊙ u
            vstore(wk, seed + o, vmul(vload(wk, tg + o % L), vload(wk, rn + o)))
        wk[abar : abar + nL] = 0.0
        wk[bbar : bbar + mL] = 0.0
        _adjoint_step(wk, vbar, vT, Wd + (T - 1) * mL, bbar, Bs + (T - 1) * mL, mL)  # v_T = b / w_T
        for k in range(T, 0, -1):
            # ū_k = (seed +) K w̄_k, then the reverse of u_k = a / z_k: z̄_k into A[T+k-1]
            u, z, zbar = A + (k - 1) * nL, Z + (k - 1) * nL, A + (T + k - 1) * nL
            ubar_0 = ubar if k == T else zeros
            _columns_then(K, wk, Bs + (k - 1) * mL, ubar_0, ADJOINT, u, z, abar, zbar)
            if k > 1:
                # v̄_{k-1} = K^T z̄_k, then the reverse of v_{k-1} = b / w_{k-1}: w̄_{k-1} into Bs[k-2]
                v, w, wbar = Bs + (T + k - 1) * mL, Wd + (k - 2) * mL, Bs + (k - 2) * mL
                _matvec_then(KT, wk, zbar, False, vbar, ADJOINT, v, w, bbar, wbar)
        _contract(stack_a, stack_b, Kblk)
        for e in range(Kb.size):
            Kb[e] += Kblk[e]
        _from_lanes(_lane_rows(wk, abar, n), first, count, ga)
        _from_lanes(_lane_rows(wk, bbar, m), first, count, gb)
        _from_lanes(_lane_rows(wk, xbar, n), first, count, gx)
        _from_lanes(_lane_rows(wk, ybar, m), first, count, gy)


@njit(**_JIT_PARALLEL)
def _backward(K, KT, a, b, x, y, g, num_iter, nchunks, ga, gb, gx, gy, Kbar):
    """Parallel over chunks of blocks; ``Kbar`` (nchunks, n, m, WIDTH) receives each chunk's ``K̄``
    (per vector lane)."""
    nblocks = (a.shape[0] + LANES - 1) // LANES
    grads = (ga, gb, gx, gy)
    for c in prange(nchunks):
        blocks = (c * nblocks // nchunks, (c + 1) * nblocks // nchunks)
        _backward_blocks(
            K, KT, a, b, x, y, g, num_iter, blocks, grads, Kbar[c].reshape(Kbar[c].size)
        )


@njit(**_JIT)
def row_sums_and_range(t):
    """Float64 sums of the rows of a C-contiguous 2-d array, and its smallest and largest entries
    (both NaN when an entry is not finite; 0 when it is empty): the input checks in one pass."""
    rows, cols = t.shape
    sums = np.empty(rows)
    low, high, finite = np.inf, -np.inf, True
    for p in range(rows):
        total = 0.0
        for e in range(cols):
            value = t[p, e]
            total += value
            finite &= np.isfinite(value)
            low, high = min(low, value), max(high, value)
        sums[p] = total
    if not finite:
        return sums, np.nan, np.nan
    return (sums, low, high) if t.size else (sums, 0.0, 0.0)


def _prepare(M: np.ndarray, reg: float, *batch: np.ndarray) -> tuple[np.ndarray, ...]:
    """``K = exp(-M / reg)``, its contiguous transpose and the per-problem arrays, C-contiguous.

    All in float32 when ``M`` and the batch are all float32 (the torch twin's compute dtype for
    such inputs), else all in float64.
    """
    dtype = np.result_type(M, *batch, np.float32)
    K = np.exp(np.asarray(M, dtype=dtype) / dtype.type(-reg))
    return (K, np.ascontiguousarray(K.T), *(kernel_input(t, dtype) for t in batch))


def score_forward(
    x: np.ndarray,
    y: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    M: np.ndarray,
    reg: float,
    num_iter: int,
    threads: int,
) -> np.ndarray:
    """(B,) scores ``x_p^T P_p y_p`` as float64 (module docstring); inputs and compute dtype as in
    :func:`score_backward`."""
    K, KT, x, y, a, b = _prepare(M, reg, x, y, a, b)
    out = np.empty(a.shape[0])
    if a.shape[0]:
        _forward(K, KT, a, b, x, y, num_iter, chunks_for(a.shape[0], threads), out)
    return out


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

    Float32 throughout (iterations and per-problem gradients) when ``M``, ``a``, ``b``, ``x``,
    ``y`` and ``g`` are all float32, else float64.  ``M̄`` is float64.

    Args:
        M: (n, m) shared cost.  a, x: (B, n).  b, y: (B, m).  g: (B,) upstream gradient.
        reg: entropic regularisation; num_iter: Sinkhorn iterations of the forward pass.
        threads: Numba threads available (chooses the number of parallel chunks).
    """
    K, KT, a, b, x, y, g = _prepare(M, reg, a, b, x, y, g)
    B, n = a.shape
    m = b.shape[1]
    nchunks = chunks_for(B, threads)
    ga, gx = np.empty((B, n), a.dtype), np.empty((B, n), a.dtype)
    gb, gy = np.empty((B, m), a.dtype), np.empty((B, m), a.dtype)
    Kbar = np.zeros((nchunks, n, m, WIDTH))
    if B:
        _backward(K, KT, a, b, x, y, g, num_iter, nchunks, ga, gb, gx, gy, Kbar)
    gM = Kbar.sum(axis=(0, 3)) * K.astype(np.float64) / -reg
    return ga, gb, gx, gy, gM

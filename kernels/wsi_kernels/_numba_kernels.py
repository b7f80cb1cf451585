"""Numba CPU kernels for batched entropic Sinkhorn (plain scaling and log-domain, balanced or not).

These serve tolerance-controlled, log-domain and unbalanced solves; balanced plain solves with a
fixed iteration count have a faster kernel of their own in :mod:`wsi_kernels._numba_fixed`.

Layout: problems are solved in blocks of ``L`` lanes with the problem index as the innermost axis,
e.g. the kernel block ``K[i, j, q]`` holds entry (i, j) of problem ``q`` of the block.  Every inner
loop then runs over ``L`` contiguous values whatever ``n`` and ``m`` are, so LLVM vectorises a
46 x 10 problem as well as a large one (numba leaves SLP vectorisation off, so the lane loops are
plain runtime-length loops; ``L`` is a multiple of 8 so that exponentials run on whole vectors), and the block (n * m * L doubles) stays in cache for all
iterations.  The blocks are split into chunks, one ``prange`` task per chunk, and each chunk
allocates its work arrays once.  The caller picks ``L`` and the chunk count (see :func:`schedule`).

Iteration (row update first, as POT's ``unbalanced`` and ``batch`` solvers do; ``ot.sinkhorn`` on
the transposed problem gives the same sequence):

    u <- ta * (K v)^(-fi_a),    v <- tb * (K^T u)^(-fi_b),    P = diag(u) K diag(v)

with ``K = exp(-M / reg)``, ``ta = a^pa``, ``tb = b^pb``.  Balanced: ``fi = pa = pb = 1``.
Unbalanced (KL-relaxed marginals): ``fi = reg_m / (reg_m + reg)``, and ``pa = pb = 1`` for the
``KL(P | a b^T)`` reference (its ``a_i b_j`` factor folds into the scalings) or ``pa = fi_a``,
``pb = fi_b`` for the plain entropy.  The log-domain kernel runs the same recursion on
``log u``, ``log v`` with log-sum-exp matrix products.

All kernels work in float64.  Lanes past the end of the batch repeat the last problem and their
results are dropped.  A problem stops on its own (its lane is frozen) at the first iteration
where its marginal error is below ``tol``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._simd import WIDTH, vexp, vload, vstore, vtranspose8

#: Most problems per block: long enough lane loops to amortise the vectoriser's runtime checks,
#: small enough for the work arrays of a 46 x 10 block (3 x n * m * 64 doubles, 0.7 MB) to stay
#: in a 1 MB L2.
MAX_LANES = 64
#: Chunks per thread: more than one evens out blocks that need different iteration counts.
CHUNKS_PER_THREAD = 4
#: Smaller batches run on the calling thread: a parallel launch costs more than it saves there
#: (and on a busy machine it waits for a descheduled worker thread).
PARALLEL_MIN_BATCH = MAX_LANES


def schedule(batch: int, threads: int) -> tuple[int, int]:
    """``(lanes, chunks)`` for ``batch`` problems: fill every thread, at most MAX_LANES lanes.

    Lanes are a multiple of WIDTH (the vector exponential works on whole vectors).
    ``chunks == 1`` means: call ``solve_*_blocks`` directly instead of the parallel kernel.
    """
    threads = max(threads, 1) if batch >= PARALLEL_MIN_BATCH else 1
    lanes = min(MAX_LANES, -(-batch // (threads * WIDTH)) * WIDTH)
    blocks = -(-batch // lanes)
    return lanes, min(blocks, CHUNKS_PER_THREAD * threads) if threads > 1 else 1


def kernel_input(x: np.ndarray, dtype: type, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """``x`` (broadcast to ``shape`` when given) as a C-contiguous, writeable ``dtype`` array,
    copied only when needed. Numba types read-only arrays apart: a read-only view
    (``np.broadcast_to``, a frozen input) would compile every kernel it reaches a second time."""
    return np.require(x if shape is None else np.broadcast_to(x, shape), dtype, ("C", "W"))


_JIT = dict(cache=True, fastmath=False, error_model="numpy", nogil=True)
_JIT_PARALLEL = dict(_JIT, parallel=True)


@njit(**_JIT)
def _exp_inplace(x):
    """``x <- exp(x)`` for a contiguous 1-d float64 array whose size is a multiple of WIDTH.

    :func:`wsi_kernels._simd.vexp`: about 1 ulp; values below ``exp(-708)`` flush to 0.
    """
    for o in range(0, x.size, WIDTH):
        vstore(x, o, vexp(vload(x, o)))


# ---------------------------------------------------------------------------------------------
# Loading a block of problems into lane layout
# ---------------------------------------------------------------------------------------------


#: Lanes moved together by the layout changes: eight doubles fill one 64-byte cache line.
_GROUP = 8


@njit(**_JIT)
def _to_lanes(x, first, count, out):
    """``out[e, q] = x[p_q].flat[e]``: problem-major rows to the lane layout of a block.

    ``x`` is (B, ...) or (1, ...) (shared by every lane), C-contiguous; ``out`` is (E, L).
    Lanes past ``count`` repeat the block's last problem.  Eight distinct problems are moved
    together, so each write fills a whole cache line of ``out`` while eight rows of ``x`` are
    read sequentially (lane by lane, the strided writes would evict each other from L1); whole
    8 x 8 tiles move as vectors (:func:`wsi_kernels._simd.vtranspose8`).
    """
    E, L = out.shape
    xf = x.reshape(x.shape[0], E)
    whole = E - E % _GROUP
    for q0 in range(0, L, _GROUP):
        if x.shape[0] != 1 and q0 + _GROUP <= min(L, count):
            p0 = first + q0
            for e0 in range(0, whole, _GROUP):
                vtranspose8(xf, p0 * E + e0, E, out, e0 * L + q0, L)
            for e in range(whole, E):
                for dq in range(_GROUP):
                    out[e, q0 + dq] = xf[p0 + dq, e]
        else:
            for q in range(q0, min(q0 + _GROUP, L)):
                src = xf[0 if x.shape[0] == 1 else first + min(q, count - 1)]
                for e in range(E):
                    out[e, q] = src[e]


@njit(**_JIT)
def _from_lanes(buf, first, count, x):
    """``x[first + q].flat[e] = buf[e, q]`` for the block's real lanes (inverse of _to_lanes)."""
    E, L = buf.shape
    xf = x.reshape(x.shape[0], E)
    whole = E - E % _GROUP
    for q0 in range(0, count, _GROUP):
        if q0 + _GROUP <= count:
            for e0 in range(0, whole, _GROUP):
                vtranspose8(buf, e0 * L + q0, L, xf, (first + q0) * E + e0, E)
            for e in range(whole, E):
                for dq in range(_GROUP):
                    xf[first + q0 + dq, e] = buf[e, q0 + dq]
        else:
            for q in range(q0, count):
                dst = xf[first + q]
                for e in range(E):
                    dst[e] = buf[e, q]


@njit(**_JIT)
def _scale_into(x, factor, out):
    """``out = factor * x`` over two same-shape contiguous arrays."""
    xf, of = x.reshape(x.size), out.reshape(out.size)
    for k in range(xf.size):
        of[k] = factor * xf[k]


@njit(**_JIT)
def _powers_inplace(x, power):
    """``x <- x ** power`` (0 stays 0); nothing to do for ``power == 1``."""
    if power != 1.0:
        xf = x.reshape(x.size)
        for k in range(xf.size):
            xf[k] = xf[k] ** power if xf[k] > 0 else 0.0


@njit(**_JIT)
def _logs_inplace(x, factor):
    """``x <- factor * log(x)`` (-inf where ``x`` is 0)."""
    xf = x.reshape(x.size)
    for k in range(xf.size):
        xf[k] = factor * np.log(xf[k]) if xf[k] > 0 else -np.inf


# ---------------------------------------------------------------------------------------------
# Plain (scaling) iteration
# ---------------------------------------------------------------------------------------------


@njit(**_JIT)
def _matvec(K, v, out):
    """``out[i, q] = sum_j K[i, j, q] v[j, q]`` (row sums of ``K diag(v)``), summed in j order.

    Four terms are added per pass over a row of ``out`` (still left to right), which quarters the
    loads and stores of ``out``: the lane loop is bound by loads and stores, not arithmetic.
    """
    n, m, L = K.shape
    m4 = m - m % 4
    for i in range(n):
        out[i, :] = 0.0
        for j in range(0, m4, 4):
            for q in range(L):
                out[i, q] = (
                    out[i, q]
                    + K[i, j, q] * v[j, q]
                    + K[i, j + 1, q] * v[j + 1, q]
                    + K[i, j + 2, q] * v[j + 2, q]
                    + K[i, j + 3, q] * v[j + 3, q]
                )
        for j in range(m4, m):
            for q in range(L):
                out[i, q] += K[i, j, q] * v[j, q]


@njit(**_JIT)
def _rmatvec(K, u, out):
    """``out[j, q] = sum_i K[i, j, q] u[i, q]`` (column sums of ``diag(u) K``), summed in i order.

    Four rows are added per pass over ``out`` (left to right), as in :func:`_matvec`.
    """
    n, m, L = K.shape
    n4 = n - n % 4
    out[:] = 0.0
    for i in range(0, n4, 4):
        for j in range(m):
            for q in range(L):
                out[j, q] = (
                    out[j, q]
                    + K[i, j, q] * u[i, q]
                    + K[i + 1, j, q] * u[i + 1, q]
                    + K[i + 2, j, q] * u[i + 2, q]
                    + K[i + 3, j, q] * u[i + 3, q]
                )
    for i in range(n4, n):
        for j in range(m):
            for q in range(L):
                out[j, q] += K[i, j, q] * u[i, q]


@njit(**_JIT)
def _scaling(target, s, fi, out):
    """``out = target * s^(-fi)``: the scaling that makes ``out * s`` match the marginal.

    ``target`` is the marginal raised to its power (``a`` or ``a^fi``); 0 stays 0.
    """
    rows, L = s.shape
    for i in range(rows):
        if fi == 1.0:
            for q in range(L):
                t = target[i, q]
                out[i, q] = t / s[i, q] if t > 0 else 0.0
        else:
            for q in range(L):
                t = target[i, q]
                out[i, q] = t * s[i, q] ** (-fi) if t > 0 else 0.0


@njit(**_JIT)
def _residual(s, new, old, out, log_domain):
    """``out[q] = ||s[:, q] * (new[:, q] - old[:, q])||_2``: change of the plan's row sums.

    In the log domain (all three arrays logarithms): ``||exp(s + new) - exp(s + old)||_2``.
    """
    rows, L = s.shape
    out[:] = 0.0
    for i in range(rows):
        for q in range(L):
            if log_domain:
                d = np.exp(s[i, q] + new[i, q]) - np.exp(s[i, q] + old[i, q])
            else:
                d = s[i, q] * (new[i, q] - old[i, q])
            out[q] += d * d
    for q in range(L):
        out[q] = np.sqrt(out[q])


@njit(**_JIT)
def _keep_active(active, new, x):
    """``x[:, q] <- new[:, q]`` for the lanes still iterating."""
    rows, L = x.shape
    for i in range(rows):
        for q in range(L):
            x[i, q] = new[i, q] if active[q] else x[i, q]


@njit(**_JIT)
def _stop_lanes(it, max_iter, check_tol, tol, err, active, n_iter, err_out):
    """Freeze the lanes that are done at iteration ``it``; return how many still iterate."""
    left = 0
    for q in range(active.size):
        if active[q]:
            if it == max_iter or (check_tol and err[q] < tol):
                active[q] = False
                n_iter[q] = it
                err_out[q] = err[q]
            else:
                left += 1
    return left


@njit(**_JIT)
def _new_workspace(n, m, L):
    """Arrays reused for every block of a chunk: scalings, products, errors, lane state."""
    return (
        np.empty((n, L)),  # u (or log u)
        np.empty((m, L)),  # v (or log v)
        np.empty((n, L)),  # row products
        np.empty((m, L)),  # column products
        np.empty((n, L)),  # candidate u
        np.empty((m, L)),  # candidate v
        np.empty(L),  # current errors
        np.empty(L, np.bool_),  # lane still iterating
        np.empty(L, np.int64),  # iterations done
        np.empty(L),  # final errors
    )


@njit(**_JIT)
def _plain_plan(K, u, v, Ms, P, cost):
    """``P[i, j, q] = u[i, q] K[i, j, q] v[j, q]`` and ``cost[q] = sum_ij P Ms`` in (i, j) order."""
    n, m, L = K.shape
    cost[:] = 0.0
    for i in range(n):
        for j in range(m):
            for q in range(L):
                x = u[i, q] * K[i, j, q] * v[j, q]
                P[i, j, q] = x
                cost[q] += x * Ms[i, j, q]


@njit(**_JIT)
def _copy_lane_stats(ws, lane_cost, first, count, cost, n_iter, err):
    """Copy the costs, iteration counts and errors of a block's real lanes to the outputs."""
    for q in range(count):
        cost[first + q] = lane_cost[q]
        n_iter[first + q] = ws[8][q]
        err[first + q] = ws[9][q]


# ---------------------------------------------------------------------------------------------
# Log-domain iteration
# ---------------------------------------------------------------------------------------------


@njit(**_JIT)
def _lse_rows(logK, lv, out, W):
    """``out[i, q] = log sum_j exp(logK[i, j, q] + lv[j, q])``; ``W``: scratch."""
    n, m, L = logK.shape
    for i in range(n):
        for q in range(L):
            out[i, q] = -np.inf
        for j in range(m):
            for q in range(L):
                w = logK[i, j, q] + lv[j, q]
                W[i, j, q] = w
                out[i, q] = w if w > out[i, q] else out[i, q]
        for j in range(m):
            for q in range(L):
                W[i, j, q] -= out[i, q]
    _exp_inplace(W.ravel())
    for i in range(n):
        for j in range(1, m):
            for q in range(L):
                W[i, 0, q] += W[i, j, q]
        for q in range(L):
            out[i, q] += np.log(W[i, 0, q])


@njit(**_JIT)
def _lse_cols(logK, lu, out, W):
    """``out[j, q] = log sum_i exp(logK[i, j, q] + lu[i, q])``: :func:`_lse_rows` of the transposed
    kernel (same order of operations); ``W``: scratch of ``logK``'s size."""
    n, m, L = logK.shape
    _lse_rows(logK.transpose(1, 0, 2), lu, out, W.reshape(m, n, L))


@njit(**_JIT)
def _log_scaling(log_target, s, fi, out):
    """``out = log_target - fi * s``: log of the scaling matching the marginal (-inf stays)."""
    rows, L = s.shape
    for i in range(rows):
        for q in range(L):
            t = log_target[i, q]
            out[i, q] = t - fi * s[i, q] if t > -np.inf else -np.inf


@njit(**_JIT)
def _log_plan(logK, lu, lv, Ms, P, cost):
    """``P = exp(logK + lu + lv)`` (0 for -inf and below 3e-308) and its cost, as _plain_plan."""
    n, m, L = logK.shape
    for i in range(n):
        for j in range(m):
            for q in range(L):
                P[i, j, q] = logK[i, j, q] + lu[i, q] + lv[j, q]
    _exp_inplace(P.reshape(P.size))
    cost[:] = 0.0
    for i in range(n):
        for j in range(m):
            for q in range(L):
                cost[q] += P[i, j, q] * Ms[i, j, q]


# ---------------------------------------------------------------------------------------------
# One iteration for both domains
# ---------------------------------------------------------------------------------------------


@njit(**_JIT)
def _products(K, x, out, W, log_domain, rows):
    """``K x`` (``rows``) or ``K^T x`` per lane; in the log domain ``log sum exp(logK + log x)``
    over the same index (``W``: scratch)."""
    if rows and log_domain:
        _lse_rows(K, x, out, W)
    elif rows:
        _matvec(K, x, out)
    elif log_domain:
        _lse_cols(K, x, out, W)
    else:
        _rmatvec(K, x, out)


@njit(**_JIT)
def _scalings(target, s, fi, out, log_domain):
    """The scaling matching the marginal: :func:`_scaling`, or :func:`_log_scaling` in logs."""
    if log_domain:
        _log_scaling(target, s, fi, out)
    else:
        _scaling(target, s, fi, out)


@njit(**_JIT)
def _iterate(K, ta, tb, fi_a, fi_b, v_init_b, max_iter, check_tol, tol, W, ws, log_domain):
    """Run the iteration on one block, leaving ``u``, ``v``, counts and errors in ``ws``.

    ``K``, ``ta``, ``tb`` and the scalings are logarithms when ``log_domain``.  ``max_iter``
    full iterations at most; with ``check_tol`` a lane stops at the first iteration ``it >= 1``
    whose marginal error is below ``tol``.  The error of the returned plan costs one extra row
    product.  ``W`` (n, m, L): scratch of the log-domain products.
    """
    u, v, sn, sm, un, vn, err, active, n_iter, err_out = ws
    if v_init_b:
        v[:] = tb
    else:
        v[:] = 0.0 if log_domain else 1.0
    u[:] = -np.inf if log_domain else 0.0
    active[:] = True
    for it in range(max_iter + 1):
        _products(K, v, sn, W, log_domain, True)
        if not check_tol and it < max_iter:  # fixed count: every lane updates, no candidates
            _scalings(ta, sn, fi_a, u, log_domain)
            _products(K, u, sm, W, log_domain, False)
            _scalings(tb, sm, fi_b, v, log_domain)
            continue
        _scalings(ta, sn, fi_a, un, log_domain)
        if it == max_iter or (check_tol and it > 0):
            _residual(sn, un, u, err, log_domain)
            if _stop_lanes(it, max_iter, check_tol, tol, err, active, n_iter, err_out) == 0:
                return
        _keep_active(active, un, u)
        _products(K, u, sm, W, log_domain, False)
        _scalings(tb, sm, fi_b, vn, log_domain)
        _keep_active(active, vn, v)


@njit(**_JIT)
def solve_blocks(
    M, a, b, reg, fi_a, fi_b, kl_ref, max_iter, check_tol, tol, log_domain, lanes, blocks, out
):
    """Solve the blocks ``range(*blocks)`` of the batch (scaling or log-domain iteration)."""
    plan, cost, n_iter, err = out
    B, n, m = plan.shape
    Ms = np.empty((n, m, lanes))  # costs in lane layout
    K = np.empty((n, m, lanes))  # K, or log K in the log domain
    P = np.empty((n, m, lanes))  # scratch of the log domain, then the plan
    ta = np.empty((n, lanes))
    tb = np.empty((m, lanes))
    lane_cost = np.empty(lanes)
    ws = _new_workspace(n, m, lanes)
    for blk in range(blocks[0], blocks[1]):
        first = blk * lanes
        count = min(lanes, B - first)
        if M.shape[0] != 1 or blk == blocks[0]:
            _to_lanes(M, first, count, Ms.reshape(n * m, lanes))
            _scale_into(Ms, -1.0 / reg, K)
            if not log_domain:
                _exp_inplace(K.reshape(K.size))
        _to_lanes(a, first, count, ta)
        _to_lanes(b, first, count, tb)
        if log_domain:
            _logs_inplace(ta, 1.0 if kl_ref else fi_a)
            _logs_inplace(tb, 1.0 if kl_ref else fi_b)
        else:
            _powers_inplace(ta, 1.0 if kl_ref else fi_a)
            _powers_inplace(tb, 1.0 if kl_ref else fi_b)
        _iterate(K, ta, tb, fi_a, fi_b, kl_ref, max_iter, check_tol, tol, P, ws, log_domain)
        if log_domain:
            _log_plan(K, ws[0], ws[1], Ms, P, lane_cost)
        else:
            _plain_plan(K, ws[0], ws[1], Ms, P, lane_cost)
        _from_lanes(P.reshape(n * m, lanes), first, count, plan)
        _copy_lane_stats(ws, lane_cost, first, count, cost, n_iter, err)


@njit(**_JIT_PARALLEL)
def sinkhorn_batch(
    M, a, b, reg, fi_a, fi_b, kl_ref, max_iter, check_tol, tol, log_domain, lanes, nchunks,
    plan, cost, n_iter, err,
):  # fmt: skip
    """Batched Sinkhorn (scaling or log-domain iteration), in parallel over chunks of blocks.

    Args:
        M: (1, n, m) shared or (B, n, m) costs, float64, C-contiguous.
        a: (B, n), b: (B, m) marginals, float64, C-contiguous.
        reg: entropic regularisation (units of M).  fi_a, fi_b: relaxation exponents (1 = hard).
        kl_ref: KL(P | a b^T) reference for the unbalanced problem (else plain entropy).
        max_iter: iteration count (``check_tol`` False) or cap (True); tol: marginal-error bound.
        log_domain: iterate on ``log u``, ``log v`` with log-sum-exp products.
        lanes: problems per block; nchunks: parallel chunks (see :func:`schedule`).
        plan: (B, n, m) output.  cost, err: (B,) float64 outputs; n_iter: (B,) int64 output.
    """
    nblocks = (plan.shape[0] + lanes - 1) // lanes
    out = (plan, cost, n_iter, err)
    for c in prange(nchunks):
        blocks = (c * nblocks // nchunks, (c + 1) * nblocks // nchunks)
        solve_blocks(
            M, a, b, reg, fi_a, fi_b, kl_ref, max_iter, check_tol, tol, log_domain, lanes,
            blocks, out,
        )  # fmt: skip

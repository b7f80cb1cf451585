"""Numba Sinkhorn kernels against POT: plain, log-domain, unbalanced, small epsilon, batching."""

from __future__ import annotations

import warnings

import numpy as np
import ot
import pytest

from wsi_kernels import SinkhornInfo, sinkhorn
from wsi_kernels import _common as common
from wsi_kernels import _numba_fixed as nf
from wsi_kernels import _numba_kernels as nk

SHAPES = [(1, 4), (5, 3), (46, 10), (10, 46)]

pytestmark = [
    # POT's own chatter: its entropy reference overwriting c, and 1/0, log(0) of zero marginals
    pytest.mark.filterwarnings("ignore:If reg_type = entropy:UserWarning"),
    pytest.mark.filterwarnings("ignore:divide by zero encountered in log:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:divide by zero encountered in divide:RuntimeWarning"),
]


def random_problems(rng, B, n, m, zeros=False):
    """B random problems: costs in [0, 1), Dirichlet marginals (optionally with zero entries)."""
    M = rng.random((B, n, m))
    a = rng.dirichlet(np.ones(n), size=B)
    b = rng.dirichlet(np.ones(m), size=B)
    if zeros and n > 1:
        a[:, 0] = 0.0
        a /= a.sum(axis=1, keepdims=True)
    return M, a, b


def pot_fixed(a, b, M, reg, k, log=False):
    """POT's plan after exactly ``k`` iterations in our update order (POT on the transpose)."""
    method = "sinkhorn_log" if log else "sinkhorn"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "did not converge": expected with stopThr=0
        return ot.sinkhorn(b, a, M.T, reg, method=method, numItermax=k, stopThr=0).T


def pot_converged(a, b, M, reg, log=False):
    method = "sinkhorn_log" if log else "sinkhorn"
    return ot.sinkhorn(a, b, M, reg, method=method, numItermax=100_000, stopThr=1e-13)


@pytest.mark.parametrize("n,m", SHAPES)
@pytest.mark.parametrize("method", ["plain", "log"])
def test_matches_pot_at_convergence(rng, n, m, method):
    M, a, b = random_problems(rng, 3, n, m)
    plan, info = sinkhorn(
        a, b, M, 0.05, tol=1e-12, max_iter=100_000, method=method, return_info=True
    )
    assert info.method == method
    for k in range(3):
        ref = pot_converged(a[k], b[k], M[k], 0.05, log=method == "log")
        np.testing.assert_allclose(plan[k], ref, rtol=0, atol=1e-9)
        assert info.cost[k] == pytest.approx(np.sum(ref * M[k]), abs=1e-9)


@pytest.mark.parametrize("n,m", SHAPES)
@pytest.mark.parametrize("method", ["plain", "log"])
def test_fixed_iterations_reproduce_pot_step_by_step(rng, n, m, method):
    M, a, b = random_problems(rng, 4, n, m)
    plan, info = sinkhorn(a, b, M, 0.05, num_iter=20, method=method, return_info=True)
    np.testing.assert_array_equal(info.n_iter, 20)
    for k in range(4):
        ref = pot_fixed(a[k], b[k], M[k], 0.05, 20, log=method == "log")
        np.testing.assert_allclose(plan[k], ref, rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("reg_type", ["kl", "entropy"])
@pytest.mark.parametrize("method", ["plain", "log"])
@pytest.mark.parametrize("reg_m", [0.5, (0.2, 2.0), (np.inf, 0.3)])
def test_unbalanced_matches_pot(rng, reg_type, method, reg_m):
    M, a, b = random_problems(rng, 3, 6, 4)
    a *= 1.7  # unbalanced: the masses may differ
    plan, info = sinkhorn(
        a, b, M, 0.1, reg_m=reg_m, reg_type=reg_type, method=method, tol=1e-13,
        max_iter=100_000, return_info=True,
    )  # fmt: skip
    for k in range(3):
        fixed = sinkhorn(a[k], b[k], M[k], 0.1, reg_m=reg_m, reg_type=reg_type, num_iter=15)
        ref_fixed = ot.unbalanced.sinkhorn_unbalanced(
            a[k], b[k], M[k], 0.1, reg_m, reg_type=reg_type, numItermax=15, stopThr=0
        )
        np.testing.assert_allclose(fixed, ref_fixed, rtol=1e-10, atol=1e-15)
        ref = ot.unbalanced.sinkhorn_unbalanced(
            a[k], b[k], M[k], 0.1, reg_m, reg_type=reg_type, numItermax=100_000, stopThr=1e-14
        )
        np.testing.assert_allclose(plan[k], ref, rtol=0, atol=1e-9)
        assert info.cost[k] == pytest.approx(np.sum(ref * M[k]), abs=1e-9)


def test_default_reg_type_is_pots_default(rng):
    M, a, b = random_problems(rng, 1, 5, 4)
    ours = sinkhorn(a[0] * 2, b[0], M[0], 0.1, reg_m=0.4, num_iter=30)
    pots = ot.unbalanced.sinkhorn_unbalanced(
        a[0] * 2, b[0], M[0], 0.1, 0.4, numItermax=30, stopThr=0
    )
    np.testing.assert_allclose(ours, pots, rtol=1e-10, atol=1e-15)


def test_small_epsilon_log_is_finite_where_plain_fails(rng):
    M, a, b = random_problems(rng, 3, 6, 5)
    M[:, 0, :] = 0.8 + 0.2 * M[:, 0, :]  # an outlier row: exp(-M/reg) is 0 on all of it
    scale = 10.0
    M *= scale
    reg = 1e-3 * scale
    with pytest.raises(ValueError, match="underflow"):
        sinkhorn(a, b, M, reg, method="plain")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pot_plain = ot.sinkhorn(
            a[0], b[0], M[0], reg, method="sinkhorn", numItermax=20_000, stopThr=1e-10
        )
    pot_log = [pot_converged(a[k], b[k], M[k], reg, log=True) for k in range(3)]
    assert not np.allclose(pot_plain, pot_log[0], atol=1e-6) or not np.isfinite(pot_plain).all()
    plan, info = sinkhorn(a, b, M, reg, tol=1e-12, max_iter=200_000, return_info=True)
    assert info.method == "log"
    assert np.isfinite(plan).all() and np.isfinite(info.cost).all()
    for k in range(3):
        np.testing.assert_allclose(plan[k], pot_log[k], rtol=0, atol=1e-6)


@pytest.mark.parametrize("method", ["plain", "log"])
def test_marginals_at_convergence(rng, method):
    M, a, b = random_problems(rng, 5, 9, 7)
    plan, info = sinkhorn(a, b, M, 0.05, tol=1e-11, method=method, return_info=True)
    np.testing.assert_allclose(plan.sum(axis=2), a, rtol=0, atol=1e-10)
    np.testing.assert_allclose(plan.sum(axis=1), b, rtol=0, atol=1e-14)
    assert np.all(info.marginal_error < 1e-11)
    row_err = np.linalg.norm(plan.sum(axis=2) - a, axis=1)
    np.testing.assert_allclose(info.marginal_error, row_err, rtol=1e-3, atol=1e-15)


@pytest.mark.parametrize("method", ["plain", "log"])
@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("B", [11, nk.PARALLEL_MIN_BATCH + 9])  # serial and parallel kernels
def test_batch_equals_loop_of_single_problems(rng, method, shared, B):
    M, a, b = random_problems(rng, B, 6, 5, zeros=True)
    MM = M[0] if shared else M
    plan, info = sinkhorn(a, b, MM, 0.05, tol=1e-10, method=method, return_info=True)
    for k in range(B):
        single, single_info = sinkhorn(
            a[k], b[k], MM if shared else M[k], 0.05, tol=1e-10, method=method, return_info=True
        )
        np.testing.assert_allclose(plan[k], single, rtol=1e-14, atol=1e-300)
        assert info.n_iter[k] == single_info.n_iter
        assert info.cost[k] == pytest.approx(single_info.cost, rel=1e-14)
    assert len(set(info.n_iter.tolist())) > 1  # problems stop at their own iteration


def test_shared_marginals_and_cost_broadcast(rng):
    M, a, b = random_problems(rng, 4, 5, 3)
    full = sinkhorn(np.tile(a[0], (4, 1)), b, np.tile(M[0], (4, 1, 1)), 0.1, num_iter=20)
    np.testing.assert_allclose(sinkhorn(a[0], b, M[0], 0.1, num_iter=20), full, rtol=1e-14)


def test_zero_marginal_entries_give_zero_rows(rng):
    M, a, b = random_problems(rng, 2, 5, 4, zeros=True)
    for method in ("plain", "log"):
        plan = sinkhorn(a, b, M, 0.05, tol=1e-12, method=method)
        assert np.all(plan[:, 0, :] == 0.0)
        ref = pot_converged(a[1], b[1], M[1], 0.05, log=method == "log")
        np.testing.assert_allclose(plan[1], ref, atol=1e-9)


def test_single_problem_info_is_scalar(rng):
    M, a, b = random_problems(rng, 1, 4, 3)
    plan, info = sinkhorn(a[0], b[0], M[0], 0.1, num_iter=7, return_info=True)
    assert isinstance(info, SinkhornInfo)
    assert plan.shape == (4, 3)
    assert np.ndim(info.cost) == np.ndim(info.n_iter) == np.ndim(info.marginal_error) == 0
    assert info.n_iter == 7


def test_float32_in_float32_out(rng):
    M, a, b = random_problems(rng, 3, 6, 4)
    p64 = sinkhorn(a, b, M, 0.05, num_iter=20)
    p32 = sinkhorn(
        a.astype(np.float32), b.astype(np.float32), M.astype(np.float32), 0.05, num_iter=20
    )
    assert p64.dtype == np.float64 and p32.dtype == np.float32
    np.testing.assert_allclose(p32, p64, rtol=0, atol=1e-6)
    mixed = sinkhorn(a.astype(np.float32), b, M, 0.05, num_iter=20)
    assert mixed.dtype == np.float64


def test_auto_resolves_plain_overflow_in_log_domain(rng, monkeypatch):
    M, a, b = random_problems(rng, 4, 5, 4)
    M[2, 0, :] = 1.0  # with reg = 1e-3 row 0 of problem 2 underflows to exactly 0
    monkeypatch.setattr(common, "auto_limit", lambda largest: np.inf)
    plan, info = sinkhorn(a, b, M, 1e-3, num_iter=50, return_info=True)
    assert info.method == "plain+log"
    ref = sinkhorn(a, b, M, 1e-3, num_iter=50, method="log")
    np.testing.assert_allclose(plan[2], ref[2], rtol=1e-10, atol=1e-300)
    assert np.isfinite(plan).all()


def test_explicit_plain_reports_overflow(rng, monkeypatch):
    M, a, b = random_problems(rng, 2, 5, 4)
    M[1, 0, :] = 1.0
    monkeypatch.setattr(common, "plain_limit", lambda tiny: np.inf)
    with pytest.raises(FloatingPointError, match="method='log'"):
        sinkhorn(a, b, M, 1e-3, num_iter=50, method="plain")


def test_auto_rule_picks_by_cost_over_reg(rng):
    M, a, b = random_problems(rng, 1, 4, 3)
    limit = common.auto_limit(np.finfo(np.float64).max)
    _, plain = sinkhorn(a, b, M, M.max() / (0.99 * limit), num_iter=3, return_info=True)
    _, log = sinkhorn(a, b, M, M.max() / (1.01 * limit), num_iter=3, return_info=True)
    assert (plain.method, log.method) == ("plain", "log")


def test_kernels_are_cached_on_disk():
    from numba.core.caching import NullCache

    for kernel in (nk.sinkhorn_batch, nf.sinkhorn_fixed):
        assert not isinstance(kernel._cache, NullCache)


@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize(
    "B,n,m",
    [(1, 46, 10), (nf.LANES + 3, 10, 46), (nf.PARALLEL_MIN_BATCH + 9, 7, 3), (200, 3, 9)],
)  # one lane, a partial block, serial and parallel paths, rows not a multiple of nf.ROWS
def test_fixed_count_kernel_reproduces_pot_with_its_info(rng, shared, B, n, m):
    """The dedicated fixed-count kernel: POT's 20-step plans, and cost and error of those plans."""
    M, a, b = random_problems(rng, B, n, m, zeros=True)
    MM = np.broadcast_to(M[0], M.shape) if shared else M
    plan, info = sinkhorn(a, b, M[0] if shared else M, 0.05, num_iter=20, return_info=True)
    for k in range(B):
        np.testing.assert_allclose(
            plan[k], pot_fixed(a[k], b[k], MM[k], 0.05, 20), rtol=1e-10, atol=1e-15
        )
    np.testing.assert_allclose(info.cost, (plan * MM).sum(axis=(1, 2)), rtol=1e-12)
    row_err = np.linalg.norm(plan.sum(axis=2) - a, axis=1)
    np.testing.assert_allclose(info.marginal_error, row_err, rtol=1e-6, atol=1e-15)
    assert np.all(info.n_iter == 20) and info.method == "plain"
    assert np.all(plan[:, 0, :] == 0.0)  # zero marginal entry, zero row


def test_fixed_count_kernel_flushes_underflow_like_the_general_kernel(rng):
    """Costs near the plain limit: exp(-M/reg) of tiny values flushes to 0 in both kernels."""
    M, a, b = random_problems(rng, 40, 6, 5)
    M[:, 0, 0] = 700 * 0.01  # exp(-700) is still normal; the rest of the row keeps it finite
    fast = sinkhorn(a, b, M, 0.01, num_iter=5, method="plain")
    ref = sinkhorn(a, b, M, 0.01, tol=1e-300, max_iter=5, method="plain")
    np.testing.assert_allclose(fast, ref, rtol=1e-12, atol=1e-300)

"""Every input rule raises a clear ValueError, identically in the NumPy and torch front ends."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wsi_kernels import sinkhorn, sinkhorn_torch


def numpy_call(a, b, M, reg=0.1, **kw):
    return sinkhorn(np.asarray(a), np.asarray(b), np.asarray(M), reg, **kw)


def torch_call(a, b, M, reg=0.1, **kw):
    return sinkhorn_torch(torch.as_tensor(np.asarray(a)), torch.as_tensor(np.asarray(b)),
                          torch.as_tensor(np.asarray(M)), reg, **kw)  # fmt: skip


BACKENDS = pytest.mark.parametrize("solve", [numpy_call, torch_call], ids=["numpy", "torch"])

A = np.full(3, 1 / 3)
B = np.full(2, 1 / 2)
M = np.ones((3, 2))


@BACKENDS
@pytest.mark.parametrize(
    "a,b,cost,message",
    [
        (A, B, np.ones((2, 3)), "a has 3 entries but M has 2 rows"),
        (A, np.full(4, 0.25), M, "b has 4 entries but M has 2 columns"),
        (np.ones((1, 1, 3)), B, M, r"a must have shape \(n,\) or \(B, n\)"),
        (A, np.ones((1, 1, 2)), M, r"b must have shape \(m,\) or \(B, m\)"),
        (A, B, np.ones(3), r"M must have shape \(n, m\) or \(B, n, m\)"),
        (np.full((2, 3), 1 / 3), np.full((5, 2), 1 / 2), M, "batch sizes differ"),
        (A, B, np.ones((4, 3, 2)).reshape(4, 3, 2)[:0], "batch is empty"),
        (np.ones(0), B, np.ones((0, 2)), "must not be empty"),
    ],
)
def test_shape_errors(solve, a, b, cost, message):
    with pytest.raises(ValueError, match=message):
        solve(a, b, cost)


@BACKENDS
@pytest.mark.parametrize(
    "a,b,cost,message",
    [
        (A, B, np.where(np.eye(3, 2) > 0, -0.5, 1.0), "M has negative entries"),
        (A, B, np.where(np.eye(3, 2) > 0, np.nan, 1.0), "M has non-finite entries"),
        (A, B, np.where(np.eye(3, 2) > 0, np.inf, 1.0), "M has non-finite entries"),
        (np.array([0.5, 0.6, -0.1]), B, M, "a has negative entries"),
        (A, np.array([np.inf, 0.5]), M, "b has non-finite entries"),
        (np.zeros(3), np.zeros(2), M, "a has zero total mass"),
    ],
)
def test_value_errors(solve, a, b, cost, message):
    with pytest.raises(ValueError, match=message):
        solve(a, b, cost)


@BACKENDS
def test_balanced_masses_must_match_and_are_quoted(solve):
    with pytest.raises(ValueError, match=r"sum\(a\) = 1 but sum\(b\) = 1.5 \(problem 1\)"):
        solve(np.full((2, 3), 1 / 3), np.array([[0.5, 0.5], [0.75, 0.75]]), M)
    solve(A, B * (1 + 5e-7), M, num_iter=3)  # within the relative 1e-6
    plan = solve(A, B * 1.5, M, reg_m=1.0, num_iter=3)  # unbalanced: any masses
    assert np.isfinite(np.asarray(plan)).all()


@BACKENDS
@pytest.mark.parametrize(
    "options,message",
    [
        (dict(reg=0.0), "reg must be a positive"),
        (dict(reg=-1.0), "reg must be a positive"),
        (dict(reg=np.inf), "reg must be a positive finite"),
        (dict(reg=np.nan), "reg must be a positive"),
        (dict(reg="x"), "reg must be a positive"),
        (dict(method="fast"), "method must be one of"),
        (dict(reg_type="l2"), "reg_type must be one of"),
        (dict(num_iter=0), "num_iter must be a positive integer"),
        (dict(num_iter=2.5), "num_iter must be a positive integer"),
        (dict(num_iter=True), "num_iter must be a positive integer"),
        (dict(max_iter=0), "max_iter must be a positive integer"),
        (dict(tol=0.0), "tol must be a positive"),
        (dict(reg_m=-1.0), "reg_m must be a positive"),
        (dict(reg_m=(1.0, 0.0)), r"reg_m\[1\] must be a positive"),
        (dict(reg_m=(1.0, 2.0, 3.0)), "reg_m must be a number or a pair"),
        (dict(reg=1e-3, method="plain"), "method='plain' would underflow"),
    ],
)
def test_option_errors(solve, options, message):
    with pytest.raises(ValueError, match=message):
        solve(A, B, M, **options)


def test_non_real_inputs_are_refused():
    with pytest.raises(ValueError, match="real numbers"):
        sinkhorn(A.astype(complex), B, M, 0.1)
    with pytest.raises(ValueError, match="real numbers"):
        sinkhorn(A, B, M > 0, 0.1)
    with pytest.raises(ValueError, match="real numbers"):
        sinkhorn_torch(torch.tensor(A), torch.tensor(B), torch.tensor(M) > 0, 0.1)

"""Batched transport scores: the Numba autograd function against the torch twin, and gradcheck."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wsi_kernels import sinkhorn, transport_scores
from wsi_kernels._numba_scores import score_forward


def inputs(seed: int, B: int, n: int, m: int, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, n, generator=g, dtype=dtype).requires_grad_()
    y = torch.randn(B, m, generator=g, dtype=dtype).requires_grad_()
    la = torch.randn(B, n, generator=g, dtype=dtype).mul(3).requires_grad_()
    lb = torch.randn(B, m, generator=g, dtype=dtype).mul(3).requires_grad_()
    M = torch.rand(n, m, generator=g, dtype=dtype).mul(2).requires_grad_()
    return x, y, la, lb, M


def scores(backend, x, y, la, lb, M, reg=0.05, iters=20):
    return transport_scores(
        x, y, torch.softmax(la, -1), torch.softmax(lb, -1), M, reg, iters, backend=backend
    )


@pytest.mark.parametrize("shape", [(1, 46, 10), (37, 46, 10), (70, 10, 46), (5, 3, 7)])
def test_numba_matches_torch_twin_in_float64(shape):
    """Scores and all five gradients agree to 1e-6 (relative to the largest entry) in float64."""
    args = inputs(0, *shape)
    weights = torch.linspace(-1.0, 2.0, shape[0], dtype=torch.float64)
    results = []
    for backend in ("numba", "torch"):
        s = scores(backend, *args)
        results.append((s.detach(), *torch.autograd.grad((s * weights).sum(), args)))
    for ours, twin in zip(*results, strict=True):
        assert torch.isfinite(ours).all()
        scale = float(twin.abs().max()) + 1e-30
        assert float((ours - twin).abs().max()) <= 1e-6 * scale


def test_gradcheck_numba_function():
    """Analytic (Numba) gradients match finite differences of the Numba forward pass."""
    args = inputs(1, 4, 6, 5)
    assert torch.autograd.gradcheck(
        lambda *t: scores("numba", *t, reg=0.3, iters=12), args, eps=1e-6, atol=1e-6
    )


def test_forward_is_the_sinkhorn_plan_contracted():
    """The forward pass equals x^T P y, P from wsi_kernels.sinkhorn (partial last block, chunks)."""
    rng = np.random.default_rng(3)
    B, n, m = 4100, 4, 3  # 256 blocks of 16 and a partial one, in parallel chunks
    a, b = rng.dirichlet(np.ones(n), B), rng.dirichlet(np.ones(m), B)
    x, y, M = rng.standard_normal((B, n)), rng.standard_normal((B, m)), rng.random((n, m))
    plan = sinkhorn(a, b, M, 0.1, num_iter=20)
    expected = np.einsum("pij,pi,pj->p", plan, x, y)
    np.testing.assert_allclose(score_forward(x, y, a, b, M, 0.1, 20, 2), expected, rtol=1e-12)


def test_float32_inputs_keep_their_dtype_and_agree():
    args = inputs(2, 50, 46, 10, dtype=torch.float32)
    ours, twin = (scores(b, *args) for b in ("numba", "torch"))
    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours, twin, rtol=1e-3, atol=1e-4)


def test_float32_gradients_agree_with_the_torch_twin():
    """The float32 kernels (the model's dtype) against the float32 torch twin, all gradients."""
    args = inputs(4, 300, 46, 10, dtype=torch.float32)
    results = []
    for backend in ("numba", "torch"):
        s = scores(backend, *args)
        results.append(torch.autograd.grad((s * s).sum(), args))
    for ours, twin in zip(*results, strict=True):
        assert ours.dtype == torch.float32
        assert float((ours - twin).abs().max()) <= 1e-4 * float(twin.abs().max())


def test_numba_backend_refuses_costs_beyond_the_plain_iteration():
    x, y, la, lb, M = inputs(0, 3, 4, 2)
    with pytest.raises(ValueError, match="backend='torch'"):
        scores("numba", x, y, la, lb, M * 100.0, reg=0.05)


def test_numba_backend_refuses_unknown_backend():
    with pytest.raises(ValueError, match="backend"):
        scores("cuda-magic", *inputs(0, 2, 3, 2))

"""The torch twin: same results as the Numba kernels, gradients, autocast, devices, dtypes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from wsi_kernels import _common as common
from wsi_kernels import sinkhorn, sinkhorn_torch

REPO = Path(__file__).resolve().parents[2]


def problems(rng, B, n, m):
    M = rng.random((B, n, m))
    a = rng.dirichlet(np.ones(n), size=B)
    b = rng.dirichlet(np.ones(m), size=B)
    return M, a, b


def tensors(*xs, dtype=torch.float64):
    return tuple(torch.tensor(x, dtype=dtype) for x in xs)


OPTIONS = [
    dict(num_iter=20),
    dict(tol=1e-10),
    dict(num_iter=20, method="log"),
    dict(tol=1e-10, method="log"),
    dict(num_iter=25, reg_m=0.3),
    dict(tol=1e-10, reg_m=(0.3, np.inf), method="log"),
    dict(num_iter=25, reg_m=0.3, reg_type="entropy"),
]


@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize(
    "options", OPTIONS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items())
)
def test_twin_matches_numba(rng, options, shared):
    M, a, b = problems(rng, 9, 7, 5)
    a[3, 2] = 0.0
    a[3] /= a[3].sum()
    MM = M[0] if shared else M
    plan, info = sinkhorn(a, b, MM, 0.05, return_info=True, **options)
    tplan, tinfo = sinkhorn_torch(*tensors(a, b, MM), 0.05, return_info=True, **options)
    assert tplan.dtype == torch.float64
    np.testing.assert_allclose(tplan.numpy(), plan, rtol=0, atol=1e-13)
    np.testing.assert_array_equal(tinfo.n_iter.numpy(), info.n_iter)
    np.testing.assert_allclose(tinfo.cost.numpy(), info.cost, rtol=1e-12)
    np.testing.assert_allclose(
        tinfo.marginal_error.numpy(), info.marginal_error, rtol=1e-6, atol=1e-15
    )
    assert tinfo.method == info.method


def test_libra_mil_call_single_problem(rng):
    M, a, b = problems(rng, 1, 8, 5)
    mu, nu, C = tensors(a[0], b[0], M[0], dtype=torch.float32)
    C.requires_grad_(True)
    plan = sinkhorn_torch(mu, nu, C, reg=0.05, num_iter=20)
    assert plan.shape == (8, 5) and plan.dtype == torch.float32
    np.testing.assert_allclose(
        plan.detach().numpy(), sinkhorn(a[0], b[0], M[0], 0.05, num_iter=20), atol=1e-6
    )
    (plan * torch.arange(40.0).reshape(8, 5)).sum().backward()
    assert C.grad is not None and torch.isfinite(C.grad).all() and C.grad.abs().sum() > 0


@pytest.mark.parametrize("method", ["plain", "log"])
def test_gradcheck_cost_and_source_marginal(rng, method):
    M, a, b = problems(rng, 2, 4, 3)
    Mt, at, bt = tensors(M, a, b)
    Mt.requires_grad_(True)
    at.requires_grad_(True)

    def plan_of(M_, a_):
        # normalising keeps the balanced mass rule while every entry of a_ gets a gradient
        return sinkhorn_torch(
            a_ / a_.sum(-1, keepdim=True), bt, M_, 0.3, num_iter=10, method=method
        )

    assert torch.autograd.gradcheck(plan_of, (Mt, at))


def test_gradcheck_unbalanced_all_inputs(rng):
    M, a, b = problems(rng, 2, 3, 4)
    args = tuple(t.requires_grad_(True) for t in tensors(a * 1.5, b, M))

    def cost_of(a_, b_, M_):
        return sinkhorn_torch(a_, b_, M_, 0.3, reg_m=0.7, num_iter=8, return_info=True)[1].cost

    assert torch.autograd.gradcheck(cost_of, args)


def test_autocast_bf16_still_solves_in_fp32(rng):
    M, a, b = problems(rng, 4, 10, 6)
    mu, nu, C = tensors(a, b, M, dtype=torch.float32)
    C16 = C.bfloat16()
    # float64 reference on the same (bf16-rounded) costs: bf16 iterations would be ~1e-3 off
    reference = sinkhorn(
        mu.double().numpy(), nu.double().numpy(), C16.double().numpy(), 0.05, num_iter=20
    )
    with torch.autocast("cpu", dtype=torch.bfloat16):
        plan = sinkhorn_torch(mu, nu, C16, 0.05, num_iter=20)
    assert plan.dtype == torch.float32
    assert torch.isfinite(plan).all()
    np.testing.assert_allclose(plan.numpy(), reference, rtol=1e-5, atol=1e-8)


def test_dtypes_follow_the_inputs(rng):
    M, a, b = problems(rng, 2, 5, 4)
    assert sinkhorn_torch(*tensors(a, b, M), 0.1, num_iter=5).dtype == torch.float64
    assert (
        sinkhorn_torch(*tensors(a, b, M, dtype=torch.float32), 0.1, num_iter=5).dtype
        == torch.float32
    )
    p16 = sinkhorn_torch(
        *tensors(a, b, dtype=torch.float32), torch.tensor(M).half(), 0.1, num_iter=5
    )
    assert p16.dtype == torch.float32


def test_tolerance_mode_freezes_each_problem(rng):
    M, a, b = problems(rng, 6, 5, 5)
    plan, info = sinkhorn_torch(*tensors(a, b, M), 0.05, tol=1e-9, return_info=True)
    assert len(set(info.n_iter.tolist())) > 1
    for k in range(6):
        single, single_info = sinkhorn_torch(
            *tensors(a[k], b[k], M[k]), 0.05, tol=1e-9, return_info=True
        )
        assert int(single_info.n_iter) == int(info.n_iter[k])
        torch.testing.assert_close(plan[k], single, rtol=1e-13, atol=1e-16)
    assert (info.marginal_error < 1e-9).all()


def test_auto_resolves_plain_overflow_in_log_domain(rng, monkeypatch):
    M, a, b = problems(rng, 3, 5, 4)
    M[1, 0, :] = 1.0
    monkeypatch.setattr(common, "auto_limit", lambda largest: np.inf)
    plan, info = sinkhorn_torch(*tensors(a, b, M), 1e-3, num_iter=40, return_info=True)
    assert info.method == "plain+log" and torch.isfinite(plan).all()
    log_plan = sinkhorn_torch(*tensors(a, b, M), 1e-3, num_iter=40, method="log")
    torch.testing.assert_close(plan[1], log_plan[1])
    monkeypatch.setattr(common, "plain_limit", lambda tiny: np.inf)
    with pytest.raises(FloatingPointError):
        sinkhorn_torch(*tensors(a, b, M), 1e-3, num_iter=40, method="plain")


def test_small_epsilon_float32_stays_finite(rng):
    M, a, b = problems(rng, 3, 6, 5)
    mu, nu, C = tensors(a, b, M, dtype=torch.float32)
    plan, info = sinkhorn_torch(mu, nu, C, 1e-3, num_iter=200, return_info=True)
    assert info.method == "log"
    assert torch.isfinite(plan).all() and torch.isfinite(info.cost).all()
    np.testing.assert_allclose(plan.numpy(), sinkhorn(a, b, M, 1e-3, num_iter=200), atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(rng):
    M, a, b = problems(rng, 5, 46, 10)
    cpu = sinkhorn_torch(*tensors(a, b, M), 0.05, num_iter=20)
    gpu_args = [t.cuda().requires_grad_(True) for t in tensors(a, b, M)]
    gpu = sinkhorn_torch(*gpu_args, 0.05, num_iter=20)
    gpu.sum().backward()
    torch.testing.assert_close(gpu.cpu().detach(), cpu)
    assert torch.isfinite(gpu_args[2].grad).all()


def test_package_imports_without_torch_or_engine():
    code = (
        "import sys, numpy as np, wsi_kernels; "
        "wsi_kernels.sinkhorn(np.ones(2) / 2, np.ones(3) / 3, np.ones((2, 3)), 0.5, num_iter=2); "
        "assert 'torch' not in sys.modules and 'wsi_engine' not in sys.modules, sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)

"""Differentiable torch twin of :func:`wsi_kernels.sinkhorn` (CPU and CUDA, gradients through the
loop).

Same problem, options, iteration order, stopping rule and :class:`SinkhornInfo` as the Numba
kernels, so the two agree to rounding; here every iteration is a batched tensor operation that
autograd records.  This module is the only one in ``wsi_kernels`` that imports torch.
"""

from __future__ import annotations

from typing import Any, Unpack

import numpy as np
import torch

from . import _common
from ._common import Options, SinkhornInfo, SolverOptions


def sinkhorn_torch(
    a: Any,
    b: Any,
    M: Any,
    reg: float,
    *,
    return_info: bool = False,
    **options: Unpack[SolverOptions],
) -> torch.Tensor | tuple[torch.Tensor, SinkhornInfo]:
    r"""Entropic optimal transport plan(s) with gradients, on the device of the inputs.

    Same arguments, problem, rules and results as :func:`wsi_kernels.sinkhorn` (read its docstring
    for the maths, ``method``, ``reg_m``/``reg_type`` and the mass rule), on tensors:
    ``a`` (n,) or (B, n), ``b`` (m,) or (B, m), ``M`` (n, m) or (B, n, m), all on one device
    (non-tensors are converted with ``torch.as_tensor``).  Libra-MIL calls it as
    ``sinkhorn_torch(mu, nu, C, reg=0.05, num_iter=20)``.

    Precision: the solve runs in float64 if any input is float64, else in float32 (half and
    bfloat16 inputs are upcast), with autocast disabled inside, since ``exp(-M / 0.05)``
    underflows in half precision.  The plan and the info tensors come back in that dtype (never
    in half precision).  ``method="auto"`` uses the compute dtype's bound: float32 takes the plain
    iteration up to ``max(M) / reg <= 44``, float64 up to 354.

    Gradients flow to ``a``, ``b`` and ``M`` through every iteration (unrolled autograd).  With
    ``num_iter`` set the call never synchronises with the device inside the loop; the tolerance
    mode checks the batch once per iteration and freezes each problem at its own stopping
    iteration, as the Numba kernels do.  Input validation reads a few scalars back (one transfer).

    Returns:
        The plan, (n, m) or (B, n, m), or ``(plan, info)``; ``info`` fields are tensors of shape
        (B,) or 0-d (``n_iter`` int64, ``cost`` differentiable, ``marginal_error`` detached).
    """
    a, b, M = _as_tensors(a, b, M)
    B, n, m = _common.batch_shape(tuple(a.shape), tuple(b.shape), tuple(M.shape))
    opts = _common.parse_options(reg, **options)
    dtype = torch.float64 if torch.float64 in (a.dtype, b.dtype, M.dtype) else torch.float32
    with torch.autocast(device_type=M.device.type, enabled=False):
        a, b, M = a.to(dtype), b.to(dtype), M.to(dtype)
        zero_a, zero_b, max_cost = _validate(a, b, M, opts)
        info = torch.finfo(dtype)
        chosen = _common.choose_method(opts.method, max_cost / opts.reg, info.max, info.tiny)
        size = 1 if B is None else B
        a2, b2 = a.expand(size, n), b.expand(size, m)
        M3 = M if M.dim() == 3 else M.unsqueeze(0)
        solve = _solve_plain if chosen == "plain" else _solve_log
        plan, cost, n_iter, err = solve(M3, a2, b2, opts, zero_a, zero_b)
        if chosen == "plain":
            bad = ~(torch.isfinite(cost) & torch.isfinite(err))
            if bool(bad.any()):
                if opts.method == "plain":
                    raise FloatingPointError(
                        f"plain Sinkhorn over/underflowed for {int(bad.sum())} problem(s); "
                        "use method='log' or 'auto'"
                    )
                redo = _solve_log(M3, a2, b2, opts, zero_a, zero_b)
                plan, cost, n_iter, err = (
                    torch.where(bad.view((-1,) + (1,) * (x.dim() - 1)), y, x)
                    for x, y in zip((plan, cost, n_iter, err), redo, strict=True)
                )
                chosen = "plain+log"
    return _common.package(plan, cost, n_iter, err.detach(), chosen, B is not None, return_info)


def _as_tensors(*xs: Any) -> tuple[torch.Tensor, ...]:
    """Inputs as real-valued tensors on one device (ValueError otherwise)."""
    ts = tuple(torch.as_tensor(x) for x in xs)
    for name, t in zip("abM", ts, strict=True):
        if t.dtype == torch.bool or t.is_complex():
            raise ValueError(f"{name} must hold real numbers, got dtype {t.dtype}")
    devices = {t.device for t in ts}
    if len(devices) > 1:
        raise ValueError(f"a, b and M must be on one device, got {sorted(map(str, devices))}")
    return ts


def _validate(a: torch.Tensor, b: torch.Tensor, M: torch.Tensor, opts: Options):
    """Apply the input rules with one device-to-host transfer.

    Returns ``(a has zeros, b has zeros, max(M))``.
    """
    a, b, M = a.detach(), b.detach(), M.detach()
    scalars = torch.stack(
        [torch.isfinite(a).all(), torch.isfinite(b).all(), torch.isfinite(M).all()]
    ).to(a.dtype)
    extremes = torch.stack([a.min(), b.min(), M.min(), M.max()])
    mass_a, mass_b = a.sum(-1).reshape(-1), b.sum(-1).reshape(-1)
    host = torch.cat([scalars, extremes, mass_a, mass_b]).cpu().numpy().astype(np.float64)
    finite, (min_a, min_b, min_M, max_M) = host[:3], host[3:7]
    for name, ok, low in zip("abM", finite, (min_a, min_b, min_M), strict=True):
        _common.check_entries(name, bool(ok), float(low))
    _common.check_masses(host[7 : 7 + mass_a.numel()], host[7 + mass_a.numel() :], opts.balanced)
    return bool(min_a == 0), bool(min_b == 0), float(max_M)


def _safe_log(x: torch.Tensor, factor: float, has_zero: bool) -> torch.Tensor:
    """``factor * log(x)`` with -inf at zeros and finite gradients there (double ``where``)."""
    if not has_zero:
        return factor * torch.log(x)
    pos = x > 0
    return torch.where(pos, factor * torch.log(torch.where(pos, x, 1.0)), -torch.inf)


def _safe_pow(x: torch.Tensor, power: float, has_zero: bool) -> torch.Tensor:
    """``x ** power`` keeping 0 at zeros with finite gradients there (power > 0)."""
    if power == 1.0:
        return x
    if not has_zero:
        return x**power
    pos = x > 0
    return torch.where(pos, torch.where(pos, x, 1.0) ** power, 0.0)


def _matvec(K: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Row sums of ``K diag(v)``: (B, n) from K (1|B, n, m) and v (B, m)."""
    if K.shape[0] == 1:
        return v @ K[0].T
    return torch.bmm(K, v.unsqueeze(2)).squeeze(2)


def _rmatvec(K: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Column sums of ``diag(u) K``: (B, m) from K (1|B, n, m) and u (B, n)."""
    if K.shape[0] == 1:
        return u @ K[0]
    return torch.bmm(u.unsqueeze(1), K).squeeze(1)


def _lse_rows(logK: torch.Tensor, lv: torch.Tensor) -> torch.Tensor:
    """``log sum_j exp(logK[i, j] + lv[j])`` per problem: (B, n)."""
    return torch.logsumexp(logK + lv.unsqueeze(1), dim=2)


def _lse_cols(logK: torch.Tensor, lu: torch.Tensor) -> torch.Tensor:
    """``log sum_i exp(logK[i, j] + lu[i])`` per problem: (B, m)."""
    return torch.logsumexp(logK + lu.unsqueeze(2), dim=1)


class _Stopper:
    """Per-problem stopping state shared by both iterations (mirrors ``_stop_lanes``)."""

    def __init__(self, opts: Options, size: int, like: torch.Tensor):
        self.opts = opts
        self.active = torch.ones(size, dtype=torch.bool, device=like.device)
        self.n_iter = torch.full((size,), opts.iters, dtype=torch.int64, device=like.device)
        self.err = torch.zeros(size, dtype=like.dtype, device=like.device)

    def checks(self, it: int) -> bool:
        """Whether the error is measured at iteration ``it``."""
        return it == self.opts.iters or (self.opts.check_tol and it > 0)

    def update(self, it: int, err: torch.Tensor) -> bool:
        """Record the problems that stop at ``it``; True when all have stopped."""
        if it == self.opts.iters:
            done = self.active
        else:
            done = self.active & (err < self.opts.tol)
        self.n_iter = torch.where(done, it, self.n_iter)
        self.err = torch.where(done, err.detach(), self.err)
        self.active = self.active & ~done
        return it == self.opts.iters or not bool(self.active.any())

    def keep(self, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
        """``new`` for the problems still iterating, ``old`` for the stopped ones."""
        if not self.opts.check_tol:
            return new
        return torch.where(self.active.unsqueeze(1), new, old)


def _solve_plain(M3, a2, b2, opts: Options, zero_a: bool, zero_b: bool):
    """Scaling iteration; returns ``(plan, cost, n_iter, err)`` for the (B, ...) batch."""
    K = torch.exp(M3 / -opts.reg)
    ta = _safe_pow(a2, 1.0 if opts.kl_ref else opts.fi_a, zero_a)
    tb = _safe_pow(b2, 1.0 if opts.kl_ref else opts.fi_b, zero_b)
    v = tb if opts.kl_ref else torch.ones_like(b2)
    u = torch.zeros_like(a2)
    stop = _Stopper(opts, a2.shape[0], a2)
    for it in range(opts.iters + 1):
        s = _matvec(K, v)
        un = ta / s if opts.fi_a == 1.0 else ta * s ** (-opts.fi_a)
        if stop.checks(it) and stop.update(it, torch.linalg.vector_norm(s * (un - u), dim=1)):
            break
        u = stop.keep(un, u)
        sm = _rmatvec(K, u)
        vn = tb / sm if opts.fi_b == 1.0 else tb * sm ** (-opts.fi_b)
        v = stop.keep(vn, v)
    plan = u.unsqueeze(2) * K * v.unsqueeze(1)
    return plan, (plan * M3).sum(dim=(1, 2)), stop.n_iter, stop.err


def _solve_log(M3, a2, b2, opts: Options, zero_a: bool, zero_b: bool):
    """Log-domain iteration; returns ``(plan, cost, n_iter, err)`` for the (B, ...) batch."""
    logK = M3 / -opts.reg
    la = _safe_log(a2, 1.0 if opts.kl_ref else opts.fi_a, zero_a)
    lb = _safe_log(b2, 1.0 if opts.kl_ref else opts.fi_b, zero_b)
    lv = lb if opts.kl_ref else torch.zeros_like(b2)
    lu = torch.full_like(a2, -torch.inf)
    stop = _Stopper(opts, a2.shape[0], a2)
    for it in range(opts.iters + 1):
        s = _lse_rows(logK, lv)
        lun = la - opts.fi_a * s
        if stop.checks(it):
            err = torch.linalg.vector_norm(torch.exp(s + lun) - torch.exp(s + lu), dim=1)
            if stop.update(it, err):
                break
        lu = stop.keep(lun, lu)
        lv = stop.keep(lb - opts.fi_b * _lse_cols(logK, lu), lv)
    plan = torch.exp(logK + lu.unsqueeze(2) + lv.unsqueeze(1))
    return plan, (plan * M3).sum(dim=(1, 2)), stop.n_iter, stop.err

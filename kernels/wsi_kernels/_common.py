"""Backend-independent parts of the Sinkhorn solvers: option parsing, input rules, method choice.

Nothing here imports NumPy arrays into kernels or touches torch; the two backends compute the few
reductions the rules need (finiteness, minima, masses) and hand plain Python/NumPy values in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, TypedDict

import numpy as np

#: Balanced problems refuse marginals whose total masses differ by more than this relative amount.
MASS_RTOL = 1e-6

METHODS = ("auto", "plain", "log")
REG_TYPES = ("kl", "entropy")


@dataclass(frozen=True)
class SinkhornInfo:
    """What a solve reports besides the plan (``return_info=True``).

    For a batch every field except ``method`` has shape ``(B,)``; for a single problem it is a
    scalar (a Python/NumPy scalar in the NumPy backend, a 0-d tensor in the torch backend).

    Attributes:
        cost: linear transport cost ``<P, M>`` in the units of ``M`` (for the unbalanced problem
            too: it is POT's ``log["cost"]``, not the regularised objective).
        n_iter: full iterations done (one row update and one column update each).
        marginal_error: L2 norm of the change the next row update would make to the plan's row
            sums, ``||s * (u_next - u)||_2`` with ``s = K v``.  In the balanced case this is
            exactly ``||P 1 - a||_2`` (the column sums equal ``b`` after the last column update).
        method: ``"plain"``, ``"log"``, or ``"plain+log"`` when ``method="auto"`` re-solved some
            problems of a batch in the log domain because the plain iteration over/underflowed.
    """

    cost: Any
    n_iter: Any
    marginal_error: Any
    method: str


class SolverOptions(TypedDict, total=False):
    """Keyword options of :func:`wsi_kernels.sinkhorn` and its torch twin (defaults and rules in
    :func:`parse_options`; meaning in the docstring of :func:`wsi_kernels.sinkhorn`)."""

    num_iter: int | None
    tol: float
    max_iter: int
    method: str
    reg_m: float | tuple[float, float] | None
    reg_type: str


def package(plan: Any, cost: Any, n_iter: Any, err: Any, method: str, batched: bool, info: bool):
    """What a solver returns: the plan, or ``(plan, SinkhornInfo)`` with ``info``; the first
    problem's values alone when the call was not batched."""
    if not batched:
        plan, cost, n_iter, err = plan[0], cost[0], n_iter[0], err[0]
    if not info:
        return plan
    return plan, SinkhornInfo(cost=cost, n_iter=n_iter, marginal_error=err, method=method)


@dataclass(frozen=True)
class Options:
    """Validated solver options (see :func:`parse_options`)."""

    reg: float
    iters: int  # fixed iteration count, or the cap when ``check_tol``
    check_tol: bool
    tol: float
    method: str
    balanced: bool
    fi_a: float  # exponent of the row scaling update, reg_m1 / (reg_m1 + reg); 1 when balanced
    fi_b: float
    kl_ref: bool  # unbalanced KL(P | a b^T) reference (POT's reg_type="kl") instead of entropy


def batch_shape(a_shape: tuple, b_shape: tuple, M_shape: tuple) -> tuple[int | None, int, int]:
    """Resolve ``(B, n, m)`` from the input shapes; ``B`` is None for a single problem.

    Accepted: ``a`` (n,) or (B, n); ``b`` (m,) or (B, m); ``M`` (n, m) shared or (B, n, m).
    Unbatched inputs are shared by every problem of the batch.
    """
    if len(a_shape) not in (1, 2):
        raise ValueError(f"a must have shape (n,) or (B, n), got {tuple(a_shape)}")
    if len(b_shape) not in (1, 2):
        raise ValueError(f"b must have shape (m,) or (B, m), got {tuple(b_shape)}")
    if len(M_shape) not in (2, 3):
        raise ValueError(f"M must have shape (n, m) or (B, n, m), got {tuple(M_shape)}")
    n, m = M_shape[-2], M_shape[-1]
    if n == 0 or m == 0:
        raise ValueError(f"M must not be empty, got shape {tuple(M_shape)}")
    if a_shape[-1] != n:
        raise ValueError(
            f"a has {a_shape[-1]} entries but M has {n} rows (M shape {tuple(M_shape)})"
        )
    if b_shape[-1] != m:
        raise ValueError(
            f"b has {b_shape[-1]} entries but M has {m} columns (M shape {tuple(M_shape)})"
        )
    batched = [s[0] for s, nd in ((a_shape, 2), (b_shape, 2), (M_shape, 3)) if len(s) == nd]
    if len(set(batched)) > 1:
        raise ValueError(
            f"batch sizes differ: a {tuple(a_shape)}, b {tuple(b_shape)}, M {tuple(M_shape)}"
        )
    if not batched:
        return None, n, m
    if batched[0] == 0:
        raise ValueError("the batch is empty (B = 0)")
    return batched[0], n, m


def _positive_float(name: str, value: Any, allow_inf: bool = False) -> float:
    """``float(value)`` if it is > 0 (and finite unless ``allow_inf``), else ValueError."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, got {value!r}") from None
    if not (x > 0) or (math.isinf(x) and not allow_inf):
        raise ValueError(
            f"{name} must be a positive {'' if allow_inf else 'finite '}number, got {value!r}"
        )
    return x


def _reg_m_pair(reg_m: Any) -> tuple[float, float]:
    """``reg_m`` as (row, column) relaxation strengths: a number, or a pair of numbers (inf allowed)."""
    if np.ndim(reg_m) == 0:
        x = _positive_float("reg_m", reg_m, allow_inf=True)
        return x, x
    pair = list(np.asarray(reg_m, dtype=object).ravel())
    if len(pair) != 2:
        raise ValueError(f"reg_m must be a number or a pair of numbers, got {reg_m!r}")
    return (
        _positive_float("reg_m[0]", pair[0], allow_inf=True),
        _positive_float("reg_m[1]", pair[1], allow_inf=True),
    )


def _relaxation_exponent(reg_m: float, reg: float) -> float:
    """Exponent ``reg_m / (reg_m + reg)`` of the KL-relaxed scaling update (1 for a hard marginal)."""
    return 1.0 if math.isinf(reg_m) else reg_m / (reg_m + reg)


def parse_options(
    reg: Any,
    num_iter: Any = None,
    tol: Any = 1e-9,
    max_iter: Any = 1000,
    method: Any = "auto",
    reg_m: Any = None,
    reg_type: Any = "kl",
) -> Options:
    """Check the scalar options shared by both backends and return them normalised.

    The defaults are those of :func:`wsi_kernels.sinkhorn` and :func:`wsi_kernels.sinkhorn_torch`.
    """
    reg = _positive_float("reg", reg)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if reg_type not in REG_TYPES:
        raise ValueError(f"reg_type must be one of {REG_TYPES}, got {reg_type!r}")
    if num_iter is not None:
        iters, check_tol, tol = _count("num_iter", num_iter), False, 0.0
    else:
        iters, check_tol, tol = _count("max_iter", max_iter), True, _positive_float("tol", tol)
    if reg_m is None:
        return Options(reg, iters, check_tol, tol, method, True, 1.0, 1.0, False)
    rm_a, rm_b = _reg_m_pair(reg_m)
    fi_a, fi_b = _relaxation_exponent(rm_a, reg), _relaxation_exponent(rm_b, reg)
    return Options(reg, iters, check_tol, tol, method, False, fi_a, fi_b, reg_type == "kl")


def _count(name: str, value: Any) -> int:
    """A positive iteration count (bool and non-integral values refused)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_entries(name: str, all_finite: bool, minimum: float) -> None:
    """Refuse non-finite or negative entries of a cost matrix or marginal."""
    if not all_finite:
        raise ValueError(f"{name} has non-finite entries (NaN or inf)")
    if minimum < 0:
        raise ValueError(f"{name} has negative entries (min {minimum:.6g})")


def check_masses(mass_a: np.ndarray, mass_b: np.ndarray, balanced: bool) -> None:
    """Mass rule: every marginal needs a positive total; balanced problems need equal totals.

    Balanced totals must agree to a relative ``MASS_RTOL`` (1e-6); they are never rescaled, so a
    mismatch is refused with both sums in the message.  ``mass_a``/``mass_b`` hold one total per
    problem (broadcastable against each other).
    """
    mass_a, mass_b = np.broadcast_arrays(np.atleast_1d(mass_a), np.atleast_1d(mass_b))
    for name, mass in (("a", mass_a), ("b", mass_b)):
        if np.any(mass <= 0):
            k = int(np.argmax(mass <= 0))
            raise ValueError(f"{name} has zero total mass (problem {k})")
    if not balanced:
        return
    gap = np.abs(mass_a - mass_b) > MASS_RTOL * np.maximum(mass_a, mass_b)
    if np.any(gap):
        k = int(np.argmax(gap))
        raise ValueError(
            f"balanced problem needs equal masses: sum(a) = {mass_a[k]:.17g} but "
            f"sum(b) = {mass_b[k]:.17g} (problem {k}); normalise a and b, or pass reg_m "
            "for the unbalanced problem"
        )


def plain_limit(tiny: float) -> float:
    """Largest ``max(M) / reg`` for which ``exp(-M / reg)`` stays a normal number: ``-log(tiny)``."""
    return -math.log(tiny)


def auto_limit(largest: float) -> float:
    """``max(M) / reg`` up to which ``method="auto"`` uses the plain iteration: ``log(largest) / 2``.

    With ``R = max(M) / reg`` the kernel entries lie in ``[exp(-R), 1]`` and the scalings need
    about ``exp(+-(R + |log(smallest marginal entry)|))``; stopping at half the exponent range
    leaves the other half for the marginals (float64: R <= 354, float32: R <= 44).
    """
    return math.log(largest) / 2


def choose_method(method: str, cost_ratio: float, largest: float, tiny: float) -> str:
    """Pick ``"plain"`` or ``"log"`` for ``cost_ratio = max(M) / reg`` in a float type.

    ``largest``/``tiny`` are the type's largest and smallest normal values.  ``"auto"`` takes
    the plain iteration when ``cost_ratio <= auto_limit(largest)``; an explicit ``"plain"`` is
    refused when ``exp(-max(M)/reg)`` would underflow (``cost_ratio > plain_limit(tiny)``).
    """
    if method == "log":
        return "log"
    if method == "plain":
        if cost_ratio > plain_limit(tiny):
            raise ValueError(
                f"method='plain' would underflow: max(M)/reg = {cost_ratio:.4g} > "
                f"{plain_limit(tiny):.4g}, so exp(-M/reg) leaves the float range; "
                "use method='log' or 'auto'"
            )
        return "plain"
    return "plain" if cost_ratio <= auto_limit(largest) else "log"

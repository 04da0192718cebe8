"""Crossover points: the context T at which one cost overtakes another.

:func:`crossover` works on any two sympy expressions in ``T`` (FLOPs, bytes, seconds): it gives
the exact root where sympy can find one (polynomials, rational functions) and, always, the
smallest whole number of tokens at which the first expression exceeds the second, found on the
integers by bracketing and bisection (so formulas with ``ceil``/``log2``/``max`` work too).

:func:`flop_conventions` compares attention and FFN FLOPs under several counting conventions,
to show where AERO's "FFN FLOPs dominate when T < 8/3 d" comes from and what picost's own
convention gives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from picost.errors import UserError
from picost.model.ops import Block

T_MAX = 2**40
"""Largest context searched for an integer crossover (tokens)."""


@dataclass(frozen=True)
class Crossover:
    """Where ``a`` overtakes ``b`` as T grows.

    ``exact``: the real root of ``a = b`` beyond which ``a > b`` (a sympy expression, possibly
    in other symbols such as ``d``), or None when sympy cannot solve it or it does not exist.
    ``first_t``: the smallest integer T >= 1 with ``a(T) > b(T)`` (None if ``a <= b`` for every
    T up to :data:`T_MAX`, or when the expressions have other free symbols).
    ``always``: ``"a"`` when a > b already at the smallest T where both are defined (T = 1 for
    most formulas), ``"b"`` when a never overtakes b, else None.
    """

    exact: Any
    first_t: int | None
    always: str | None


def crossover(a: Any, b: Any, T: Any) -> Crossover:
    """The T at which ``a`` overtakes ``b`` (see :class:`Crossover`)."""
    import sympy

    diff = sympy.sympify(a) - sympy.sympify(b)
    exact = _exact_root(diff, T) if _solvable(diff, T) else None
    if diff.free_symbols - {T}:
        return Crossover(exact, None, None)
    f = _integer_fn(diff, T)
    start = next((t for t in range(1, 17) if math.isfinite(f(t))), None)
    if start is None:
        raise UserError("a cost formula is undefined for every T in 1..16 (outside its domain)", field="T")
    if f(start) > 0:
        return Crossover(exact, start, "a")
    hi = 2 * start
    while hi <= T_MAX and f(hi) <= 0:
        hi *= 2
    if hi > T_MAX:
        return Crossover(exact, None, "b")
    lo = hi // 2  # f(lo) <= 0 < f(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if f(mid) <= 0 else (lo, mid)
    return Crossover(exact, hi, None)


def _solvable(diff: Any, T: Any) -> bool:
    """Whether to ask sympy for an exact root: polynomials and ratios of them only (sympy's
    solver can take very long on the ceil/floor/log terms of some protocol formulas)."""
    import sympy

    num, den = sympy.fraction(sympy.together(diff))
    return num.is_polynomial(T) and den.is_polynomial(T)


def _integer_fn(diff: Any, T: Any) -> Callable[[int], float]:
    """``diff`` as a function of an integer T: numpy-evaluated (exact log2), for speed."""
    import numpy as np

    from picost.cost.formula import lambdify_numpy

    fn = lambdify_numpy(diff, [T])

    def f(t: int) -> float:
        with np.errstate(all="ignore"):
            return float(np.asarray(fn(np.array([float(t)])), dtype=float).ravel()[0])

    return f


def _exact_root(diff: Any, T: Any) -> Any:
    """The largest positive real root of ``diff`` in ``T`` after which ``diff`` is positive."""
    import sympy

    real_t = sympy.Symbol("T", positive=True)  # an integer T would hide non-integer roots
    diff = diff.subs(T, real_t)
    T = real_t
    try:
        roots = sympy.solve(sympy.Eq(diff, 0), T)
    except (NotImplementedError, TypeError, ValueError):
        return None
    candidates = []
    for root in roots:
        if root.is_real is False or root.is_positive is False:
            continue
        candidates.append(root)
    if not candidates:
        return None
    # the last root where diff turns positive; with other symbols, trust the single positive root
    if len(candidates) == 1:
        root = candidates[0]
    else:
        numeric = [(c, complex(c.evalf())) for c in candidates if not c.free_symbols]
        if len(numeric) != len(candidates):
            return None
        root = max(numeric, key=lambda p: p[1].real)[0]
    above = diff.subs(T, root * 2 + 1) if not root.free_symbols else None
    if above is not None and not bool(above > 0):
        return None
    return sympy.nsimplify(root) if root.is_number and not root.is_Rational else root


# ---------------------------------------------------------------------------------------------
# Attention vs FFN FLOPs under counting conventions
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FlopConvention:
    """Attention and FFN FLOPs under one counting convention, and where attention overtakes."""

    name: str
    description: str
    attention: Any
    ffn: Any
    crossover: Any
    """Exact T (in terms of ``d`` when ``d`` is symbolic) at which attention FLOPs overtake FFN."""


def flop_conventions(spec: Any, symbolic_width: bool = True) -> list[FlopConvention]:
    """Attention vs FFN FLOPs of ``spec`` in ``T`` (and ``d`` if ``symbolic_width``) under:

    * ``picost``: 2 FLOPs per multiply-add; attention = QKV and output projections + QK^T + AV,
      masked scores computed (picost's convention, :mod:`picost.model.flops`);
    * ``scores-only``: attention = QK^T + AV only (projections counted with the linears);
    * ``causal``: like ``picost`` but QK^T and AV only over unmasked scores (T(T+1)/2 per head);
    * ``kaplan``: Kaplan et al. 2020 per-token forward count, whose attention term
      ``2 n_ctx d_attn`` counts QK^T once (AV not counted apart), plus the projections.

    Counting a multiply-add as 1 FLOP halves both sides and moves no crossover.
    """
    import sympy

    from picost.model.flops import symbolic_flops

    groups = symbolic_flops(spec, ("T", "d") if symbolic_width else ("T",))
    T = sympy.Symbol("T", positive=True, integer=True)
    proj, sv, ffn = groups["attn_proj"], groups["attn_scores_values"], groups["ffn"]
    causal_sv = sympy.expand(sv * _unmasked_fraction(spec, T))
    rows = [
        ("picost", "2 FLOPs/MAC; attention = QKV + out projections + QK^T + AV (masked scores computed)",
         proj + sv),
        ("scores-only", "attention = QK^T + AV only; projections counted apart", sv),
        ("causal", "as picost, but QK^T and AV only over the T(T+1)/2 unmasked scores per head",
         proj + causal_sv),
        ("kaplan", "Kaplan et al. 2020: projections + QK^T only (2 n_ctx d_attn per token per layer)",
         proj + sv / 2),
    ]
    out = []
    for name, description, attention in rows:
        attention = sympy.expand(attention)
        out.append(FlopConvention(name, description, attention, ffn, crossover(attention, ffn, T).exact))
    return out


def _unmasked_fraction(spec: Any, T: Any) -> Any:
    """Unmasked scores / all scores of the first softmax, lowered at symbolic T."""
    from picost.model.lower import lower

    for op in lower(spec, T).ops:
        if op.kind == "softmax" and op.block is Block.ATTENTION:
            return op.dims["valid"] / (op.dims["rows"] * op.dims["cols"])
    return 1


def aero_claim_condition() -> str:
    """What AERO's threshold requires, in the per-layer form FFN = f T d^2 vs attention
    a T d^2 + b T^2 d (crossover T* = (f - a) / b * d)."""
    return ("T* = (f - a)/b * d for FFN = f*T*d^2 and attention = a*T*d^2 + b*T^2*d; AERO's 8/3*d "
            "needs (f - a)/b = 8/3, e.g. FFN 16*T*d^2 against an attention term 6*T^2*d with no "
            "projections, or projections 8*T*d^2 with 3*T^2*d")


# ---------------------------------------------------------------------------------------------
# Cost crossovers under a protocol and a network
# ---------------------------------------------------------------------------------------------

def cost_crossovers(forms: Any, network: Any) -> dict[str, Crossover]:
    """Crossovers of :class:`~picost.analysis.closed_forms.ClassForms` in ``T`` over ``network``:

    * ``softmax_comm_vs_rest``: the T at which softmax communication exceeds that of all other
      classes together;
    * ``bandwidth_vs_rounds``: the T at which the time moving bytes (comm_bytes * 8 / bandwidth)
      exceeds the time waiting on rounds (rounds * RTT/2): below it latency is round-bound,
      above it bandwidth-bound.
    """
    T = forms.T
    out = {}
    if "softmax" in forms.forms:
        others = [c for c in forms.forms if c != "softmax"]
        out["softmax_comm_vs_rest"] = crossover(forms.total("comm_bytes", ["softmax"]),
                                                forms.total("comm_bytes", others), T)
    out["bandwidth_vs_rounds"] = crossover(forms.transfer_s(network), forms.round_delay_s(network), T)
    return out

"""Piecewise polynomials (degree <= 2) behind the engine's nonlinear functions.

A :class:`Spline` splits the real line at public thresholds ``t_1 < ... < t_J`` into J + 1
segments; on segment ``j`` it is ``a2 (x - m)^2 + a1 (x - m) + a0`` around the segment's centre
``m``. The 2PC protocol (:func:`picost.mpc.protocols.spline`) evaluates one with a single masked
opening of x, one byte per threshold and (unless the spline is exact) one truncation.

Each interior segment is a least-squares quadratic on 64 Chebyshev points of the segment. The
approximations and their measured max abs errors (float64, on a dense grid) are pinned in
tests/test_mpc_units.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np

Piece = tuple[float, float, float, float]
"""(centre m, a2, a1, a0): the polynomial a2 (x-m)^2 + a1 (x-m) + a0."""


@dataclass(frozen=True)
class Spline:
    """A piecewise polynomial: ``pieces[j]`` holds on ``[thresholds[j-1], thresholds[j])``."""

    name: str
    thresholds: tuple[float, ...]
    pieces: tuple[Piece, ...]
    exact: bool = False
    """All coefficients are small integers of degree <= 1 (e.g. ReLU): no truncation needed."""

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Plaintext evaluation (float64), for tests and error reports."""
        x = np.asarray(x, dtype=np.float64)
        seg = np.searchsorted(np.asarray(self.thresholds), x, side="right")
        out = np.zeros_like(x)
        for j, (m, a2, a1, a0) in enumerate(self.pieces):
            sel = seg == j
            d = x[sel] - m
            out[sel] = a2 * d * d + a1 * d + a0
        return out


def _fit(fn: Callable[[np.ndarray], np.ndarray], lo: float, hi: float) -> Piece:
    m = (lo + hi) / 2
    k = np.arange(64)
    x = m + (hi - lo) / 2 * np.cos((2 * k + 1) * np.pi / 128)
    a2, a1, a0 = np.polyfit(x - m, fn(x), 2)
    return (m, float(a2), float(a1), float(a0))


def fitted(name: str, fn: Callable[[np.ndarray], np.ndarray], breaks: list[float],
           below: Piece, above: Piece | None = None) -> Spline:
    """A spline of least-squares quadratics between ``breaks``; ``below``/``above`` outside
    (``above`` defaults to the last interior piece extended)."""
    inner = [_fit(fn, lo, hi) for lo, hi in zip(breaks[:-1], breaks[1:])]
    if above is None:
        return Spline(name, tuple(breaks[:-1]), (below, *inner))
    return Spline(name, tuple(breaks), (below, *inner, above))


_ZERO: Piece = (0.0, 0.0, 0.0, 0.0)
_IDENTITY: Piece = (0.0, 0.0, 1.0, 0.0)

RELU = Spline("relu", (0.0,), (_ZERO, _IDENTITY), exact=True)


def _gelu(x: np.ndarray) -> np.ndarray:
    from math import erf

    return x * 0.5 * (1 + np.vectorize(erf)(x / math.sqrt(2)))


def _gelu_tanh(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def _silu(x: np.ndarray) -> np.ndarray:
    return x / (1 + np.exp(-x))


@lru_cache(maxsize=None)
def spline(name: str) -> Spline:
    """The engine's spline for ``name``: relu, gelu, gelu_tanh, silu, exp, reciprocal, rsqrt."""
    if name == "relu":
        return RELU
    if name in ("gelu", "gelu_tanh"):
        # 0 below -4 and x above 4 (|error| there < 1.3e-4); quadratics every 1.0 in between.
        fn = _gelu if name == "gelu" else _gelu_tanh
        return fitted(name, fn, [float(b) for b in range(-4, 5)], _ZERO, _IDENTITY)
    if name == "silu":
        breaks = [-12.0, -8.0, -6.0, -4.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0]
        return fitted(name, _silu, breaks, _ZERO, _IDENTITY)
    if name == "exp":
        # inputs are <= 0 (softmax subtracts the row max); 0 below -16 (exp(-16) = 1.1e-7).
        breaks = [-16.0, -12.0, -10.0, -8.0, -7.0, -6.0, -5.0, -4.0, -3.0, -2.5, -2.0, -1.5, -1.0,
                  -0.5, 0.0]
        return fitted(name, np.exp, breaks, _ZERO)
    if name == "reciprocal":
        # initial guess for Newton on [1, 2^12] (softmax denominators: 1 <= sum <= cols)
        breaks = [2 ** (i / 2) for i in range(0, 25)]
        return fitted(name, lambda x: 1 / x, breaks, _fit(lambda x: 1 / x, 1.0, 2 ** 0.5))
    if name == "rsqrt":
        # initial guess for Newton on [2^-8, 2^16] (variances of normalized rows)
        breaks = [2 ** (i / 2) for i in range(-16, 33)]
        return fitted(name, lambda x: 1 / np.sqrt(x), breaks,
                      _fit(lambda x: 1 / np.sqrt(x), 2 ** -8, 2 ** -7.5))
    raise KeyError(name)


PLAIN: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "gelu": _gelu, "gelu_tanh": _gelu_tanh, "silu": _silu, "relu": lambda x: np.maximum(x, 0),
    "exp": np.exp, "reciprocal": lambda x: 1 / x, "rsqrt": lambda x: 1 / np.sqrt(x),
}

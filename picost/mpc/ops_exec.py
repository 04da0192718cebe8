"""One secure function per op kind of the IR (:data:`picost.model.ops.KINDS`).

Inputs and outputs are shares with ``ctx.frac_bits`` fractional bits (shape as in the model);
server-held operands are ring-encoded tensors on the server and None elsewhere. Each function
runs inside ``ctx.tx.op(name)``; the closing rescale of a fixed-point product is attributed to
``<name>.trunc`` (as the estimate's truncation rows). Costs: ``protocols/picost-2pc.yaml``.

Every op is a :func:`stage`: its preprocessing (a rehearsal that takes the dealer's material)
runs just before its online phase, so a party holds one op's material at a time. The server's
weights in products (linears, the embedding, norm gains) are masked once per model
(:meth:`~picost.mpc.dealer.Correlations.weight_mask`, keyed by the op's name).
"""

from __future__ import annotations

import functools
import math
import time
from typing import Any, Callable, TypeVar

import torch

from picost.mpc import protocols as P
from picost.mpc.protocols import Ctx
from picost.mpc.ring import encode
from picost.mpc.splines import RELU, spline
from picost.mpc.transport import CLIENT, DEALER, SERVER

NORM_EPS = 1e-5
MASKED_SCORE = -1024.0
"""What a causally masked score is replaced by before the softmax (exp of it is exactly 0)."""


Fn = TypeVar("Fn", bound=Callable[..., Any])


def stage(fn: Fn) -> Fn:
    """Run op ``fn(ctx, ...)`` offline, then online (streamed preprocessing). Client and server
    first rehearse it (online messages muted) taping what they draw, receive from the dealer or
    precompute; they wait for each other (op ``_ready``, uncounted); then they run it online from
    the tape. The dealer runs it once. Nested ops run within the outer op's stage."""
    @functools.wraps(fn)
    def run(ctx: Ctx, *args: Any, **kwargs: Any) -> Any:
        if ctx.staging or ctx.role == DEALER:
            return fn(ctx, *args, **kwargs)
        ctx.staging = True
        try:
            start = time.perf_counter()
            ctx.tx.rehearsal = True
            ctx.pre.record()
            try:
                fn(ctx, *args, **kwargs)
            finally:
                ctx.tx.rehearsal = False
            ctx.pre.replay()
            ctx.tx.sync()
            ctx.preprocess_s += time.perf_counter() - start
            out = fn(ctx, *args, **kwargs)
            ctx.pre.live()
            ctx.tx.check_consumed()
            return out
        finally:
            ctx.staging = False
    return run  # type: ignore[return-value]


def _const(ctx: Ctx, value: float, bits: int | None = None) -> int:
    return int(round(value * (1 << (ctx.frac_bits if bits is None else bits))))


def truncated(ctx: Ctx, name: str, x: torch.Tensor, shift: int | None = None) -> torch.Tensor:
    with ctx.tx.op(f"{name}.trunc"):
        return P.rescale(ctx, x, ctx.frac_bits if shift is None else shift)


def server_add(ctx: Ctx, x: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
    """Add a server-held tensor (bias, positions, norm shift): local."""
    return x + w if ctx.role == SERVER and w is not None else x


# -- linear algebra --------------------------------------------------------------------------

@stage
def embedding(ctx: Ctx, name: str, ids: torch.Tensor | None, table: torch.Tensor | None,
              tokens: int, vocab: int, width: int) -> torch.Tensor:
    """Client ids (tokens,) -> shares (tokens, width): the client's one-hot times the server's
    table (:func:`protocols.mul_server`); integer one-hot, so no truncation."""
    with ctx.tx.op(name):
        onehot = torch.zeros(tokens, vocab, dtype=torch.int64)
        if ctx.role == CLIENT:
            onehot[torch.arange(tokens), ids] = 1
        return P.mul_server(ctx, onehot, table, (vocab, width), torch.matmul, key=name)


@stage
def linear(ctx: Ctx, name: str, x: torch.Tensor, w: torch.Tensor | None, bias: torch.Tensor | None,
           k: int, n: int) -> torch.Tensor:
    """Shares (..., k) times the server's (k, n) weights, plus its bias."""
    with ctx.tx.op(name):
        y = P.mul_server(ctx, x.reshape(-1, k), w, (k, n), torch.matmul, key=name)
    y = truncated(ctx, name, y)
    return server_add(ctx, y, bias).view(*x.shape[:-1], n)


@stage
def matmul(ctx: Ctx, name: str, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with ctx.tx.op(name):
        z = P.matmul(ctx, x, y)
    return truncated(ctx, name, z)


@stage
def scale(ctx: Ctx, name: str, x: torch.Tensor, factor: float) -> torch.Tensor:
    with ctx.tx.op(name):
        z = x * _const(ctx, factor)
    return truncated(ctx, name, z)


@stage
def weight_mul(ctx: Ctx, name: str, x: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
    """Elementwise product with server values; the server's values are expanded to x's shape
    (so the cost depends on the element count only)."""
    with ctx.tx.op(name):
        full = w.expand(x.shape).contiguous() if w is not None else None
        z = P.mul_server(ctx, x, full, tuple(x.shape), torch.mul)
    return truncated(ctx, name, z)


@stage
def mul(ctx: Ctx, name: str, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with ctx.tx.op(name):
        z = P.mul(ctx, x, y)
    return truncated(ctx, name, z)


def rope_tables(ctx: Ctx, positions: torch.Tensor, rotated: int, base: float = 10000.0
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Public cos/sin (positions, rotated), ring-encoded, rotate-half layout."""
    inv_freq = 1.0 / base ** (torch.arange(0, rotated, 2, dtype=torch.float64) / rotated)
    angles = positions.to(torch.float64)[:, None] * inv_freq[None, :]
    angles = torch.cat([angles, angles], dim=-1)
    return encode(angles.cos(), ctx.frac_bits), encode(angles.sin(), ctx.frac_bits)


@stage
def rope(ctx: Ctx, name: str, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` (..., positions, rotated) with public ``cos``/``sin``: local, then truncated."""
    with ctx.tx.op(name):
        first, second = x.chunk(2, dim=-1)
        z = x * cos + torch.cat([-second, first], dim=-1) * sin
    return truncated(ctx, name, z)


# -- nonlinear -------------------------------------------------------------------------------

@stage
def activation(ctx: Ctx, name: str, kind: str, x: torch.Tensor) -> torch.Tensor:
    """relu, gelu, gelu_tanh, silu: one spline each (and exp, for benchmarks: :func:`exp`)."""
    with ctx.tx.op(name):
        return exp(ctx, x) if kind == "exp" else P.spline(ctx, x, spline(kind))[0]


def exp(ctx: Ctx, x: torch.Tensor) -> torch.Tensor:
    """exp of inputs <= 0 by ``ctx.exp``: the exp spline (0 below -16) or the limit
    (:func:`protocols.exp_limit`, inputs above -256)."""
    return P.exp_limit(ctx, x) if ctx.exp == "limit" else P.spline(ctx, x, spline("exp"))[0]


def row_max(ctx: Ctx, x: torch.Tensor) -> torch.Tensor:
    """Max of each row (rows, cols) -> (rows, 1): a tree of ceil(log2 cols) levels, cols - 1
    comparisons; max(a, b) = b + relu(a - b)."""
    while x.shape[1] > 1:
        half = x.shape[1] // 2
        a, b = x[:, :half], x[:, half: 2 * half]
        x = torch.cat([b + P.spline(ctx, a - b, RELU)[0], x[:, 2 * half:]], dim=1)
    return x


def reciprocal(ctx: Ctx, x: torch.Tensor) -> torch.Tensor:
    """1/x for x in [1, 2^12]: spline guess, one Newton step y (2 - x y)."""
    y = P.spline(ctx, x, spline("reciprocal"))[0]
    t = P.rescale(ctx, P.mul(ctx, x, y), ctx.frac_bits)
    return P.rescale(ctx, P.mul(ctx, y, ctx.public(torch.full_like(t, _const(ctx, 2.0))) - t), ctx.frac_bits)


def rsqrt(ctx: Ctx, x: torch.Tensor) -> torch.Tensor:
    """1/sqrt(x) for x in [2^-8, 2^16]: spline guess, one Newton step y (3 - x y^2) / 2."""
    f = ctx.frac_bits
    y = P.spline(ctx, x, spline("rsqrt"))[0]
    y2 = P.rescale(ctx, P.square(ctx, y), f)
    t = P.rescale(ctx, P.mul(ctx, x, y2), f)
    return P.rescale(ctx, P.mul(ctx, y, ctx.public(torch.full_like(t, _const(ctx, 3.0))) - t), f + 1)


@stage
def softmax(ctx: Ctx, name: str, x: torch.Tensor, allowed: torch.Tensor | None) -> torch.Tensor:
    """Softmax of each row of ``x`` (rows, cols); ``allowed`` (public bool, same shape) masks
    scores out (causal). Row max, exp (:func:`exp`), sum, reciprocal, product. Masked scores are
    MASKED_SCORE; the exp spline gives 0 there, the limit exp garbage, zeroed by the public mask."""
    with ctx.tx.op(name):
        if allowed is not None:
            masked = ctx.public(torch.full_like(x, _const(ctx, MASKED_SCORE)))
            x = torch.where(allowed, x, masked)
        z = x - row_max(ctx, x)
        e = exp(ctx, z)
        if allowed is not None and ctx.exp == "limit":
            e = torch.where(allowed, e, torch.zeros_like(e))
        inv = reciprocal(ctx, e.sum(dim=1, keepdim=True))
        return P.rescale(ctx, P.mul(ctx, e, inv), ctx.frac_bits)


@stage
def norm(ctx: Ctx, name: str, kind: str, x: torch.Tensor, gain: torch.Tensor | None,
         shift: torch.Tensor | None) -> torch.Tensor:
    """LayerNorm / RMSNorm of each row of ``x`` (rows, cols) with server-held gain (and shift).

    Exact to the fixed point at any width ``cols <= 2^(f+1)`` (a constant ``round(2^f / cols)``
    alone errs by up to ``cols / 2^(f+1)``: 0.4 % at 768). The mean is the row sum times
    ``round(2^(2f) / cols)``, truncated by ``2f`` (the constant's error is below ``cols / 2^(2f+1)``
    of the mean). The variance is the sum of squares (2f fractional bits) times ``c =
    round(2^f / cols)``, truncated by ``2f``: that is ``rho * var`` with the public ``rho = c cols /
    2^f`` (its magnitude, ``var 2^(3f)``, leaves no room for a finer constant), so the epsilon is
    scaled by ``rho`` too and the server multiplies its gain by ``sqrt(rho)``:
    ``rsqrt(rho (var + eps)) sqrt(rho) = rsqrt(var + eps)``. Same messages as before."""
    f = ctx.frac_bits
    rows, cols = x.shape
    c_var = _const(ctx, 1.0 / cols)
    if c_var == 0:
        raise ValueError(f"norm over {cols} columns: at most 2^{f + 1} at {f} fractional bits")
    rho = c_var * cols / (1 << f)
    if gain is not None and rho != 1.0:
        gain = torch.round(gain.to(torch.float64) * math.sqrt(rho)).to(torch.int64)
    with ctx.tx.op(name):
        if kind == "layernorm":
            mean = P.trunc(ctx, x.sum(dim=1, keepdim=True) * _const(ctx, 1.0 / cols, 2 * f), 2 * f)
            x = x - mean
        squares, opened, mask = P.square_opening(ctx, x)
        var = P.trunc(ctx, squares.sum(dim=1, keepdim=True) * c_var, 2 * f)  # rho * var
        inv = rsqrt(ctx, var + ctx.public(torch.full_like(var, _const(ctx, rho * NORM_EPS))))
        y = P.mul_opened(ctx, opened, mask, inv)  # 2f fractional bits; x was opened (masked) once
        y = P.mul_server(ctx, y, gain, (cols,), torch.mul, key=name)  # 3f
        y = P.trunc(ctx, y, 2 * f)
        return server_add(ctx, y, shift) if kind == "layernorm" else y


@stage
def argmax(ctx: Ctx, name: str, x: torch.Tensor) -> torch.Tensor | None:
    """Index of the max of each row (rows, cols), revealed to the client only (None elsewhere).
    Per tree level: the comparison bit and relu(a - b) from one spline, then bit * (ia - ib)."""
    with ctx.tx.op(name):
        rows, cols = x.shape
        idx = ctx.public(torch.arange(cols, dtype=torch.int64).expand(rows, cols).contiguous())
        while x.shape[1] > 1:
            half = x.shape[1] // 2
            a, b = x[:, :half], x[:, half: 2 * half]
            ia, ib = idx[:, :half], idx[:, half: 2 * half]
            relu, bits = P.spline(ctx, a - b, RELU, want_bits=True)
            x = torch.cat([b + relu, x[:, 2 * half:]], dim=1)
            idx = torch.cat([ib + P.mul(ctx, bits[..., 0], ia - ib), idx[:, 2 * half:]], dim=1)
        return ctx.reveal_to_client(idx[:, 0])

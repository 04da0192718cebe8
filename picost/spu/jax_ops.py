"""Each picost op kind as the JAX function an obvious JAX model would run, and its operands.

Runs inside the SPU virtualenv (``.venv-spu``): imports nothing but jax, numpy and the standard
library, never picost (``runner.py`` and ``jax_model.py`` import it as a sibling by path).

:func:`build` turns one op of picost's IR -- its kind and its dims as named in
``picost/model/ops.py`` (``KINDS``) -- into an :class:`OpCase`: the JAX function, random operands
of the right shapes (SPU's costs do not depend on the values) and the *role* of each operand:

``activation``
    a secret activation (always secret-shared);
``weight``
    a weight, gain, bias or table: server-private, shared or public per the ``weights`` option;
``ids``
    the client's token ids: client-private or shared per the ``input`` option;
``embedded``
    the client's embedded vectors (``input`` = ``client-embedded``): client-private.

Public constants (the attention scale, RoPE's cos/sin, the causal mask, PUMA's coefficients) are
compile-time constants of the function, hence public in SPU.

The constructions of the nonlinearities are shared with ``jax_model.py`` (:func:`gelu`,
:func:`softmax`, :func:`layernorm`, :func:`rmsnorm`, :func:`rope`), so a whole model and its ops
measured one by one compute the same thing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

#: picost op kinds (picost/model/ops.py KINDS) plus the truncation row of the protocol tables.
PICOST_KINDS = ("embedding", "linear", "matmul", "add", "weight_add", "scale", "weight_mul", "mul", "rope",
                "gelu", "gelu_tanh", "relu", "silu", "softmax", "layernorm", "rmsnorm", "argmax", "truncation")
#: SPU building blocks measured for the protocol tables' notes (all-secret, ``n`` elements or
#: ``rows`` x ``cols``): not picost kinds.
PRIMITIVE_KINDS = ("less", "equal", "exp", "negexp", "reciprocal", "rsqrt", "tanh", "max")
KINDS = PICOST_KINDS + PRIMITIVE_KINDS

WEIGHTS = ("server-private", "shared", "public")
INPUTS = ("client-private", "client-embedded", "shared")
CONSTRUCTIONS = {
    "gelu": ("stock_erf", "stock_tanh", "puma"),
    "gelu_tanh": ("stock_tanh", "stock_erf", "puma"),
    "softmax": ("stock", "puma"),
}
DEFAULT_CONSTRUCTION = {"gelu": "stock_erf", "gelu_tanh": "stock_tanh", "softmax": "stock"}
MASKS = ("where", "bias")

#: Dims each kind takes (as picost/model/ops.py KINDS names them).
DIMS = {
    "embedding": ("tokens", "vocab", "width"),
    "linear": ("m", "k", "n"),
    "matmul": ("b", "m", "k", "n"),
    "softmax": ("rows", "cols"),
    "layernorm": ("rows", "cols"),
    "rmsnorm": ("rows", "cols"),
    "argmax": ("rows", "cols"),
    "max": ("rows", "cols"),
}

NORM_EPS = 1e-5
ROPE_BASE = 10000.0
SCALE = 0.125  # the public constant of `scale` and `truncation` (1/sqrt(64))
#: The score a causal mask puts on masked positions. SPU 0.9.5's stock softmax (jax.nn.softmax:
#: exp of x - max by a Taylor step and repeated squaring) returns wrong probabilities -- max abs
#: error 1.0 on 64 x 16 causal scores -- when a masked score minus the row max is below about -256:
#: jnp.finfo(float32).min (what Flax models use), -1e4 and -1e3 all fail; -200, -100, -30 and
#: jax.nn.softmax(x, where=mask) give 0.0034 (the unmasked error). -100 is safe while unmasked
#: scores stay within ~150 of their row max. PUMA's softmax clips below -14 and takes any value.
#: The value is a public constant: it changes no cost.
MASKED_SCORE = -100.0


@dataclass
class OpCase:
    """One op ready to run: ``fun(*args)``; ``roles[i]`` says who holds ``args[i]``."""

    fun: Callable[..., Any]
    args: list[np.ndarray]
    roles: list[str]
    describe: str
    extra: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Constructions (shared with jax_model.py)
# ---------------------------------------------------------------------------------------------

def puma_gelu(x):
    """PUMA's GeLU (PUMA §4.2 eq. 2-3): 0 below -4, a degree-3 polynomial on [-4, -1.95), a
    degree-6 polynomial on [-1.95, 3], x above 3."""
    import jax.numpy as jnp
    x2 = x * x
    x3, x4 = x2 * x, x2 * x2
    x6 = x3 * x3
    f0 = -0.011034134030615728 * x3 - 0.11807612951181953 * x2 - 0.42226581151983866 * x - 0.5054031199708174
    f1 = (0.0018067462606141187 * x6 - 0.037688200365904236 * x4 + 0.3603292692789629 * x2 + 0.5 * x
          + 0.008526321541038084)
    b0, b1, b2 = x < -4, x < -1.95, x > 3
    z0 = jnp.logical_and(jnp.logical_not(b0), b1)
    z1 = jnp.logical_and(jnp.logical_not(b1), jnp.logical_not(b2))
    return jnp.where(z0, f0, 0) + jnp.where(z1, f1, 0) + jnp.where(b2, x, 0)


def gelu(x, construction: str):
    """GELU by ``construction``: ``stock_erf`` (jax.nn.gelu, approximate=False), ``stock_tanh``
    (approximate=True) or ``puma``."""
    import jax
    if construction == "stock_erf":
        return jax.nn.gelu(x, approximate=False)
    if construction == "stock_tanh":
        return jax.nn.gelu(x, approximate=True)
    if construction == "puma":
        return puma_gelu(x)
    raise ValueError(f"unknown gelu construction {construction!r}")


def causal_mask(rows: int, cols: int) -> np.ndarray:
    """Public mask of ``rows`` query rows (row r is query position r mod cols) over ``cols`` keys:
    key j is visible to query i when j <= i (prefill: queries = keys)."""
    q = np.arange(rows)[:, None] % cols
    return np.arange(cols)[None, :] <= q


def apply_mask(x, mask: np.ndarray | None, how: str):
    """The causal mask the obvious way: ``where`` (jnp.where(mask, x, MASKED_SCORE)) or ``bias``
    (x + a public additive bias of 0 / MASKED_SCORE)."""
    import jax.numpy as jnp
    if mask is None:
        return x
    if how == "where":
        return jnp.where(mask, x, MASKED_SCORE)
    if how == "bias":
        return x + np.where(mask, 0.0, MASKED_SCORE).astype(np.float32)
    raise ValueError(f"unknown mask {how!r}: {MASKS}")


def puma_softmax(x):
    """PUMA's softmax (PUMA §4.3 Alg. 2): exp of x - max by (1 + d/2^5)^(2^5), 0 below -14, one
    reciprocal per row."""
    import jax.numpy as jnp
    d = x - jnp.max(x, -1, keepdims=True) - 1e-6
    e = 1 + d / 32
    for _ in range(5):
        e = e * e
    e = jnp.where(d > -14, e, 0)
    return e * (1 / jnp.sum(e, -1, keepdims=True))


def softmax(x, construction: str):
    """Softmax over the last axis: ``stock`` (jax.nn.softmax) or ``puma``."""
    import jax
    if construction == "stock":
        return jax.nn.softmax(x, axis=-1)
    if construction == "puma":
        return puma_softmax(x)
    raise ValueError(f"unknown softmax construction {construction!r}")


def layernorm(x, g, b):
    """LayerNorm over the last axis the obvious way (mean, variance, lax.rsqrt)."""
    import jax.numpy as jnp
    from jax import lax
    mu = jnp.mean(x, -1, keepdims=True)
    var = jnp.mean((x - mu) ** 2, -1, keepdims=True)
    return (x - mu) * lax.rsqrt(var + NORM_EPS) * g + b


def rmsnorm(x, g):
    """RMSNorm over the last axis: x * rsqrt(mean(x^2) + eps) * g."""
    import jax.numpy as jnp
    from jax import lax
    return x * lax.rsqrt(jnp.mean(x * x, -1, keepdims=True) + NORM_EPS) * g


def rope_tables(positions: np.ndarray, rotated: int, base: float = ROPE_BASE) -> tuple[np.ndarray, np.ndarray]:
    """Public cos and sin, ``(len(positions), rotated)``, rotate-half pairing (as torch_reference)."""
    inv_freq = 1.0 / base ** (np.arange(0, rotated, 2, dtype=np.float64) / rotated)
    angles = positions.astype(np.float64)[:, None] * inv_freq[None, :]
    angles = np.concatenate([angles, angles], axis=-1)
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


def rope(x, cos: np.ndarray, sin: np.ndarray):
    """Rotate the first ``cos.shape[-1]`` dims of the last axis of x (..., T, dh) by public
    cos/sin (T, rotated): x*cos + rotate_half(x)*sin; the rest passes through."""
    import jax.numpy as jnp
    r = cos.shape[-1]
    part, rest = x[..., :r], x[..., r:]
    first, second = part[..., : r // 2], part[..., r // 2:]
    rotated = part * cos + jnp.concatenate([-second, first], axis=-1) * sin
    return jnp.concatenate([rotated, rest], axis=-1) if rest.shape[-1] else rotated


def one_hot_embed(ids, table):
    """Embedding lookup the obvious way under MPC: one_hot(ids, vocab) @ table (PUMA §4.4)."""
    import jax
    return jax.nn.one_hot(ids, table.shape[0], dtype=table.dtype) @ table


# ---------------------------------------------------------------------------------------------
# One op
# ---------------------------------------------------------------------------------------------

def _need(kind: str, dims: dict[str, int], names: tuple[str, ...]) -> list[int]:
    missing = [d for d in names if d not in dims]
    if missing:
        raise ValueError(f"{kind} needs dims {names} (missing {missing})")
    return [int(dims[d]) for d in names]


def build(kind: str, dims: dict[str, int], construction: str | None = None,
          weights: str = "server-private", input: str = "client-private",
          operands: list[str] | None = None, causal: bool = False, mask: str = "where",
          bias: bool = False, rotated: int | None = None, seed: int = 0) -> OpCase:
    """The JAX function and operands of one op.

    ``dims`` as in picost's op IR. ``operands`` (picost ``Holder`` values, e.g. ``["shared",
    "server"]``) decides whether an ``add``'s second operand is an activation or a weight (default:
    activation). ``causal`` masks a softmax (``mask`` = ``where`` or ``bias``); ``bias`` adds a
    bias vector to a ``linear``; ``rotated`` is RoPE's rotated width per head (default 64).
    """
    import jax.numpy as jnp
    from jax import lax

    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; known: {', '.join(KINDS)}")
    if weights not in WEIGHTS:
        raise ValueError(f"unknown weights {weights!r}: {WEIGHTS}")
    if input not in INPUTS:
        raise ValueError(f"unknown input {input!r}: {INPUTS}")
    if kind in CONSTRUCTIONS:
        construction = construction or DEFAULT_CONSTRUCTION[kind]
        if construction not in CONSTRUCTIONS[kind]:
            raise ValueError(f"{kind} construction {construction!r} not in {CONSTRUCTIONS[kind]}")
    elif construction not in (None, "stock"):
        raise ValueError(f"{kind} has no construction {construction!r}")
    rng = np.random.default_rng(seed)

    def act(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32)

    def wt(*shape: int, scale: float = 1.0, around: float = 0.0) -> np.ndarray:
        return (around + scale * rng.standard_normal(shape)).astype(np.float32)

    if kind == "embedding":
        tokens, vocab, width = _need(kind, dims, DIMS[kind])
        table = wt(vocab, width, scale=0.02)
        if input == "client-embedded":  # the client looked its vectors up itself: they only enter
            x = act(tokens, width)
            return OpCase(lambda x: x + 0.0, [x], ["embedded"],
                          "client's embedded vectors (tokens x width), client-private, entering the "
                          "computation (x + 0: SPU's conversion of a private input)")
        ids = rng.integers(0, vocab, size=(tokens,)).astype(np.int32)
        return OpCase(one_hot_embed, [ids, table], ["ids", "weight"],
                      "jax.nn.one_hot(ids, vocab) @ table")
    if kind == "linear":
        m, k, n = _need(kind, dims, DIMS[kind])
        w = wt(k, n, scale=1 / math.sqrt(k))
        if bias or dims.get("bias"):  # picost's IR says bias = 1 when the server adds one
            return OpCase(lambda x, w, b: x @ w + b, [act(m, k), w, wt(n, scale=0.02)],
                          ["activation", "weight", "weight"], "x @ W + b")
        return OpCase(lambda x, w: x @ w, [act(m, k), w], ["activation", "weight"], "x @ W")
    if kind == "matmul":
        b, m, k, n = _need(kind, dims, DIMS[kind])
        return OpCase(jnp.matmul, [act(b, m, k), act(b, k, n)], ["activation", "activation"],
                      "jnp.matmul of two secret (b, m, k) and (b, k, n)")
    if kind in ("softmax", "layernorm", "rmsnorm", "argmax", "max"):
        rows, cols = _need(kind, dims, DIMS[kind])
        x = act(rows, cols)
        if kind == "softmax":
            m_ = causal_mask(rows, cols) if causal else None
            how = construction
            return OpCase(lambda x: softmax(apply_mask(x, m_, mask), how), [x], ["activation"],
                          f"softmax ({how}) over rows" + (f", causal mask by {mask}" if causal else ""))
        if kind == "layernorm":
            return OpCase(layernorm, [x, wt(cols, scale=0.1, around=1.0), wt(cols, scale=0.02)],
                          ["activation", "weight", "weight"], "(x - mean) * rsqrt(var + eps) * g + b")
        if kind == "rmsnorm":
            return OpCase(rmsnorm, [x, wt(cols, scale=0.1, around=1.0)], ["activation", "weight"],
                          "x * rsqrt(mean(x^2) + eps) * g")
        if kind == "argmax":
            return OpCase(lambda x: jnp.argmax(x, -1), [x], ["activation"], "jnp.argmax(x, -1)")
        return OpCase(lambda x: jnp.max(x, -1), [x], ["activation"], "jnp.max(x, -1)")

    (n,) = _need(kind, dims, ("n",))
    x = act(n)
    if kind in ("add", "weight_add"):
        weight = kind == "weight_add" or bool(operands and len(operands) > 1 and operands[1] == "server")
        second = "weight" if weight else "activation"
        return OpCase(lambda x, y: x + y, [x, act(n)], ["activation", second], f"x + y (y: {second})")
    if kind in ("scale", "truncation"):
        return OpCase(lambda x: x * SCALE, [x], ["activation"], f"x * {SCALE} (public constant)")
    if kind == "weight_mul":
        return OpCase(lambda x, w: x * w, [x, wt(n, scale=0.1, around=1.0)], ["activation", "weight"],
                      "x * w (w: weights, same shape)")
    if kind == "mul":
        return OpCase(lambda x, y: x * y, [x, act(n)], ["activation", "activation"], "x * y (both secret)")
    if kind == "rope":
        r = int(rotated or 64)
        if r % 2 or n % r:
            raise ValueError(f"rope: n={n} must be a multiple of the even rotated width {r}")
        cos, sin = rope_tables(np.arange(n // r) % 1024, r)
        return OpCase(lambda x: rope(x, cos, sin), [act(n // r, r)], ["activation"],
                      "x * cos + rotate_half(x) * sin (public cos/sin)")
    if kind in ("gelu", "gelu_tanh"):
        how = construction
        return OpCase(lambda x: gelu(x, how), [x], ["activation"], f"GELU ({how})")
    elementwise = {
        "relu": (lambda x: jnp.maximum(x, 0), "jax.nn.relu(x)"),
        "silu": (lambda x: x * (1 / (1 + jnp.exp(-x))), "jax.nn.silu(x)"),
        "less": (lambda x: x < 0.5, "x < 0.5"),
        "equal": (lambda x: x == 0.5, "x == 0.5"),
        "exp": (jnp.exp, "jnp.exp(x)"),
        "negexp": (lambda x: jnp.exp(-jnp.abs(x)), "jnp.exp(-abs(x))"),
        "reciprocal": (lambda x: 1 / (jnp.abs(x) + 1), "1 / (abs(x) + 1)"),
        "rsqrt": (lambda x: lax.rsqrt(jnp.abs(x) + 1), "lax.rsqrt(abs(x) + 1)"),
        "tanh": (jnp.tanh, "jnp.tanh(x)"),
    }
    if kind == "relu":
        import jax
        return OpCase(jax.nn.relu, [x], ["activation"], "jax.nn.relu(x)")
    if kind == "silu":
        import jax
        return OpCase(jax.nn.silu, [x], ["activation"], "jax.nn.silu(x)")
    fun, text = elementwise[kind]
    return OpCase(fun, [x], ["activation"], text)

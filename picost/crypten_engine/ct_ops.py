"""CrypTen 0.4.1 constructions of picost's op kinds: the one set behind ``protocols/crypten.yaml``.

Used by the model twin (``ct_model.py``) and by the op benchmark (``runner.py ops``, which
``benchmarks/crypten_ops.py`` runs). Runs inside the CrypTen virtualenv and imports torch only
(the CrypTen tensors arrive as arguments), never picost.

Every function takes CrypTen tensors (``MPCTensor``) for the secret activations and, for the
server's values (weights, gains, tables), either CrypTen tensors (weights ``shared``: a model
encrypted as a whole, ``Module.encrypt()``) or plain torch tensors (weights ``public``: a model
left unencrypted; a plain operand multiplies each share locally). CrypTen has no LayerNorm,
RMSNorm, GELU or SiLU module; they are written here from its primitives, as the table's entries
describe them.
"""

from __future__ import annotations

import math
from typing import Any, Callable

NORM_EPS = 1e-5
"""As picost's torch reference (``NORM_EPS``)."""

MASK_BIAS = -64.0
"""Added to the causally masked scores (a public add: local). CrypTen cannot fill with -inf, and its
exp, ``(1 + x/2^8)^(2^8)``, needs ``x > -256``: masked scores end up near -64 below the row
maximum, whose exp is ``0.75^256 ~ 1e-32``, 0 at 16 fractional bits."""


def linear(x: Any, weight_t: Any, bias: Any = None) -> Any:
    """``x @ W^T + b`` with ``weight_t`` = W^T (k x n): one Beaver matmul (shared W) or a local
    product (public W); the bias add is local."""
    y = x.matmul(weight_t)
    return y if bias is None else y + bias


def embedding(one_hot: Any, table: Any) -> Any:
    """The client's shared one-hot (tokens x vocab) times the vocab x width table (CrypTen cannot
    gather with encrypted indices)."""
    return one_hot.matmul(table)


def layernorm(x: Any, gain: Any, bias: Any, eps: float = NORM_EPS) -> Any:
    """``d = x - mean``, ``d * inv_sqrt(mean(d^2) + eps) * gain + bias`` over the last dim."""
    d = x - x.mean(-1, keepdim=True)
    y = d * (d.square().mean(-1, keepdim=True) + eps).inv_sqrt() * gain
    return y if bias is None else y + bias


def rmsnorm(x: Any, gain: Any, eps: float = NORM_EPS) -> Any:
    """``x * inv_sqrt(mean(x^2) + eps) * gain`` over the last dim."""
    return x * (x.square().mean(-1, keepdim=True) + eps).inv_sqrt() * gain


def gelu(x: Any) -> Any:
    """``0.5 x (1 + erf(x / sqrt 2))``, as an exported torch GELU compiles in CrypTen."""
    return x * ((x * (1 / math.sqrt(2))).erf() + 1) * 0.5


def gelu_tanh(x: Any) -> Any:
    """``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``."""
    return x * (((x + x.pow(3) * 0.044715) * math.sqrt(2 / math.pi)).tanh() + 1) * 0.5


def silu(x: Any) -> Any:
    return x * x.sigmoid()


def relu(x: Any) -> Any:
    return x.relu()


ACTIVATIONS: dict[str, Callable[[Any], Any]] = {"gelu": gelu, "gelu_tanh": gelu_tanh, "relu": relu,
                                                "silu": silu}


def softmax(scores: Any, mask_bias: Any = None) -> Any:
    """Softmax over the last dim, after adding a public mask bias (0 or :data:`MASK_BIAS`)."""
    return (scores if mask_bias is None else scores + mask_bias).softmax(dim=-1)


def argmax(x: Any) -> Any:
    """CrypTen's argmax over the last dim: a one-hot, not an index."""
    return x.argmax(dim=-1)


def rope(x: Any, cos: Any, sin: Any, rotated: int) -> Any:
    """Rotate-half RoPE of the first ``rotated`` dims with public cos/sin (as picost's reference)."""
    import crypten

    part = x[..., :rotated]
    first, second = part[..., : rotated // 2], part[..., rotated // 2:]
    turned = part * cos + crypten.cat([-second, first], dim=-1) * sin
    return turned if rotated == x.size(-1) else crypten.cat([turned, x[..., rotated:]], dim=-1)


# ---------------------------------------------------------------------------------------------
# The op benchmark: one named computation per measured series, of x (ROWS x COLS) and weights
# ``w`` (``mat`` COLS x COLS, ``gain``/``bias`` of length COLS, ``table`` COLS x 16)
# ---------------------------------------------------------------------------------------------

def _bench_embedding(x: Any, w: dict[str, Any]) -> Any:
    """ROWS tokens, vocabulary COLS, the table's width (16 unless the case says); the one-hot is the client's input."""
    import crypten
    import torch

    ids = torch.arange(x.size(0)) % x.size(1)
    return embedding(crypten.cryptensor(torch.nn.functional.one_hot(ids, x.size(1)).float()), w["table"])


BENCH: dict[str, Callable[[Any, dict[str, Any]], Any]] = {
    "add": lambda x, w: x + x.flip(-1),
    "weight_add": lambda x, w: x + w["bias"],
    "scale": lambda x, w: x * 0.125,
    "mul": lambda x, w: x * x.flip(-1),
    "square": lambda x, w: x.square(),
    "matmul": lambda x, w: x.matmul(x.t()),
    "linear": lambda x, w: linear(x, w["mat"]),
    "embedding": _bench_embedding,
    "weight_mul": lambda x, w: x * w["gain"],
    "relu": lambda x, w: relu(x),
    "ltz": lambda x, w: x._ltz(),
    "exp": lambda x, w: x.exp(),
    "reciprocal": lambda x, w: x.reciprocal(),
    "inv_sqrt": lambda x, w: x.inv_sqrt(),
    "sigmoid": lambda x, w: x.sigmoid(),
    "tanh": lambda x, w: x.tanh(),
    "erf": lambda x, w: x.erf(),
    "gelu": lambda x, w: gelu(x),
    "gelu_tanh": lambda x, w: gelu_tanh(x),
    "silu": lambda x, w: silu(x),
    "max_row": lambda x, w: x.max(dim=-1),
    "argmax_row": lambda x, w: argmax(x),
    "softmax_row": lambda x, w: softmax(x),
    "layernorm_row": lambda x, w: layernorm(x, w["gain"], w["bias"]),
    "rmsnorm_row": lambda x, w: rmsnorm(x, w["gain"]),
}

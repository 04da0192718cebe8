"""Single ops on random inputs: what ``picost validate`` and the op tests run.

A job lists ops (kind + dims). For each, the client draws its secret inputs and shares them
(op ``_input``), the server draws its weights, the op runs under its own name, and the result
is revealed to the client (op ``_output``). The client and server each keep what they drew so
the launcher can compute the plaintext result.
"""

from __future__ import annotations

from typing import Any

import torch

from picost.mpc import ops_exec as X
from picost.mpc import ring
from picost.mpc.protocols import Ctx
from picost.mpc.transport import CLIENT, SERVER

SCALE_FACTOR = 0.125
ACTIVATIONS = ("relu", "gelu", "gelu_tanh", "silu")
BENCH_ONLY = ("exp",)
"""Engine functions that are not op kinds of the IR but are benchmarked alone (inputs <= 0)."""


def causal_mask(rows: int, cols: int) -> torch.Tensor:
    """Row ``i`` may see columns ``0..i mod cols`` (blocks of ``cols`` rows, as per-head causal)."""
    return torch.arange(cols)[None, :] <= (torch.arange(rows) % cols)[:, None]


def client_inputs(kind: str, dims: dict[str, int], gen: torch.Generator) -> dict[str, torch.Tensor]:
    """The client's secret inputs of one op (float64; ids for embedding)."""
    g = lambda *shape, s=1.0, o=0.0: torch.randn(*shape, generator=gen, dtype=torch.float64) * s + o  # noqa: E731
    if kind == "embedding":
        return {"ids": torch.randint(dims["vocab"], (dims["tokens"],), generator=gen)}
    if kind == "linear":
        return {"x": g(dims["m"], dims["k"])}
    if kind == "matmul":
        return {"x": g(dims["b"], dims["m"], dims["k"]), "y": g(dims["b"], dims["k"], dims["n"])}
    if kind in ("add", "mul"):
        return {"x": g(dims["n"], s=2.0), "y": g(dims["n"], s=2.0)}
    if kind in ("scale", "weight_mul", "weight_add"):
        return {"x": g(dims["n"], s=2.0)}
    if kind == "rope":
        return {"x": g(dims["n"] // 2, 2)}
    if kind in ACTIVATIONS:
        return {"x": g(dims["n"], s=3.0)}
    if kind == "exp":
        return {"x": -g(dims["n"], s=3.0).abs()}
    if kind == "softmax":
        return {"x": g(dims["rows"], dims["cols"], s=2.0)}
    if kind in ("layernorm", "rmsnorm"):
        return {"x": g(dims["rows"], dims["cols"], s=2.0, o=0.5)}
    if kind == "argmax":
        return {"x": g(dims["rows"], dims["cols"], s=2.0)}
    raise KeyError(kind)


def server_inputs(kind: str, dims: dict[str, int], gen: torch.Generator) -> dict[str, torch.Tensor]:
    """The server's weights for one op (float64)."""
    u = lambda *shape, lo, hi: torch.rand(*shape, generator=gen, dtype=torch.float64) * (hi - lo) + lo  # noqa: E731
    if kind == "embedding":
        return {"table": torch.randn(dims["vocab"], dims["width"], generator=gen, dtype=torch.float64)}
    if kind == "linear":
        bound = dims["k"] ** -0.5
        weights = {"w": u(dims["k"], dims["n"], lo=-bound, hi=bound)}
        return {**weights, "b": u(dims["n"], lo=-bound, hi=bound)} if dims.get("bias", 1) else weights
    if kind == "weight_mul":
        return {"w": u(dims["n"], lo=0.5, hi=1.5)}
    if kind == "weight_add":
        return {"w": u(dims["n"], lo=-1.0, hi=1.0)}
    if kind in ("layernorm", "rmsnorm"):
        return {"gain": u(dims["cols"], lo=0.5, hi=1.5), "shift": u(dims["cols"], lo=-0.1, hi=0.1)}
    return {}


def share_input(ctx: Ctx, x: torch.Tensor | None, shape: tuple[int, ...], gen: torch.Generator | None
                ) -> torch.Tensor:
    """The client shares its encoded input: it keeps ``x - m`` and sends a uniform ``m``
    (one round; the dealer gets zeros)."""
    if ctx.role == CLIENT:
        mine, theirs = ring.share(x, gen)
        ctx.tx.exchange(theirs, None)
        return mine
    return ctx.tx.exchange(None, torch.zeros(shape, dtype=torch.int64))


def input_shapes(kind: str, dims: dict[str, int]) -> dict[str, tuple[int, ...]]:
    probe = client_inputs(kind, dims, torch.Generator().manual_seed(0))
    return {k: tuple(v.shape) for k, v in probe.items() if k != "ids"}


def run_op(ctx: Ctx, name: str, kind: str, dims: dict[str, int], seed: int) -> dict[str, Any]:
    """One op on fresh random inputs; returns what this party drew and (client) the output."""
    f = ctx.frac_bits
    gen = torch.Generator().manual_seed(seed)
    mine: dict[str, Any] = {}
    if ctx.role == CLIENT:
        mine = client_inputs(kind, dims, gen)
    elif ctx.role == SERVER:
        mine = server_inputs(kind, dims, gen)
    enc = {k: ring.encode(v, f) for k, v in mine.items() if k != "ids"} if ctx.role == SERVER else {}
    shares = {}
    with ctx.tx.op("_input"):
        for key, shape in input_shapes(kind, dims).items():
            value = ring.encode(mine[key], f) if ctx.role == CLIENT else None
            shares[key] = share_input(ctx, value, shape, gen if ctx.role == CLIENT else None)
    x, y = shares.get("x"), shares.get("y")
    if kind == "embedding":
        out = X.embedding(ctx, name, mine.get("ids"), enc.get("table"), dims["tokens"], dims["vocab"], dims["width"])
    elif kind == "linear":
        out = X.linear(ctx, name, x, enc.get("w"), enc.get("b"), dims["k"], dims["n"])
    elif kind == "matmul":
        out = X.matmul(ctx, name, x, y)
    elif kind == "add":
        with ctx.tx.op(name):
            out = x + y
    elif kind == "weight_add":
        with ctx.tx.op(name):
            out = X.server_add(ctx, x, enc.get("w"))
    elif kind == "scale":
        out = X.scale(ctx, name, x, SCALE_FACTOR)
    elif kind == "weight_mul":
        out = X.weight_mul(ctx, name, x, enc.get("w"))
    elif kind == "mul":
        out = X.mul(ctx, name, x, y)
    elif kind == "rope":
        cos, sin = X.rope_tables(ctx, torch.arange(x.shape[0]), 2)
        out = X.rope(ctx, name, x, cos, sin)
    elif kind in ACTIVATIONS or kind in BENCH_ONLY:
        out = X.activation(ctx, name, kind, x)
    elif kind == "softmax":
        allowed = causal_mask(dims["rows"], dims["cols"]) if dims["valid"] != dims["rows"] * dims["cols"] else None
        out = X.softmax(ctx, name, x, allowed)
    elif kind in ("layernorm", "rmsnorm"):
        out = X.norm(ctx, name, kind, x, enc.get("gain"), enc.get("shift"))
    elif kind == "argmax":
        index = X.argmax(ctx, name, x)
        return {**mine, "out": index} if ctx.role == CLIENT else mine
    else:
        raise KeyError(kind)
    with ctx.tx.op("_output"):
        revealed = ctx.reveal_to_client(out)
    if ctx.role == CLIENT:
        return {**mine, "out": ring.decode(revealed, f)}
    return mine


def plaintext(kind: str, dims: dict[str, int], client: dict[str, torch.Tensor], server: dict[str, torch.Tensor]
              ) -> torch.Tensor:
    """The float64 result the op should produce."""
    import torch.nn.functional as Fn

    x, y = client.get("x"), client.get("y")
    if kind == "embedding":
        return server["table"][client["ids"]]
    if kind == "linear":
        return x @ server["w"] + server.get("b", 0)
    if kind == "matmul":
        return x @ y
    if kind == "add":
        return x + y
    if kind == "weight_add":
        return x + server["w"]
    if kind == "scale":
        return x * SCALE_FACTOR
    if kind == "weight_mul":
        return x * server["w"]
    if kind == "mul":
        return x * y
    if kind == "rope":
        angle = torch.arange(x.shape[0], dtype=torch.float64)[:, None]
        cos, sin = angle.cos(), angle.sin()
        return torch.cat([x[:, :1] * cos - x[:, 1:] * sin, x[:, 1:] * cos + x[:, :1] * sin], dim=1)
    if kind == "relu":
        return torch.relu(x)
    if kind == "gelu":
        return Fn.gelu(x)
    if kind == "gelu_tanh":
        return Fn.gelu(x, approximate="tanh")
    if kind == "silu":
        return Fn.silu(x)
    if kind == "exp":
        return x.exp()
    if kind == "softmax":
        if dims["valid"] != dims["rows"] * dims["cols"]:
            x = x.masked_fill(~causal_mask(dims["rows"], dims["cols"]), float("-inf"))
        return torch.softmax(x, dim=-1)
    if kind == "layernorm":
        return Fn.layer_norm(x, (x.shape[-1],), server["gain"], server["shift"], eps=X.NORM_EPS)
    if kind == "rmsnorm":
        return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + X.NORM_EPS) * server["gain"]
    if kind == "argmax":
        return x.argmax(dim=-1)
    raise KeyError(kind)

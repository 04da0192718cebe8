"""Measure this machine's compute time per op kind for the MPC engine (``picost calibrate``).

The three parties run locally (loopback, no shaping) on a grid of shapes per op kind; each op
runs once to warm up and then ``repeats`` times. A row's time is the fastest over the repeats
of the mean of the client's and the server's wall time for that row: with no network delay that
is the engine's compute plus its local messaging overhead, which is what the latency model's
compute term must hold. The fastest, not the median: on a shared machine other tenants' load
only ever adds time, and the latency check measures its side the same way. Per row kind, ``fixed_s + per_element_s * elements`` is fitted by least
squares on relative error (non-negative). torch is imported only when measuring.
"""

from __future__ import annotations

import platform
import time
from typing import Any, Callable, Iterable

from picost.cost.calibration import KindTime, Profile
from picost.model.ops import Block, Holder, Op

PROTOCOL = "picost-2pc"

#: Shapes per op kind: around and above the sizes of the shipped tiny models (T <= 16).
CALIBRATION_SHAPES: dict[str, list[dict[str, int]]] = {
    "embedding": [{"tokens": 4, "vocab": 256, "width": 64}, {"tokens": 8, "vocab": 256, "width": 64},
                  {"tokens": 16, "vocab": 256, "width": 64}],
    "linear": [{"m": 8, "k": 64, "n": 64, "bias": 1}, {"m": 8, "k": 64, "n": 256, "bias": 1},
               {"m": 16, "k": 256, "n": 64, "bias": 1}],
    "matmul": [{"b": 4, "m": 8, "k": 16, "n": 8}, {"b": 4, "m": 8, "k": 8, "n": 16}, {"b": 8, "m": 16, "k": 16, "n": 16}],
    "add": [{"n": 512}, {"n": 2048}, {"n": 8192}],
    "weight_add": [{"n": 512}, {"n": 2048}, {"n": 8192}],
    "scale": [{"n": 512}, {"n": 2048}, {"n": 8192}],
    "weight_mul": [{"n": 512}, {"n": 2048}, {"n": 8192}],
    "mul": [{"n": 512}, {"n": 2048}, {"n": 8192}],
    "rope": [{"n": 512}, {"n": 2048}, {"n": 8192}],
    "relu": [{"n": 256}, {"n": 1024}, {"n": 2048}],
    "gelu": [{"n": 256}, {"n": 1024}, {"n": 2048}],
    "gelu_tanh": [{"n": 256}, {"n": 1024}, {"n": 2048}],
    "silu": [{"n": 256}, {"n": 1024}, {"n": 2048}],
    "softmax": [{"rows": 16, "cols": 4, "valid": 64}, {"rows": 32, "cols": 8, "valid": 256},
                {"rows": 64, "cols": 16, "valid": 1024}],
    "layernorm": [{"rows": 4, "cols": 64}, {"rows": 8, "cols": 64}, {"rows": 16, "cols": 128}],
    "rmsnorm": [{"rows": 4, "cols": 64}, {"rows": 8, "cols": 64}, {"rows": 16, "cols": 128}],
    "argmax": [{"rows": 1, "cols": 64}, {"rows": 1, "cols": 256}, {"rows": 4, "cols": 256}],
}


def make_op(name: str, kind: str, dims: dict[str, int]) -> Op:
    return Op(name, kind, Block.FFN, None, dict(dims), (Holder.SHARED,))


def repeated_ops(ops: Iterable[Op], repeats: int) -> list[Op]:
    """A warm-up copy of every op (named ``_warm.<name>``: left out of the measurements),
    then ``repeats`` copies named ``<name>@<i>``."""
    ops = list(ops)
    out = [make_op(f"_warm.{op.name}", op.kind, op.dims) for op in ops]
    for i in range(repeats):
        out += [make_op(f"{op.name}@{i}", op.kind, op.dims) for op in ops]
    return out


def row_seconds(stats: dict[str, dict[str, dict[str, Any]]], op_name: str, repeats: int,
                roles: tuple[str, ...] = ("client", "server")) -> dict[str, float]:
    """Per row of ``op_name`` (the op, its ``.trunc``): the fastest over the repeats of the
    mean wall time of ``roles``."""
    out: dict[str, list[float]] = {}
    for i in range(repeats):
        base = f"{op_name}@{i}"
        for name in stats["client"]:
            if name == base or name.startswith(base + "."):
                row = op_name + name[len(base):]
                out.setdefault(row, []).append(sum(stats[r][name]["wall_s"] for r in roles) / len(roles))
    return {row: min(times) for row, times in out.items()}


def fit_kind_time(points: list[tuple[float, float]]) -> KindTime:
    """``fixed_s + per_element_s * elements`` through ``(elements, seconds)`` points,
    minimizing relative error, both coefficients >= 0."""
    import numpy as np

    x = np.array([p[0] for p in points], dtype=float)
    y = np.array([p[1] for p in points], dtype=float)
    w = 1.0 / np.maximum(y, 1e-9)
    design = np.stack([np.ones_like(x), x], axis=1) * w[:, None]
    (fixed, slope), *_ = np.linalg.lstsq(design, y * w, rcond=None)
    if slope < 0:
        fixed, slope = float(np.sum(y * w * w) / np.sum(w * w)), 0.0
    elif fixed < 0:
        slope, fixed = float(np.sum(x * y * w * w) / np.sum(x * x * w * w)), 0.0
    return KindTime(float(fixed), float(slope))


def calibrate(kinds: Iterable[str] | None = None, repeats: int = 3,
              on_progress: Callable[[int, int], None] | None = None) -> Profile:
    """Run the engine locally on :data:`CALIBRATION_SHAPES` and fit a profile."""
    from picost.cost.calibration import elements_expression
    from picost.cost.formula import parse
    from picost.mpc.launcher import run_batch
    from picost.mpc.validate import ops_job
    from picost.cost.protocol_table import ENTRY_SYMBOLS, load_protocol

    table = load_protocol(PROTOCOL)
    kinds = list(kinds or CALIBRATION_SHAPES)
    ops = [make_op(f"{kind}.{i}", kind, dims) for kind in kinds for i, dims in enumerate(CALIBRATION_SHAPES[kind])]
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    [run] = run_batch([ops_job(repeated_ops(ops, repeats))], on_progress=on_progress)
    points: dict[str, list[tuple[float, float]]] = {}
    for op in ops:
        rows = row_seconds(run.stats, op.name, repeats)
        for cost in table.cost(op):
            seconds = rows[cost.name]
            dims = {"n": op.outputs} if cost.is_truncation else op.dims
            elements = parse(elements_expression(cost.kind), ENTRY_SYMBOLS[cost.kind]).value(dims)
            points.setdefault(cost.kind, []).append((float(elements), seconds))
    measured = (f"picost calibrate (engine {PROTOCOL}, local loopback, {repeats} repeats after a warm-up) on "
                f"{platform.node()} ({platform.machine()}, {platform.processor() or 'cpu'}), {started}")
    return Profile(PROTOCOL, measured, {kind: fit_kind_time(p) for kind, p in points.items()})

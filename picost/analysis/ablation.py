"""The AERO ablation table: one row per architectural step, as a PI paper prints it.

Per step: nonlinear op counts in AERO's notation (``SM: 144 x R^{128x128}``), FFN FLOPs,
attention FLOPs (projections + QK^T + AV), total FLOPs, and, when a cost function is given
(protocol x network, see :mod:`picost.analysis.estimate`), communication and latency; each numeric
column also as savings (x) against the baseline row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from picost.model.aero_transforms import Step
from picost.model.flops import FlopsReport
from picost.model.lower import Lowered, lower
from picost.model.ops import NONLINEAR_KINDS, Op

KIND_LABELS = {"softmax": "SM", "layernorm": "LN", "rmsnorm": "RMSNorm", "gelu": "GELU",
               "gelu_tanh": "GELU", "relu": "ReLU", "silu": "SiLU", "tanh": "tanh", "argmax": "argmax", "topk": "topk"}

#: A cost function: lowered model -> (communication bytes, latency seconds).
CostFn = Callable[[Lowered], tuple[float, float]]


def estimate_cost(table: Any, network: Any, allow_uncosted: bool = False) -> CostFn:
    """A :data:`CostFn` from the estimate: total online bytes and latency under ``table`` over
    ``network`` (uncosted rows, if allowed, are left out of the totals)."""
    from picost.analysis.estimate import estimate_lowered

    def cost(lowered: Lowered) -> tuple[float, float]:
        est = estimate_lowered(lowered, table, network, allow_uncosted)
        return est.totals.comm_bytes, est.totals.latency_s

    return cost


def nonlinear_counts(lowered: Lowered) -> dict[str, list[tuple[int, str]]]:
    """Nonlinear ops in AERO's notation: label -> [(instances, "RxC"), ...] per distinct shape.

    A softmax op over H heads counts H instances of ``q_len x kv_len``; a norm one instance of
    ``rows x width``; an elementwise activation one instance of ``rows x hidden`` per layer.
    """
    rows = next((op.dims["tokens"] for op in lowered.ops if op.kind == "embedding"), lowered.context)
    out: dict[str, dict[str, int]] = {}
    for op in lowered.ops:
        if op.kind not in NONLINEAR_KINDS:
            continue
        count, shape = _instance_shape(op, rows)
        shapes = out.setdefault(KIND_LABELS[op.kind], {})
        shapes[shape] = shapes.get(shape, 0) + count
    return {label: [(n, shape) for shape, n in shapes.items()] for label, shapes in out.items()}


def _instance_shape(op: Op, rows: Any) -> tuple[int, str]:
    d = op.dims
    if op.kind == "softmax":
        return op.instances, f"{d['rows'] // op.instances}x{d['cols']}"
    if "rows" in d:
        return 1, f"{d['rows']}x{d['cols']}"
    if "n" not in d or d["n"] % rows or op.block.value == "head":  # the head's ops act on one row (CLS, the last token)
        return 1, "x".join(str(v) for v in d.values()) if "n" not in d else f"1x{d['n']}"
    return 1, f"{rows}x{d['n'] // rows}"


def format_counts(counts: dict[str, list[tuple[int, str]]], skip: tuple[str, ...] = ("argmax",),
                  sep: str = "; ") -> str:
    """``{"SM": [(144, "128x128")], "LN": [(24, "128x768"), (1, "1x768")]}`` ->
    ``SM: 144 x R^{128x128}; LN: 24 x R^{128x768} + 1 x R^{1x768}``; labels joined by ``sep``."""
    parts = [f"{label}: " + " + ".join(f"{n} x R^{{{shape}}}" for n, shape in shapes)
             for label, shapes in counts.items() if label not in skip and shapes]
    return sep.join(parts) if parts else "none"


@dataclass(frozen=True)
class AblationRow:
    """One step of the ablation. FLOPs are counts; comm in bytes, latency in seconds."""

    label: str
    action: str
    spec_name: str
    nonlinear: dict[str, list[tuple[int, str]]]
    ffn_flops: int
    attention_flops: int
    total_flops: int
    comm_bytes: float | None = None
    latency_s: float | None = None
    savings: dict[str, float] = field(default_factory=dict)
    """Baseline value / this value, per numeric column (``ffn_flops``, ``comm_bytes``...)."""


NUMERIC = ("ffn_flops", "attention_flops", "total_flops", "comm_bytes", "latency_s")


def ablation(steps: list[Step], context: int | None = None, cost: CostFn | None = None) -> list[AblationRow]:
    """Rows of the ablation table for ``steps`` (first = baseline) at ``context`` tokens."""
    rows: list[AblationRow] = []
    for step in steps:
        lowered = lower(step.spec, context)
        groups = FlopsReport(lowered).by_group()
        comm, latency = cost(lowered) if cost is not None else (None, None)
        rows.append(AblationRow(step.label, step.action, step.spec.name, nonlinear_counts(lowered),
                                groups["ffn"], groups["attn_proj"] + groups["attn_scores_values"],
                                FlopsReport(lowered).total, comm, latency))
    base = rows[0]
    out = []
    for row in rows:
        savings = {}
        for name in NUMERIC:
            mine, ref = getattr(row, name), getattr(base, name)
            if mine is None or ref is None:
                continue
            savings[name] = ref / mine if mine else float("inf")
        out.append(AblationRow(**{**row.__dict__, "savings": savings}))
    return out

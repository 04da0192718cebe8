"""`picost validate --against spu`: whole models run in SecretFlow SPU next to picost's estimate.

For a spec, a context and an SPU protocol (``semi2k``, ``cheetah``, ``aby3``), SPU 0.9.5 runs the
JAX twin of the model (``picost/spu/jax_model.py``) end to end as one executable: its bytes on the
wire (all parties, both directions) are the measured total, and its logits are checked against
the same JAX function in plaintext. Each op of the lowering is also run on its own at its shape
(``op by op``), which attributes the bytes to op classes. picost's estimate under the matching
table (``spu-<protocol>``) and options is set beside both.

Verdict: the estimated total within :data:`TOTAL_TOLERANCE` of the whole-model measurement, and
every op class within :data:`CLASS_TOLERANCE` of its op-by-op measurement, for the classes that
carry at least :data:`CLASS_FLOOR` of the measured bytes (smaller classes are shown, not judged).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from picost.model.lower import lower
from picost.model.ops import CLASSES
from picost.model.spec import ModelSpec

TOTAL_TOLERANCE = 0.10
CLASS_TOLERANCE = 0.20
CLASS_FLOOR = 0.01
SPU_PROTOCOLS = ("semi2k", "cheetah", "aby3")

#: table option -> the runner's argument for each choice (None: the runner's per-kind default).
_RUNNER_ARGS = {
    "weights": ("weights", {"server-private": "server-private", "shared": "shared", "public": "public"}),
    "input": ("input", {"client-private": "client-private", "shared": "shared",
                        "client-embedded": "client-embedded"}),
    "gelu": ("gelu", {"stock": None, "puma": "puma"}),
    "softmax": ("softmax", {"stock": "stock", "puma": "puma"}),
}


@dataclass(frozen=True)
class SpuCheck:
    """One spec at one context under one SPU protocol: measured and estimated bytes."""

    spec: str
    protocol: str
    context: int
    options: Mapping[str, str]
    measured_total: int
    """Whole model as one SPU executable: all parties' sent bytes, warm run."""
    ops_total: int
    """The sum of the ops measured one by one."""
    estimated_total: float
    measured_by_class: Mapping[str, float]
    estimated_by_class: Mapping[str, float]
    logits_max_abs_error: float | None = None
    logits_max_abs: float | None = None
    next_token_matches: bool | None = None
    warm_s: float | None = None
    spec_data: Mapping[str, Any] = field(default_factory=dict, repr=False)
    """The spec as validated (``ModelSpec.model_dump()``), so a committed check can be re-estimated."""

    @property
    def total_error(self) -> float:
        return self.estimated_total / self.measured_total - 1

    def class_errors(self) -> dict[str, float | None]:
        """Estimate / measured - 1 per class with bytes; None for a class too small to judge."""
        out: dict[str, float | None] = {}
        for cls in CLASSES + ("truncation",):
            measured = self.measured_by_class.get(cls, 0)
            estimated = self.estimated_by_class.get(cls, 0)
            if not measured and not estimated:
                continue
            judged = max(measured, estimated) >= CLASS_FLOOR * self.ops_total
            out[cls] = (estimated / measured - 1 if measured else float("inf")) if judged else None
        return out

    @property
    def ok(self) -> bool:
        return abs(self.total_error) <= TOTAL_TOLERANCE and all(
            e is None or abs(e) <= CLASS_TOLERANCE for e in self.class_errors().values())

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total_error": self.total_error, "class_errors": self.class_errors(), "ok": self.ok}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SpuCheck":
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in names})


def estimate_bytes(spec: ModelSpec, context: int, protocol: str,
                   options: Mapping[str, str] | None) -> tuple[dict[str, str], float, dict[str, float]]:
    """The options in force, the estimated total bytes and bytes per class under ``spu-<protocol>``."""
    from picost.analysis.estimate import estimate_lowered
    from picost.cost.network import get_network
    from picost.cost.protocol_table import load_protocol

    table = load_protocol(f"spu-{protocol}", options)
    est = estimate_lowered(lower(spec, context), table, get_network("lan"))
    return dict(table.chosen), float(est.totals.comm_bytes), {c: float(t.comm_bytes) for c, t in est.by("class").items()}


def check(spec: ModelSpec, context: int, protocol: str, options: Mapping[str, str] | None = None,
          timeout: float | None = None) -> SpuCheck:
    """Run ``spec`` in SPU (whole and op by op) and estimate it under ``spu-<protocol>``."""
    from picost.spu import bridge

    chosen, est_total, est_by_class = estimate_bytes(spec, context, protocol, options)
    args = {}
    for option, value in chosen.items():
        name, mapping = _RUNNER_ARGS[option]
        args[name] = mapping[value]
    run = bridge.run_model(spec, context, protocol, op_by_op=True,
                           **({"timeout": timeout} if timeout else {}), **args)
    lowered = lower(spec, context)
    whole = run.whole
    return SpuCheck(spec.name, protocol, context, chosen, whole.total_bytes, run.ops_total_bytes, est_total,
                    run.bytes_by_class(lowered.ops), est_by_class, whole.logits_max_abs_error, whole.logits_max_abs,
                    whole.next_token_matches, whole.warm_s, spec.model_dump(mode="json"))


def recheck(measured: SpuCheck) -> SpuCheck:
    """A committed measurement with the estimate recomputed from today's tables (no SPU needed)."""
    spec = ModelSpec.model_validate(measured.spec_data)
    chosen, total, by_class = estimate_bytes(spec, measured.context, measured.protocol, measured.options)
    return dataclasses.replace(measured, options=chosen, estimated_total=total, estimated_by_class=by_class)


def dumps(checks: list[SpuCheck]) -> str:
    return "".join(json.dumps(c.as_dict(), sort_keys=True) + "\n" for c in checks)


def signed_percent(fraction: float | None) -> str:
    """``fraction`` as a signed percentage with one decimal ("+1.2%"), "-" for None. Rounded
    before the sign is chosen, so an error of -1e-16 (float noise that differs between BLAS
    kernels) prints "+0.0%" on every CPU instead of "-0.0%" on some."""
    return "-" if fraction is None else f"{round(100 * fraction, 1) + 0.0:+.1f}%"


def worst_class(errors: dict[str, float | None]) -> str | None:
    """The class with the largest error as printed (to 0.1%; ties by name, so float noise cannot
    pick another class on another CPU), or None if no class is judged."""
    judged = {k: v for k, v in errors.items() if v is not None}
    return min(judged, key=lambda k: (-abs(round(100 * judged[k], 1)), k)) if judged else None


def render(checks: list[SpuCheck]) -> Any:
    """The checks as one table: per run the measured and estimated totals, the worst judged class."""
    from picost.report.render import Column, human_bytes, rich_table

    rows = []
    for c in checks:
        errors = c.class_errors()
        worst = worst_class(errors)
        err = "-" if c.logits_max_abs_error is None else f"{c.logits_max_abs_error:.2g} of {c.logits_max_abs:.2g}"
        rows.append((c.spec, c.context, c.protocol, human_bytes(c.measured_total), human_bytes(c.ops_total),
                     human_bytes(c.estimated_total), signed_percent(c.total_error),
                     f"{worst} {signed_percent(errors[worst])}" if worst else "-", err, "ok" if c.ok else "MISS"))
    columns = [Column("spec"), Column("T", numeric=True), Column("SPU"), Column("measured", numeric=True),
               Column("op by op", numeric=True, drop=2), Column("estimate", numeric=True),
               Column("error", numeric=True), Column("worst class"), Column("logits error", drop=1),
               Column("verdict")]
    return rich_table("SPU runs (all parties' bytes, warm) vs picost's estimate", columns, rows,
                      hint="every column and per-class numbers: -f json")

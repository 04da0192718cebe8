"""`picost validate --against crypten`: whole models run in CrypTen 0.4.1 next to picost's estimate.

For a spec and a context, CrypTen runs the spec's model (``ct_model.py``: picost's torch
reference op for op, with the reference's own weights) between two processes; CrypTen's
counters are read around every op, so each of picost's ops (names from
:func:`picost.model.lower.lower`) gets CrypTen's own bytes and rounds. picost's estimate under the
``crypten`` table with the matching options (``weights``, ``norm_gain``: ``shared`` = the model
encrypted, ``public`` = left unencrypted) is set beside it, per op class and in total.

Verdict: the table claims exactness, so bytes and rounds must be equal per op class and in
total -- except for :data:`BOUND_KINDS`, whose entry is an upper bound (a shared weight that
broadcasts opens fewer elements than the ``2n`` the op's dims allow: a class holding one must
have measured bytes <= estimated, rounds still equal). Also: the ops ran in the lowering's order,
no communication happened outside them, and the decrypted logits are within
:data:`LOGITS_TOLERANCE` of the plaintext reference's.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from picost.model.lower import lower
from picost.model.ops import op_class
from picost.model.spec import ModelSpec

TABLE = "crypten"
BOUND_KINDS = ("weight_mul",)
"""Kinds whose crypten entry is an upper bound when it costs anything (see the table's notes)."""
LOGITS_TOLERANCE = 0.05
"""Max |logit error| allowed, as a fraction of max(1, max |logit|) (16 fractional bits and
CrypTen's approximations of exp, reciprocal, inv_sqrt, tanh, erf)."""
FIELDS = ("comm_bytes", "rounds")


@dataclass(frozen=True)
class CryptenCheck:
    """One spec at one context under one choice of options: measured and estimated bytes and rounds."""

    spec: str
    context: int
    options: Mapping[str, str]
    measured_ops: tuple[Mapping[str, Any], ...]
    """Per op in execution order: name, kind, comm_bytes (all bytes on the wire), rounds."""
    measured_total: Mapping[str, int]
    """The forward pass as one count (from before the first op to after the last)."""
    measured_by_class: Mapping[str, Mapping[str, int]]
    estimated_by_class: Mapping[str, Mapping[str, float]]
    estimated_total: Mapping[str, float]
    bound_classes: tuple[str, ...] = ()
    ops_in_order: bool = True
    logits_max_abs_error: float | None = None
    logits_max_abs: float | None = None
    next_token_matches: bool | None = None
    wall_s: float | None = None
    spec_data: Mapping[str, Any] = field(default_factory=dict, repr=False)
    """The spec as validated (``ModelSpec.model_dump()``), so a committed check can be re-estimated."""

    def class_verdicts(self) -> dict[str, bool]:
        """Per class with any bytes or rounds: equal (or within its bound)."""
        out = {}
        for cls in dict.fromkeys([*self.estimated_by_class, *self.measured_by_class]):
            m = self.measured_by_class.get(cls, {"comm_bytes": 0, "rounds": 0})
            e = self.estimated_by_class.get(cls, {"comm_bytes": 0, "rounds": 0})
            if not any(m.values()) and not any(e.values()):
                continue
            out[cls] = _agrees(m, e, cls in self.bound_classes)
        return out

    @property
    def attributed(self) -> bool:
        """All of the forward pass's communication happened inside picost's ops."""
        return all(sum(o[f] for o in self.measured_ops) == self.measured_total[f] for f in FIELDS)

    @property
    def logits_ok(self) -> bool:
        if self.logits_max_abs_error is None:
            return True
        return self.logits_max_abs_error <= LOGITS_TOLERANCE * max(1.0, self.logits_max_abs or 0.0)

    @property
    def total_ok(self) -> bool:
        return _agrees(self.measured_total, self.estimated_total, bool(self.bound_classes))

    @property
    def ok(self) -> bool:
        return (self.total_ok and all(self.class_verdicts().values()) and self.ops_in_order and self.attributed
                and self.logits_ok)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "class_verdicts": self.class_verdicts(), "attributed": self.attributed,
                "logits_ok": self.logits_ok, "ok": self.ok}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CryptenCheck":
        names = cls.__dataclass_fields__
        values = {k: v for k, v in data.items() if k in names}
        for key in ("measured_ops", "bound_classes"):
            values[key] = tuple(values.get(key, ()))
        return cls(**values)


def _agrees(measured: Mapping[str, float], estimated: Mapping[str, float], bound: bool) -> bool:
    if measured["rounds"] != estimated["rounds"]:
        return False
    return measured["comm_bytes"] <= estimated["comm_bytes"] if bound else measured["comm_bytes"] == estimated["comm_bytes"]


def estimate(spec: ModelSpec, context: int, options: Mapping[str, str] | None
             ) -> tuple[dict[str, str], dict[str, float], dict[str, dict[str, float]], tuple[str, ...]]:
    """The options in force, the estimated totals, the totals per class under ``crypten``, and the
    classes judged as bounds."""
    from picost.analysis.estimate import estimate_lowered
    from picost.cost.network import get_network
    from picost.cost.protocol_table import load_protocol

    table = load_protocol(TABLE, options)
    est = estimate_lowered(lower(spec, context), table, get_network("lan"))
    by_class = {c: {f: float(getattr(t, f) or 0) for f in FIELDS} for c, t in est.by("class").items()}
    bounds = tuple(dict.fromkeys(r.op_class for r in est.rows if r.kind in BOUND_KINDS and r.comm_bytes))
    return (dict(table.chosen), {f: float(getattr(est.totals, f) or 0) for f in FIELDS}, by_class, bounds)


def _by_class(spec: ModelSpec, context: int, ops: tuple[Mapping[str, Any], ...]) -> tuple[dict[str, dict[str, int]], bool]:
    """Measured totals per class of the lowering, and whether the ops ran in the lowering's order."""
    lowered = lower(spec, context).ops
    classes = {op.name: op_class(op) for op in lowered}
    out: dict[str, dict[str, int]] = {}
    for o in ops:
        row = out.setdefault(classes.get(o["name"], o["kind"]), {f: 0 for f in FIELDS})
        for f in FIELDS:
            row[f] += o[f]
    return out, [o["name"] for o in ops] == [op.name for op in lowered]


def check(spec: ModelSpec, context: int, options: Mapping[str, str] | None = None,
          timeout: float | None = None, seed: int = 0) -> CryptenCheck:
    """Run ``spec`` in CrypTen and estimate it under ``crypten`` with ``options``."""
    import numpy as np

    from picost.crypten_engine import bridge

    chosen, est_total, est_by_class, bounds = estimate(spec, context, options)
    payload = bridge.model_payload(spec, context, chosen.get("weights", "shared"), chosen.get("norm_gain", "shared"),
                                   seed=seed)
    run = bridge.run_model(payload, **({"timeout": timeout} if timeout else {}))
    ops = tuple({"name": o.name, "kind": o.kind, "comm_bytes": o.comm_bytes, "rounds": o.comm_rounds} for o in run.ops)
    by_class, in_order = _by_class(spec, context, ops)
    reference = payload.reference_logits
    error = float(np.abs(np.asarray(run.logits, dtype=np.float64) - reference).max())
    matches = None if payload.reference_token is None else run.next_token == payload.reference_token
    return CryptenCheck(spec.name, context, chosen, ops, {"comm_bytes": run.comm_bytes, "rounds": run.comm_rounds},
                        by_class, est_by_class, est_total, bounds, in_order, error, float(np.abs(reference).max()),
                        matches, max(run.wall_s), spec.model_dump(mode="json"))


def recheck(measured: CryptenCheck) -> CryptenCheck:
    """A committed measurement with the estimate recomputed from today's table (no CrypTen needed)."""
    spec = ModelSpec.model_validate(measured.spec_data)
    chosen, total, by_class, bounds = estimate(spec, measured.context, measured.options)
    return dataclasses.replace(measured, options=chosen, estimated_total=total, estimated_by_class=by_class,
                               bound_classes=bounds)


def dumps(checks: list[CryptenCheck]) -> str:
    return "".join(json.dumps(c.as_dict(), sort_keys=True) + "\n" for c in checks)


def _options(c: CryptenCheck) -> str:
    return ", ".join(f"{k}={v}" for k, v in c.options.items())


def render(checks: list[CryptenCheck]) -> Any:
    """The checks as one table: per run the measured and estimated totals and the classes that agree."""
    from picost.report.render import Column, human_bytes, rich_table

    rows = []
    for c in checks:
        verdicts = c.class_verdicts()
        missed = [k for k, v in verdicts.items() if not v]
        classes = f"{len(verdicts) - len(missed)}/{len(verdicts)}" + (f" ({', '.join(missed)} differ)" if missed else "")
        if c.bound_classes:
            classes += f" ({', '.join(c.bound_classes)} within bound)"
        err = "-" if c.logits_max_abs_error is None else f"{c.logits_max_abs_error:.2g} of {c.logits_max_abs:.2g}"
        notes = [] if c.ops_in_order else ["ops out of order"]
        notes += [] if c.attributed else ["bytes outside the ops"]
        notes += [] if c.logits_ok else ["logits"]
        rows.append((c.spec, c.context, _options(c), human_bytes(c.measured_total["comm_bytes"]),
                     human_bytes(c.estimated_total["comm_bytes"]), int(c.measured_total["rounds"]),
                     int(c.estimated_total["rounds"]), classes, err,
                     ("ok" if c.ok else "MISS") + (f" ({'; '.join(notes)})" if notes else "")))
    columns = [Column("spec", text=True), Column("T", numeric=True), Column("options", text=True, drop=2),
               Column("measured", numeric=True, short_header="meas."),
               Column("estimate", numeric=True, short_header="est."),
               Column("rounds", numeric=True), Column("est. rounds", numeric=True, short_header="est. r"),
               Column("classes equal", text=True, short_header="classes"),
               Column("logits error", drop=1, short_header="logits"), Column("verdict", text=True)]
    return rich_table("CrypTen runs (bytes on the wire, both directions; rounds) vs picost's crypten estimate",
                      columns, rows, hint="every column, per op and per class: -f json")

"""The `picost flops` output: FLOPs tables and the stable JSON schema ``picost.flops/1``.

JSON schema ``picost.flops/1`` (all counts are integers)::

    {
      "schema": "picost.flops/1",
      "spec": str, "context": int, "phase": "prefill" | "decode", "batch_size": int,
      "total_flops": int,
      "by_group": {"embedding", "attn_proj", "attn_scores_values", "ffn", "head": int},
      "by_layer": {"embedding": int, "L0": int, ..., "head": int},
      "nonlinear": {kind: {"ops": int, "instances": int, "elements": int, "shape": str}},
      "ops": [{"name", "kind", "block", "layer", "class", "dims": {..}, "operands": [..],
               "instances", "causal", "flops", "elements"}]
    }

Final norms are reported under ``"<kind> (final)"`` in ``nonlinear``, apart from the in-block ones.
"""

from __future__ import annotations

from typing import Any

from picost.model.flops import FlopsReport, count_flops
from picost.report.render import Column, dump_csv, dump_json, human_count, rich_table
from picost.model.spec import ModelSpec

SCHEMA = "picost.flops/1"


def build(spec: ModelSpec, context: int | None) -> FlopsReport:
    return count_flops(spec, context)


def as_dict(report: FlopsReport) -> dict[str, Any]:
    spec = report.lowered.spec
    return {
        "schema": SCHEMA,
        "spec": spec.name,
        "context": report.lowered.context,
        "phase": spec.phase,
        "batch_size": spec.batch_size,
        "total_flops": report.total,
        "by_group": report.by_group(),
        "by_layer": report.by_layer(),
        "nonlinear": report.nonlinear(),
        "ops": [
            {"name": op.name, "kind": op.kind, "block": op.block.value, "layer": op.layer,
             "class": op.op_class, "dims": dict(op.dims), "operands": [h.value for h in op.operands],
             "instances": op.instances, "causal": op.causal, "flops": op.flops, "elements": op.elements}
            for op in report.ops
        ],
    }


def _rows(report: FlopsReport, by: str) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
    total = report.total or 1
    if by == "op":
        header = ("op", "kind", "dims", "FLOPs", "elements")
        rows = [(op.name, op.kind, " ".join(f"{k}={v}" for k, v in op.dims.items()), op.flops, op.elements)
                for op in report.ops]
        return header, rows
    data = report.by_group() if by == "block" else report.by_layer()
    header = ("group" if by == "block" else "layer", "FLOPs", "share")
    return header, [(k, v, f"{100 * v / total:.1f}%") for k, v in data.items()]


def render(report: FlopsReport, by: str, fmt: str) -> Any:
    if fmt == "json":
        return dump_json(as_dict(report))
    header, rows = _rows(report, by)
    if fmt == "csv":
        return dump_csv(header, rows)
    from rich.console import Group

    spec = report.lowered.spec
    pretty = [tuple(human_count(c) if isinstance(c, int) and i > 0 else c for i, c in enumerate(r)) for r in rows]
    columns = [Column(header[0])] + [Column(h, numeric=True) for h in header[1:]]
    if by == "op":  # narrow terminals: dims wrap between symbols, elements then kind are left out
        columns = [Column("op"), Column("kind", drop=2), Column("dims", text=True, min_width=16),
                   Column("FLOPs", numeric=True), Column("elements", numeric=True, drop=1)]
    footer = ["total"] + [human_count(report.total) if h == "FLOPs" else "" for h in header[1:]]
    main = rich_table(f"{spec.name}: FLOPs at T={report.lowered.context} ({spec.phase}, batch {spec.batch_size})",
                      columns, pretty, footer=footer, hint="every column: -f csv")
    nl = report.nonlinear()
    nl_rows = [(k, v["ops"], v["instances"], v["shape"], human_count(v["elements"])) for k, v in nl.items()]
    side = rich_table("Nonlinear ops (elements, not FLOPs)",
                      [Column("kind"), Column("ops", numeric=True, drop=2), Column("instances", numeric=True, drop=1),
                       Column("shape", numeric=True), Column("elements", numeric=True)], nl_rows,
                      hint="every column: -f json")
    return Group(main, side)

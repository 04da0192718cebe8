"""The `picost estimate` output: tables, CSV, markdown and the stable JSON schema ``picost.estimate/1``.

JSON schema ``picost.estimate/1`` (bytes in bytes, times in seconds; ``null`` = not given by the
table, or the row is uncosted)::

    {
      "schema": "picost.estimate/1",
      "spec": str, "context": int, "phase": "prefill" | "decode", "batch_size": int,
      "protocol": {"name", "description", "setting": {"parties", "threat_model",
                   "correlated_randomness", "ring_bits", "fractional_bits", "he"}, "confidence",
                   "params": {name: number}, "options": {option: chosen value},
                   "composition": null | {"spelled", "classes": {class: table}, "conversions_table",
                                          "conversions": [{"from", "to", "steps": [{"step", symbol: int}]}]}},
      "network": {"name", "bandwidth_bps", "rtt_s", "round_s", "source"},
      "machine": {"name", "description", "threads_per_party", "parties_share_host", "per_core_speed",
                  "source", "compute", "reference"},
      "latency_model": str,
      "totals": TOTALS + {"bytes_bound_s": float, "dominant_class": str | null,
                          "extrapolated_rows": int, "extrapolated_share": float | null},
      "by_layer": {group: TOTALS}, "by_block": {group: TOTALS}, "by_class": {group: TOTALS},
      "rows": [{"name", "kind", "class", "layer", "block", "flops", "costed", "comm_bytes",
                "bytes_client_to_server", "bytes_server_to_client", "rounds", "compute_s",
                "comm_s", "latency_s", "offline_bytes", "setup_bytes", "share", "source", "formulas": {field: str},
                "dims": {symbol: int}, "uncosted_reason", "table", "notes": [str],
                "compute_beyond": float | null}]
    }

    TOTALS = {"rows", "costed", "uncosted", "flops", "comm_bytes", "bytes_client_to_server",
              "bytes_server_to_client", "rounds", "compute_s", "comm_s", "latency_s",
              "offline_bytes", "setup_bytes", "compute_rows", "offline_rows", "setup_rows", "share"}

``rows[].layer`` is ``L<i>`` inside the blocks and the block name outside them. A row explains
itself: ``formulas`` evaluated at ``dims`` and the protocol's ``params`` give its numbers. ``share`` is the
fraction of the total latency. Totals are the sums of the rows in order. ``rows[].table`` names the
table whose entry costed the row; for a hybrid protocol (``linear=bumblebee,nonlinear=sigma``) that is
one of its parts or its conversions table, and ``protocol.composition`` records the composition
(``null`` for a single table). ``machine`` is where ``compute_s`` is for (docs/latency-model.md,
"Machines"); ``rows[].compute_beyond`` is the row's size over the largest size its compute was
measured at (1.0 within the measured sizes, above 1 extrapolated that far, ``null`` where the table
states no measured range), and ``totals.extrapolated_share`` the fraction of the latency from rows
whose compute is extrapolated. ``rows[].notes`` are the op's notes from the lowering (what a ``reveal``
row opens, which routing an expert row runs under); the text output names the rows that open secrets.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from picost.analysis.estimate import Estimate, Row, Totals
from picost.model.ops import KINDS
from picost.report.render import (CLASS_LABELS, Column, dump_csv, dump_json, dump_markdown, human_bytes,
                                  human_count, human_seconds)

SCHEMA = "picost.estimate/1"
LATENCY_MODEL = ("latency_s = compute_s + comm_bytes * 8 / (bandwidth_bps * transfer_links) + rounds * delays_per_round "
                 "* round_s, round_s = rtt_s / 2, delays_per_round and transfer_links (1, or the party count with "
                 "transfer: parallel) from the protocol's setting (docs/latency-model.md)")
UNCOSTED = "UNCOSTED"


def _totals_dict(est: Estimate, t: Totals) -> dict[str, Any]:
    return {**asdict(t), "share": est.share(t.latency_s)}


def as_dict(est: Estimate) -> dict[str, Any]:
    p = est.protocol
    totals = _totals_dict(est, est.totals)
    totals.update(bytes_bound_s=est.bytes_bound_s, dominant_class=est.dominant_class,
                  extrapolated_rows=len(est.extrapolated_rows), extrapolated_share=est.extrapolated_share)
    return {
        "schema": SCHEMA,
        "spec": est.spec_name, "context": est.context, "phase": est.phase, "batch_size": est.batch_size,
        "protocol": {"name": p.name, "description": p.description,
                     "setting": {**asdict(p.setting), "he": dict(p.setting.he)}, "confidence": p.confidence,
                     "params": p.param_values, "options": dict(p.chosen),
                     "composition": p.composition() if hasattr(p, "composition") else None},
        "network": est.network.as_dict(),
        "machine": est.machine.as_dict(),
        "latency_model": LATENCY_MODEL,
        "totals": totals,
        **{f"by_{key}": {g: _totals_dict(est, t) for g, t in est.by(key).items()} for key in ("layer", "block", "class")},
        "rows": [_row_dict(est, r) for r in est.rows],
    }


def _row_dict(est: Estimate, r: Row) -> dict[str, Any]:
    return {"name": r.name, "kind": r.kind, "class": r.op_class, "layer": r.layer_label, "block": r.block,
            "flops": r.flops, "costed": r.costed, "comm_bytes": r.comm_bytes,
            "bytes_client_to_server": r.bytes_client_to_server, "bytes_server_to_client": r.bytes_server_to_client,
            "rounds": r.rounds, "compute_s": r.compute_s, "comm_s": r.comm_s, "latency_s": r.latency_s,
            "offline_bytes": r.offline_bytes, "setup_bytes": r.setup_bytes, "share": est.share(r.latency_s),
            "source": r.source, "formulas": dict(r.formulas), "dims": dict(r.dims), "uncosted_reason": r.uncosted_reason,
            "table": r.table, "notes": list(r.notes), "compute_beyond": r.compute_beyond}


# -- tables -----------------------------------------------------------------------------------

_OP_HEADER = ("op", "kind", "class", "bytes", "rounds", "compute", "transfer", "latency", "share", "source")
_GROUP_HEADER = ("rows", "bytes", "rounds", "compute", "transfer", "latency", "share")
_CSV_OP_HEADER = ("name", "kind", "class", "layer", "block", "flops", "comm_bytes", "bytes_client_to_server",
                  "bytes_server_to_client", "rounds", "compute_s", "comm_s", "latency_s", "offline_bytes",
                  "setup_bytes", "share", "costed", "source", "table")
_CSV_GROUP_HEADER = ("rows", "uncosted", "flops", "comm_bytes", "rounds", "compute_s", "comm_s", "latency_s",
                     "offline_bytes", "setup_bytes", "share")


def _pct(x: float | None) -> str:
    return "" if x is None else f"{100 * x:.1f}%"


def _hybrid(est: Estimate) -> bool:
    return len(est.protocol.table_names) > 1


def _human_rows(est: Estimate, by: str) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
    if by == "op":
        rows = []
        for r in est.rows:
            table = (r.table,) if _hybrid(est) else ()
            if not r.costed:
                rows.append((r.name, r.kind, r.op_class, *table, UNCOSTED, UNCOSTED, "", "", UNCOSTED, "",
                             r.uncosted_reason))
                continue
            rows.append((r.name, r.kind, r.op_class, *table, human_bytes(r.comm_bytes), human_count(r.rounds),
                         _compute_cell(r.compute_s, r.extrapolated), human_seconds(r.comm_s),
                         human_seconds(r.latency_s), _pct(est.share(r.latency_s)), r.source))
        header = _OP_HEADER[:3] + ("table",) + _OP_HEADER[3:] if _hybrid(est) else _OP_HEADER
        return header, rows
    rows = []
    beyond = {g for r in est.extrapolated_rows for g in (r.group(by),)}
    for group, t in est.by(by).items():
        count = f"{t.rows}" + (f" ({t.uncosted} {UNCOSTED})" if t.uncosted else "")
        if not t.costed:
            rows.append((group, count) + (UNCOSTED,) * 5 + ("",))
            continue
        at_least = ">= " if t.uncosted else ""  # a partly uncosted group: the sums are lower bounds
        compute = _compute_cell(t.compute_s, group in beyond) if t.compute_rows else "-"
        rows.append((group, count, at_least + human_bytes(t.comm_bytes), at_least + human_count(t.rounds), compute,
                     at_least + human_seconds(t.comm_s), at_least + human_seconds(t.latency_s),
                     _pct(est.share(t.latency_s))))
    return (by,) + _GROUP_HEADER, rows


EXTRAPOLATED_MARK = "*"


def _compute_cell(compute_s: float | None, extrapolated: bool) -> str:
    """A compute time, marked when it comes (in part) from beyond the measured sizes."""
    if compute_s is None:
        return ""
    return human_seconds(compute_s) + (EXTRAPOLATED_MARK if extrapolated else "")


def machine_lines(est: Estimate) -> list[str]:
    """Which machine the compute is for, and how much of the latency rests on extrapolated compute."""
    machine = est.machine
    if not machine.compute:
        return ["compute: left out (--compute none): the latency is communication and round delays only"]
    lines = [f"compute is for machine {machine.summary()}" + ("" if machine.is_reference else
                                                               "; scaled from the tables' reference machine")]
    if not machine.is_reference:
        notes = sorted({table_scaling_note(t) for t in _tables_of(est.protocol)})
        lines += [f"core scaling: {n}" for n in notes if n]
    rows = est.extrapolated_rows
    if rows:
        worst = max(rows, key=lambda r: r.compute_beyond)
        share = est.extrapolated_share
        lines.append(f"{EXTRAPOLATED_MARK} compute extrapolated beyond the measured sizes in {len(rows)} rows "
                     f"({_pct(share) or '0%'} of the latency; up to {worst.compute_beyond:,.0f}x the largest measured "
                     f"size, {worst.kind})")
    return lines


def _tables_of(table: Any) -> list[Any]:
    parts = getattr(table, "parts", None)
    return list(parts.values()) if parts else [table]


def table_scaling_note(table: Any) -> str:
    """How a table's compute scales with cores: measured per entry, else the fallback's sentence."""
    from picost.cost.machine import table_scalings

    entries = [e for e in table.entries.values() if "compute_s" in e.formulas]
    if not entries:
        return ""
    own = sum(e.compute_scaling is not None for e in entries)
    _, fallback = table_scalings(table.entries)
    if own == len(entries):
        return f"{table.name}: measured for every entry with compute"
    return f"{table.name}: measured for {own} of {len(entries)} entries with compute; {fallback}"


def summary_lines(est: Estimate) -> list[str]:
    """The closing summary: totals, dominant class, bytes-only bound, caveats."""
    t = est.totals
    if not t.costed:
        return [f"WARNING: all {t.rows} rows are {UNCOSTED}: the table cannot cost this model; no totals"]
    lines = [
        f"total online communication: {t.comm_bytes / 1e9:.4g} GB ({t.comm_bytes:,.0f} bytes)"
        + (f"; client->server {human_bytes(t.bytes_client_to_server)}, server->client "
           f"{human_bytes(t.bytes_server_to_client)}" if t.bytes_client_to_server is not None else ""),
        f"rounds: {t.rounds:,.0f}   latency: {human_seconds(t.latency_s)} ("
        + (f"compute {human_seconds(t.compute_s)}, " if est.machine.compute else "compute left out, ")
        + f"transfer {human_seconds(t.comm_s)}, round delays {human_seconds(t.latency_s - t.compute_s - t.comm_s)})",
        f"dominant class: {est.dominant_class} ({_pct(est.share(est.by('class')[est.dominant_class].latency_s))} "
        f"of latency)" if est.dominant_class else "dominant class: none (the latency is zero)",
        f"lower bound on latency from bytes alone: {human_seconds(est.bytes_bound_s)} "
        f"({est.network.summary()})",
    ]
    if t.offline_rows:
        lines.append(f"offline (preprocessing) bytes, not in the latency: {human_bytes(t.offline_bytes)} "
                     f"({t.offline_rows} rows give them)")
    if t.setup_rows:
        lines.append(f"one-time model setup bytes (once per model, not per inference; not in the latency): "
                     f"{human_bytes(t.setup_bytes)} ({t.setup_rows} rows give them)")
    lines += machine_lines(est)
    if t.compute_rows < t.costed and est.machine.compute:
        without = sorted({r.kind for r in est.rows if r.costed and r.compute_s is None})
        lines.append(f"compute time given by the table for {t.compute_rows} of {t.costed} rows; the others "
                     f"({', '.join(without)}) count communication and rounds only")
    lines += _opened_lines(est)
    if t.uncosted:
        lines.append(f"WARNING: {t.uncosted} {UNCOSTED} rows (the table cannot cost them); all totals leave them "
                     f"out, so they are lower bounds")
    return lines


def _opened_lines(est: Estimate) -> list[str]:
    """A line on the rows whose outputs are opened to the parties (kind ``reveal``): how many, what
    they cost and what they open (the first one's note)."""
    opened = [r for r in est.rows if r.kind in KINDS and KINDS[r.kind].public_output]
    if not opened:
        return []
    costed = [r for r in opened if r.costed]
    cost = (f"{human_bytes(sum(r.comm_bytes for r in costed))}, {human_count(sum(r.rounds for r in costed))} rounds"
            + (f" ({len(opened) - len(costed)} {UNCOSTED})" if len(costed) < len(opened) else ""))
    what = f": {opened[0].notes[0]}" if opened[0].notes else ""
    return [f"opened to the parties (not private): {len(opened)} {opened[0].kind} rows ({opened[0].name}, ...), "
            f"{cost}{what}"]


def _title(est: Estimate) -> str:
    return (f"{est.spec_name} at T={est.context} ({est.phase}, batch {est.batch_size}) under {est.protocol.label} "
            f"over {est.network.name} ({est.network.summary()})")


def render(est: Estimate, by: str, fmt: str) -> Any:
    """``fmt`` json/csv/md -> text; ``table`` -> a rich renderable."""
    if fmt == "json":
        return dump_json(as_dict(est))
    if fmt == "csv":
        return _csv(est, by)
    header, rows = _human_rows(est, by)
    align = [False] + [True] * (len(header) - 1)
    if by == "op":
        align = [h not in ("op", "kind", "class", "table", "source") for h in header]
    if fmt == "md":
        return (f"## {_title(est)}\n\n" + dump_markdown(header, rows, align) + "\n"
                + "".join(f"- {line}\n" for line in summary_lines(est)))
    from rich.console import Group

    from picost.report.render import Paragraphs, rich_table

    # narrow terminals: short class labels, then the least telling columns left out; sources (long
    # text, the same for every op of a kind) go below the table, one paragraph per kind
    columns = _op_columns(header) if by == "op" else _group_columns(by)
    table = rich_table(_title(est), columns, rows, hint="every column: -f csv or -f md",
                       spill_key=1 if by == "op" else 0)
    return Group(table, Paragraphs(summary_lines(est)))


def _op_columns(header: tuple[str, ...]) -> list[Column]:
    drop = {"kind": 7, "class": 4, "rounds": 5, "share": 3, "compute": 2, "transfer": 6}
    columns = [Column(h, numeric=h not in ("op", "kind", "class", "table", "source"), drop=drop.get(h, 0),
                      short=CLASS_LABELS if h == "class" else None) for h in header[:-1]]
    return columns + [Column("source", text=True, spill=True, drop=9, min_width=100)]


def _group_columns(by: str) -> list[Column]:
    drop = {"rows": 5, "rounds": 3, "share": 1, "compute": 2, "transfer": 4}
    return [Column(by, short=CLASS_LABELS if by == "class" else None)] + [
        Column(h, numeric=True, drop=drop.get(h, 0)) for h in _GROUP_HEADER]


def _csv(est: Estimate, by: str) -> str:
    if by == "op":
        rows = [(r.name, r.kind, r.op_class, r.layer_label, r.block, r.flops, r.comm_bytes,
                 r.bytes_client_to_server, r.bytes_server_to_client, r.rounds, r.compute_s, r.comm_s, r.latency_s,
                 r.offline_bytes, r.setup_bytes, est.share(r.latency_s), r.costed,
                 r.source if r.costed else f"{UNCOSTED}: {r.uncosted_reason}", r.table) for r in est.rows]
        return dump_csv(_CSV_OP_HEADER, rows)
    rows = [(g, t.rows, t.uncosted, t.flops, t.comm_bytes, t.rounds, t.compute_s, t.comm_s, t.latency_s,
             t.offline_bytes, t.setup_bytes, est.share(t.latency_s)) for g, t in est.by(by).items()]
    return dump_csv((by,) + _CSV_GROUP_HEADER, rows)

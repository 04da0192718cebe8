"""Rendering of engine runs and validations (rich tables and JSON-ready dicts)."""

from __future__ import annotations

from typing import Any

from picost.mpc.validate import FIELDS, ModelCheck, RowCheck, Validation
from picost.report.render import Column, human_bytes, rich_table

_SHORT = {"bytes_client_to_server": "client->server B", "bytes_server_to_client": "server->client B",
          "rounds": "rounds", "offline_bytes": "dealer B", "setup_bytes": "setup B"}
_SHORTER = {"client->server B": "c->s B", "server->client B": "s->c B", "client->server": "c->s",
            "server->client": "s->c", "mismatches": "bad", "max |err| logits": "max|err|", "next token": "next",
            "plaintext": "plain"}


def _pair(row: RowCheck, f: str) -> str:
    p, m = row.predicted[f], row.measured[f]
    return f"{m}" if p == m else f"{p} != {m}"


def rows_table(title: str, rows: list[RowCheck]) -> Any:
    drop = {"kind": 3, _SHORT["offline_bytes"]: 2, _SHORT["setup_bytes"]: 2, "wall ms": 4}
    header = ("row", "kind", *(_SHORT[f] for f in FIELDS), "wall ms", "check")
    columns = [Column(h, numeric=h not in ("row", "kind", "check"), drop=drop.get(h, 0), short_header=_SHORTER.get(h))
               for h in header]
    body = [(r.name, r.kind, *(_pair(r, f) for f in FIELDS), f"{1000 * r.wall_s:.1f}", "ok" if r.ok else "MISMATCH")
            for r in rows]
    return rich_table(title, columns, body, hint="every column: -f json")


def models_table(models: list[ModelCheck]) -> Any:
    header = ("spec", "phase", "T", "rows", "mismatches", "client->server", "server->client", "rounds", "dealer",
              "setup", "max |err| logits", "next token", "plaintext", "wall s")
    drop = {"phase": 5, "rows": 6, "rounds": 2, "dealer": 4, "setup": 4, "max |err| logits": 3, "wall s": 7}
    columns = [Column(h, numeric=h not in ("spec", "phase"), drop=drop.get(h, 0), short_header=_SHORTER.get(h))
               for h in header]
    body = []
    for m in models:
        tot = {f: sum(r.measured[f] or 0 for r in m.rows) for f in FIELDS}
        body.append((m.spec, m.phase, m.context, len(m.rows), sum(not r.ok for r in m.rows) + (not m.op_order_ok),
                     human_bytes(tot["bytes_client_to_server"]), human_bytes(tot["bytes_server_to_client"]),
                     tot["rounds"], human_bytes(tot["offline_bytes"]), human_bytes(tot["setup_bytes"]),
                     f"{m.max_abs_error:.2e} (of {m.max_abs_logit:.1f})", m.next_token, m.reference_token,
                     f"{m.wall_s:.2f}"))
    return rich_table("Whole models: measured totals (every row checked against the table)", columns, body,
                      hint="every column: -f json")


def render_validation(v: Validation) -> list[Any]:
    out = []
    if v.op_rows:
        out.append(rows_table("Op suite: predicted (picost-2pc) vs measured; 'a != b' marks a mismatch",
                              v.op_rows))
    if v.models:
        out.append(models_table(v.models))
        bad = [r for m in v.models for r in m.rows if not r.ok]
        if bad:
            out.append(rows_table("Model rows that do not match", bad))
    return out


def render_model(m: ModelCheck) -> list[Any]:
    what = f"{m.context} tokens" if m.phase == "prefill" else f"one token after {m.context} cached"
    return [rows_table(f"{m.spec}: cost of the private forward pass ({what}), predicted == measured "
                       "unless marked", m.rows), models_table([m])]


def model_json(m: ModelCheck) -> dict[str, Any]:
    return {"schema": "picost.mpc.run/1", "spec": m.spec, "phase": m.phase, "context": m.context,
            "ids": list(m.ids), "next_token": m.next_token,
            "reference_token": m.reference_token, "max_abs_error": m.max_abs_error,
            "max_abs_logit": m.max_abs_logit, "top2_margin": m.top2_margin, "ok": m.ok,
            "online_wall_s": m.wall_s, "preprocess_s": m.preprocess_s, "peak_rss_bytes": m.peak_rss_bytes,
            "rows": [row_json(r) for r in m.rows]}


def row_json(r: RowCheck) -> dict[str, Any]:
    return {"row": r.name, "kind": r.kind, "predicted": r.predicted, "measured": r.measured, "wall_s": r.wall_s,
            "ok": r.ok}


def validation_json(v: Validation) -> dict[str, Any]:
    return {"schema": "picost.validate/1", "ok": v.ok, "ops": [row_json(r) for r in v.op_rows],
            "models": [model_json(m) for m in v.models]}

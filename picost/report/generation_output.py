"""The `picost estimate --new-tokens N` output: prefill, decode steps, per-token latency, totals.

JSON schema ``picost.generation/1`` (bytes in bytes, times in seconds; ``null`` = not given)::

    {
      "schema": "picost.generation/1",
      "spec": str, "prompt": int, "new_tokens": int, "batch_size": int,
      "protocol": {"name", "options", "setting"}, "network": {...}, "kv_cache": str,
      "prefill": STEP, "decode": {"first": STEP, "last": STEP, "mean": STEP, "sum": STEP,
                                 "steps": {"cache": [int], "latency_s": [float], "comm_bytes": [..],
                                           "rounds": [..], "by_class": {class: {"latency_s": [..]}}}},
      "ttft_s": float, "per_token_mean_s": float, "per_token_last_s": float,
      "totals": STEP, "by_class": {class: {"comm_bytes", "rounds", "latency_s"}}, "notes": [str]
    }

    STEP = {"flops", "comm_bytes", "rounds", "compute_s", "latency_s", "offline_bytes",
            "bytes_client_to_server", "bytes_server_to_client"}

Decode step ``i`` runs one token against ``prompt + i - 1`` cached tokens; ``ttft_s`` is the
prefill's latency; the totals are the prefill plus every step.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Iterator

from picost.analysis.generation import STEP_FIELDS, Generation
from picost.report.render import (CLASS_LABELS, PIECE, Column, csv_pieces, dump_markdown, human_bytes, human_count,
                                  human_seconds, json_pieces)

SCHEMA = "picost.generation/1"


def _prefill(g: Generation) -> dict[str, Any]:
    t = g.prefill.totals
    return {f: getattr(t, f) for f in STEP_FIELDS}


def _mean(g: Generation) -> dict[str, Any]:
    return {f: (None if v is None else float(v.mean())) for f, v in g.steps.total.items()}


def as_dict(g: Generation, arrays: bool = False) -> dict[str, Any]:
    """The JSON schema's data; the per-step columns as lists, or with ``arrays`` as the numpy
    arrays themselves (for :func:`~picost.report.render.json_pieces`)."""
    p = g.protocol
    steps = g.steps

    def column(arr: Any) -> Any:
        return None if arr is None else (arr if arrays else arr.tolist())
    return {
        "schema": SCHEMA, "spec": g.spec_name, "prompt": g.prompt, "new_tokens": g.new_tokens,
        "batch_size": g.batch_size,
        "protocol": {"name": p.name, "options": dict(p.chosen), "setting": {**asdict(p.setting), "he": dict(p.setting.he)}},
        "network": g.network.as_dict(), "kv_cache": g.kv_cache,
        "prefill": _prefill(g),
        "decode": {"first": steps.step(1), "last": steps.step(len(steps)), "mean": _mean(g), "sum": g.decode_totals(),
                   "steps": {"cache": column(steps.cache),
                             **{f: column(steps.total[f]) for f in ("latency_s", "comm_bytes", "rounds")},
                             "by_class": {c: {"latency_s": column(v["latency_s"])} for c, v in steps.by_class.items()}}},
        "ttft_s": g.ttft_s, "per_token_mean_s": g.mean_token_s, "per_token_last_s": g.last_token_s,
        "totals": g.totals(), "by_class": g.class_totals(), "notes": list(g.notes),
    }


def _csv_rows(g: Generation) -> Iterator[tuple[Any, ...]]:
    """The prefill (step 0), then one row per decode step, made :data:`PIECE` steps at a time."""
    pre = _prefill(g)
    yield (0, "", pre["flops"], pre["comm_bytes"], pre["rounds"], pre["latency_s"])
    steps, fields = g.steps, ("flops", "comm_bytes", "rounds", "latency_s")
    for at in range(0, len(steps), PIECE):
        cut = slice(at, at + PIECE)
        columns = [steps.cache[cut].tolist()] + [
            [None] * len(steps.cache[cut]) if steps.total[f] is None else steps.total[f][cut].tolist() for f in fields]
        yield from ((at + i + 1, *row) for i, row in enumerate(zip(*columns)))


_HEADER = ("phase", "cache", "FLOPs", "comm", "rounds", "latency")


def _rows(g: Generation) -> list[tuple[Any, ...]]:
    pre, n, steps = _prefill(g), g.new_tokens, g.steps
    first, last, mean, total = steps.step(1), steps.step(n), _mean(g), g.totals()
    dec = g.decode_totals()

    def row(label: str, cache: str, v: dict[str, Any]) -> tuple[Any, ...]:
        return (label, cache, human_count(v["flops"]), human_bytes(v["comm_bytes"]), human_count(v["rounds"]),
                human_seconds(v["latency_s"]))

    rows = [row(f"prefill ({g.prompt} tokens)", "-", pre), row("decode step 1", str(g.prompt), first)]
    if n > 1:
        rows.append(row(f"decode step {n}", str(g.prompt + n - 1), last))
        rows.append(row(f"decode mean of {n}", "", mean))
    rows.append(row(f"decode, {n} steps", "", dec))
    rows.append(row("total", "", total))
    return rows


def summary_lines(g: Generation) -> list[str]:
    t = g.totals()
    lines = [
        f"time to first token (the prefill): {human_seconds(g.ttft_s)}",
        f"per-token latency: mean {human_seconds(g.mean_token_s)} over {g.new_tokens} decode steps, last "
        f"{human_seconds(g.last_token_s)} (cache {g.prompt + g.new_tokens - 1})",
        f"total: {human_seconds(t['latency_s'])}, {human_bytes(t['comm_bytes'])} online, {human_count(t['rounds'])} "
        f"rounds ({g.network.summary()}); {g.new_tokens + 1} tokens out (the prefill's and one per step)",
        f"KV cache: {g.kv_cache}",
    ]
    if g.steps.uncosted:
        lines.append(f"WARNING: {len(g.steps.uncosted)} UNCOSTED decode rows per step; totals leave them out")
    return lines + [f"note: {n}" for n in g.notes]


def _title(g: Generation) -> str:
    return (f"{g.spec_name}: prompt T={g.prompt}, {g.new_tokens} new tokens under {g.protocol.label} over "
            f"{g.network.name} ({g.network.summary()})")


def _class_rows(g: Generation) -> list[tuple[Any, ...]]:
    total = g.totals()["latency_s"] or 0
    return [(c, human_bytes(v["comm_bytes"]), human_count(v["rounds"]),
             human_seconds(v["latency_s"]), f"{100 * v['latency_s'] / total:.1f}%" if total else "-")
            for c, v in g.class_totals().items()]


def render(g: Generation, fmt: str) -> Any:
    if fmt == "json":
        return json_pieces(as_dict(g, arrays=True))
    if fmt == "csv":
        header = ("step", "cache", "flops", "comm_bytes", "rounds", "latency_s")
        return csv_pieces(header, _csv_rows(g))
    rows = _rows(g)
    class_header = ("class", "comm", "rounds", "latency", "share")
    if fmt == "md":
        return (f"## {_title(g)}\n\n" + dump_markdown(_HEADER, rows, [False, True, True, True, True, True]) + "\n"
                + dump_markdown(class_header, _class_rows(g), [False, True, True, True, True]) + "\n"
                + "".join(f"- {line}\n" for line in summary_lines(g)))
    from rich.console import Group

    from picost.report.render import Paragraphs, rich_table

    table = rich_table(_title(g), [Column(_HEADER[0]), Column("cache", numeric=True)]
                       + [Column(h, numeric=True) for h in _HEADER[2:]], rows)
    by_class = rich_table("prefill + decode, by op class", [Column("class", short=CLASS_LABELS)]
                          + [Column(h, numeric=True) for h in class_header[1:]], _class_rows(g))
    return Group(table, by_class, Paragraphs(summary_lines(g)))

"""The `picost sweep` output: one row per point, totals and each op class's share.

JSON schema ``picost.sweep/1`` (bytes, seconds; one object per point)::

    {"schema": "picost.sweep/1", "spec": str, "share_of": "latency_s" | "comm_bytes",
     "networks": {name: {...}}, "uncosted": {protocol: [row]},
     "points": [{"protocol", "network", "context", "comm_bytes", "rounds", "compute_s", "latency_s",
                 "classes": {class: {"comm_bytes", "rounds", "compute_s", "latency_s", "share"}}}]}

With ``--new-tokens`` (a generation at every point: the prefill of T tokens, then N decode steps)
the same schema gains ``"new_tokens": [int]`` at the top and, per point, ``new_tokens``,
``ttft_s`` (the prefill's latency), ``per_token_mean_s`` (the decode steps' mean latency) and
``prefill``/``decode`` (totals of each part); the point's totals and classes are the whole
generation's (prefill + N steps).
"""

from __future__ import annotations

from typing import Any, Sequence

from picost.report.render import CLASS_LABELS, Column, human_bytes, human_count, human_seconds, rich_table

SCHEMA = "picost.sweep/1"


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _generation(result: Any) -> bool:
    return hasattr(result, "new_tokens")


def _totals(result: Any) -> dict[str, Any]:
    from picost.analysis.generation_sweep import FIELDS

    if _generation(result):
        return {f: result.total(f) for f in FIELDS}
    return result.total


def _by_class(result: Any, c: str, f: str) -> Any:
    return result.by_class(c, f) if _generation(result) else result.by_class[c][f]


def json_obj(result: Any, field: str, shares: dict[str, Any]) -> dict[str, Any]:
    """The JSON of a context sweep or a generation sweep (see the module)."""
    totals = _totals(result)
    points = []
    for i in range(len(result)):
        point = {"protocol": result.protocol[i], "network": result.network[i], "context": int(result.context[i])}
        if _generation(result):
            point.update({"new_tokens": int(result.new_tokens[i]), "ttft_s": float(result.ttft_s[i]),
                          "per_token_mean_s": float(result.per_token()[i])})
        point.update({f: float(totals[f][i]) for f in totals})
        point["classes"] = {c: {**{f: float(_by_class(result, c, f)[i]) for f in totals}, "share": float(shares[c][i])}
                            for c in result.classes}
        if _generation(result):
            for part in ("prefill", "decode"):
                point[part] = {f: float(result.part_total(part, f)[i]) for f in totals}
        points.append(point)
    obj = {"schema": SCHEMA, "spec": result.spec_name, "share_of": field}
    if _generation(result):
        obj["new_tokens"] = [int(n) for n in dict.fromkeys(result.new_tokens.tolist())]
    obj.update({"networks": {n: v.as_dict() for n, v in result.networks.items()}, "uncosted": result.uncosted,
                "points": points})
    return obj


def header(result: Any) -> tuple[str, ...]:
    """Column titles of the table and markdown views (values shown with their units)."""
    lead = ("protocol", "network", "T")
    if _generation(result):
        lead += ("N", "TTFT", "per token")
    return lead + ("comm", "rounds", "latency") + tuple(f"{c} %" for c in result.classes)


def csv_header(result: Any, share_of: str) -> tuple[str, ...]:
    """Column names of the CSV, each with its unit (the JSON's field names): the class shares are
    fractions of ``share_of`` (``latency_s`` or ``comm_bytes``), named ``<class>_share_of_<field>``."""
    lead = ("protocol", "network", "T_tokens")
    if _generation(result):
        lead += ("N_tokens", "ttft_s", "per_token_latency_s")
    return lead + ("comm_bytes", "rounds", "latency_s") + tuple(f"{c}_share_of_{share_of}" for c in result.classes)


def rows(result: Any, shares: dict[str, Any], human: bool) -> list[tuple[Any, ...]]:
    """One row per point, in :func:`header`'s order (display text when ``human``, else numbers)."""
    totals = _totals(result)
    gen = _generation(result)
    per_token = result.per_token() if gen else None
    out = []
    for i in range(len(result)):
        lead: tuple[Any, ...] = (result.protocol[i], result.network[i], int(result.context[i]))
        values = [totals["comm_bytes"][i], totals["rounds"][i], totals["latency_s"][i]]
        if gen:
            lead += (int(result.new_tokens[i]),)
            times = (result.ttft_s[i], per_token[i])
            lead += tuple(human_seconds(t) for t in times) if human else tuple(float(t) for t in times)
        if human:
            head = (human_bytes(values[0]), human_count(values[1]), human_seconds(values[2]))
            tail = tuple(_pct(shares[c][i]) for c in result.classes)
        else:
            head = tuple(float(v) for v in values)
            tail = tuple(float(shares[c][i]) for c in result.classes)
        out.append(lead + head + tail)
    return out


def terminal_table(result: Any, share: str, shares: dict[str, Any], body: Sequence[tuple[Any, ...]]) -> Any:
    """The terminal view: a single protocol or network goes into the title; the class columns come
    by their largest share, so a narrow terminal keeps the totals and the top classes."""
    where, keep = "", []
    for i, (name, values) in enumerate((("protocol", result.protocol), ("network", result.network))):
        distinct = list(dict.fromkeys(values))
        if len(distinct) > 1:
            keep.append(i)
        elif name == "protocol":
            where += f" under {distinct[0]}"
        else:
            where += f" over {distinct[0]} ({result.networks[distinct[0]].summary()})"
    names = header(result)
    n_fixed = len(names) - len(result.classes)
    order = sorted(range(len(result.classes)), key=lambda k: -float(max(shares[result.classes[k]], default=0)))
    columns = [Column(("protocol", "network")[i]) for i in keep]
    columns += [Column(h, numeric=True, drop=1 if h == "rounds" else 0) for h in names[2:n_fixed]]
    columns += [Column(c, numeric=True, drop=10 + rank, short_header=CLASS_LABELS.get(c))
                for rank, c in enumerate(result.classes[k] for k in order)]
    table = [[row[i] for i in keep] + list(row[2:n_fixed]) + [row[n_fixed + k] for k in order] for row in body]
    what = "generation (prefill of T, N new tokens)" if _generation(result) else "T"
    return rich_table(f"{result.spec_name}{where}, by {what}: totals, then each class's share of {share} "
                      "(largest first)", columns, table, hint="every column: -f csv")

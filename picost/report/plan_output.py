"""The `picost plan` output: latency forms, the winner map, exact boundaries, target answers.

JSON schema ``picost.plan/1`` (bandwidths in bit/s, times in seconds)::

    {"schema": "picost.plan/1", "spec": str, "context": int, "objective": "prefill" | "ttft" |
     "per-token" | "total", "new_tokens": int | null, "protocols": [str],
     "bandwidth_bps": [float], "rtt_s": [float], "target_s": float | null,
     "machines": [{"machine": {...}, "forms": {protocol: {"compute_s", "bits", "rtt_factor"}},
                   "regions": {protocol: [[bandwidth_bps, rtt_s], ...]},
                   "boundaries": [{"between": [p, q], "ends": [[bandwidth_bps, rtt_s], ...],
                                   "rtt_intercept_s", "rtt_per_inverse_bandwidth", "at_bandwidth_bps",
                                   "lower_rtt_wins"}],
                   "target": [{"protocol", "rtt_s", "needed_bandwidth_bps", "floor", "floor_s"}]}],
     "least_threads": [{"protocol", "rtt_s", "threads", "needed_bandwidth_bps"}],
     "points": {"columns": [...], "rows": [[...]]}}

``latency_s = compute_s + bits / bandwidth_bps + rtt_factor * rtt_s`` per protocol and machine.
The CSV is ``points``: one row per (threads, bandwidth, RTT) (:func:`picost.analysis.plan.point_table`).
"""

from __future__ import annotations

import string
from typing import Any, Sequence

from picost.analysis.plan import Plan, point_table
from picost.cost.network import _human_rate
from picost.report.render import Column, csv_pieces, dump_markdown, human_seconds, human_times

SCHEMA = "picost.plan/1"
MAP_ROWS = 25
"""Most RTT rows of a winner map in the terminal (evenly chosen; every row in markdown)."""
TABLE_STEPS = 6
"""Half the most RTTs of the terminal's tables of target answers."""


def letters(plan: Plan) -> list[str]:
    """One letter per protocol on the winner map (A, B, ...; then a, b, ...)."""
    return list((string.ascii_uppercase + string.ascii_lowercase)[:len(plan.protocols)])


def rate(bps: float) -> str:
    return _human_rate(bps)


def _time(s: float | None) -> str:
    return "-" if s is None else human_seconds(s)


def json_obj(plan: Plan) -> dict[str, Any]:
    """The JSON of a plan (see the module)."""
    header, rows = point_table(plan)
    machines = []
    for m, machine in enumerate(plan.machines):
        machines.append({
            "machine": machine.as_dict(),
            "forms": {f.protocol: {"compute_s": f.compute_s, "bits": f.bits, "rtt_factor": f.rtt_factor}
                      for f in plan.forms[m]},
            "regions": {plan.protocols[r.protocol]: [list(v) for v in r.vertices] for r in plan.regions[m]},
            "boundaries": [{"between": [plan.protocols[b.first], plan.protocols[b.second]],
                            "ends": [list(e) for e in b.ends], "rtt_intercept_s": b.rtt_intercept_s,
                            "rtt_per_inverse_bandwidth": b.rtt_per_inverse_bandwidth,
                            "at_bandwidth_bps": b.at_bandwidth_bps,
                            "lower_rtt_wins": plan.protocols[b.lower_rtt_wins]} for b in plan.boundaries[m]],
            "target": [{"protocol": plan.protocols[a.protocol], "rtt_s": a.rtt_s,
                        "needed_bandwidth_bps": a.needed_bandwidth_bps, "floor": a.floor, "floor_s": a.floor_s}
                       for a in plan.targets if a.machine == m]})
    return {"schema": SCHEMA, "spec": plan.spec_name, "context": plan.context, "objective": plan.objective,
            "new_tokens": plan.new_tokens, "protocols": list(plan.protocols),
            "bandwidth_bps": plan.bandwidth_bps.tolist(), "rtt_s": plan.rtt_s.tolist(), "target_s": plan.target_s,
            "machines": machines,
            "least_threads": [{"protocol": plan.protocols[t.protocol], "rtt_s": t.rtt_s, "threads": t.threads,
                               "needed_bandwidth_bps": t.needed_bandwidth_bps} for t in plan.least_threads],
            "points": {"columns": list(header), "rows": [list(r) for r in rows]}}


def objective_text(plan: Plan) -> str:
    what = {"prefill": "one forward pass (the prefill)", "ttft": "time to first token (the prefill)",
            "per-token": "mean per-token latency (one decode step)", "total": "total latency (prefill + every step)"}
    gen = "" if plan.new_tokens is None else f", a generation of {plan.new_tokens} new tokens"
    return f"{plan.spec_name} at T = {plan.context}{gen}: {what[plan.objective]}"


def form_lines(plan: Plan, m: int) -> list[str]:
    """Each protocol's latency form on machine ``m``, in words and units."""
    out = [f"compute on {plan.machines[m].summary()}",
           "latency = compute + bits / bandwidth + k x RTT (the estimate's model, docs/latency-model.md):"]
    width = max(len(p) for p in plan.protocols)
    for letter, f in zip(letters(plan), plan.forms[m]):
        out.append(f"  {letter} {f.protocol:<{width}} = {human_seconds(f.compute_s)} + {f.bits / 1e9:.4g} Gbit "
                   f"/ bandwidth + {f.rtt_factor:,.6g} x RTT")
    return out


def _spread(n: int, most: int) -> list[int]:
    """At most ``most`` indices of ``range(n)``, evenly spread, both ends included."""
    if n <= most:
        return list(range(n))
    return sorted({round(i * (n - 1) / (most - 1)) for i in range(most)})


def _short_rate(bps: float) -> str:
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if bps >= scale:
            return f"{bps / scale:.3g}{unit}"
    return f"{bps:.3g}"


def map_lines(plan: Plan, m: int, most_rows: int | None, most_columns: int | None) -> list[str]:
    """The winner map of machine ``m`` as letters: bandwidth across (low to high), RTT down
    (high at the top, as in the plot); at most ``most_rows`` x ``most_columns`` evenly chosen
    points (``None``: every point)."""
    best, _, _ = plan.winners()
    nb, nr = len(plan.bandwidth_bps), len(plan.rtt_s)
    cols = _spread(nb, most_columns or nb)
    rows = _spread(nr, most_rows or nr)[::-1]
    marks = letters(plan)
    labels = [human_seconds(plan.rtt_s[j]) for j in rows]
    pad = max(len(s) for s in labels) + 1
    axis = [" "] * (len(cols) + 8)
    low, high = plan.bandwidth_bps[0], plan.bandwidth_bps[-1]
    for k in range(0, 16):  # a label over the column nearest each power of ten inside the range
        v = 10.0 ** k
        if low <= v * 1.0001 and v <= high * 1.0001:
            at = min(range(len(cols)), key=lambda c: abs(_log(plan.bandwidth_bps[cols[c]]) - k))
            text = _short_rate(v)
            if all(ch == " " for ch in axis[max(0, at - 1):at + len(text) + 1]):
                axis[at:at + len(text)] = list(text)
    out = [f"{'':>{pad}} " + "".join(axis).rstrip()]
    out += [f"{label:>{pad}} " + "".join(marks[best[m, i, j]] for i in cols) for label, j in zip(labels, rows)]
    return out


def map_legend(plan: Plan, m: int, most_rows: int | None, most_columns: int | None) -> str:
    """What the letters and axes of :func:`map_lines` are."""
    nb, nr = len(plan.bandwidth_bps), len(plan.rtt_s)
    cols, rows = len(_spread(nb, most_columns or nb)), len(_spread(nr, most_rows or nr))
    shown = ("" if cols == nb and rows == nr else
             f"; {cols} of {nb} bandwidths and {rows} of {nr} RTTs shown (every point: -f md or -f csv)")
    threads = f" with {plan.machines[m].threads_per_party:g} cores per party" if plan.threads_axis else ""
    return (f"fastest protocol{threads}: bandwidth across ({rate(plan.bandwidth_bps[0])} .. "
            f"{rate(plan.bandwidth_bps[-1])}), RTT down ({human_seconds(plan.rtt_s[-1])} .. "
            f"{human_seconds(plan.rtt_s[0])}); "
            + ", ".join(f"{a} = {p}" for a, p in zip(letters(plan), plan.protocols)) + shown)


def _log(x: float) -> float:
    import math

    return math.log10(x)


def boundary_lines(plan: Plan, m: int) -> list[str]:
    """The exact boundaries of machine ``m``'s winner map, one line each."""
    found = plan.boundaries[m]
    if not found:
        winners = sorted({plan.protocols[r.protocol] for r in plan.regions[m]})
        return [f"no boundary: {' and '.join(winners)} wins everywhere in the range"]
    out = ["boundaries (exact: where the two latencies are equal), from end to end:"]
    for b in found:
        p, q = plan.protocols[b.first], plan.protocols[b.second]
        if b.rtt_intercept_s is not None:
            slope = b.rtt_per_inverse_bandwidth
            line = (f"RTT = {_signed_time(b.rtt_intercept_s)} {'+' if slope >= 0 else '-'} "
                    f"{abs(slope) / 1e6:.4g} Mbit / bandwidth")
            side = f"{plan.protocols[b.lower_rtt_wins]} wins below (smaller RTT)"
        else:
            line = f"bandwidth = {rate(b.at_bandwidth_bps)}" if b.at_bandwidth_bps else "a line outside the range"
            side = f"{plan.protocols[b.lower_rtt_wins]} wins above (more bandwidth)"
        ends = " to ".join(f"({rate(bw)}, {human_seconds(r)})" for bw, r in b.ends)
        out.append(f"  {p} | {q}: {line}; {side}; {ends}")
    return out


def _signed_time(s: float) -> str:
    return ("-" if s < 0 else "") + human_seconds(abs(s))


def _target_cell(answer: Any) -> str:
    if answer.needed_bandwidth_bps is None:
        return f"never ({answer.floor.split()[0]})"
    return "any" if answer.needed_bandwidth_bps == 0 else rate(answer.needed_bandwidth_bps)


def target_table(plan: Plan, most: int | None) -> tuple[list[str], list[list[str]]]:
    """Header and rows: per (threads,) RTT, each protocol's least bandwidth meeting the target."""
    by_key = {(a.machine, a.protocol, a.rtt_s): a for a in plan.targets}
    header = (["threads"] if plan.threads_axis else []) + ["RTT"] + list(plan.protocols)
    rows = []
    for m, machine in enumerate(plan.machines):
        for j in _spread(len(plan.rtt_s), most or len(plan.rtt_s)):
            r = float(plan.rtt_s[j])
            lead = [f"{machine.threads_per_party:g}"] if plan.threads_axis else []
            rows.append(lead + [human_seconds(r)] + [_target_cell(by_key[(m, p, r)]) for p in range(len(plan.protocols))])
    return header, rows


def least_threads_table(plan: Plan, most: int | None) -> tuple[list[str], list[list[str]]]:
    """Header and rows: per RTT, each protocol's fewest cores meeting the target within the range."""
    by_key = {(t.protocol, t.rtt_s): t for t in plan.least_threads}
    rows = []
    for j in _spread(len(plan.rtt_s), most or len(plan.rtt_s)):
        r = float(plan.rtt_s[j])
        cells = []
        for p in range(len(plan.protocols)):
            t = by_key[(p, r)]
            cells.append("none" if t.threads is None else f"{t.threads:g} ({rate(t.needed_bandwidth_bps)})"
                         if t.needed_bandwidth_bps else f"{t.threads:g} (any)")
        rows.append([human_seconds(r)] + cells)
    return ["RTT", *plan.protocols], rows


def points_rows(plan: Plan, most: int | None) -> tuple[list[str], list[list[str]]]:
    """Header and display rows of the grid points (at most ``most`` values per axis)."""
    lat = plan.latency_s()
    best, _, margin = plan.winners(lat)
    header = (["threads"] if plan.threads_axis else []) + ["bandwidth", "RTT", *plan.protocols, "winner", "margin"]
    rows = []
    for m, machine in enumerate(plan.machines):
        for i in _spread(len(plan.bandwidth_bps), most or len(plan.bandwidth_bps)):
            for j in _spread(len(plan.rtt_s), most or len(plan.rtt_s)):
                lead = [f"{machine.threads_per_party:g}"] if plan.threads_axis else []
                rows.append(lead + [rate(plan.bandwidth_bps[i]), human_seconds(plan.rtt_s[j])]
                            + [human_seconds(v) for v in lat[m, :, i, j]]
                            + [plan.protocols[best[m, i, j]], human_times(float(margin[m, i, j]))])
    return header, rows


def preset_rows(plan: Plan) -> tuple[list[str], list[list[str]]]:
    """Header and display rows: each protocol's latency at the network presets inside the plan's
    ranges (the papers' settings), the winner and its margin."""
    header = (["threads"] if plan.threads_axis else []) + ["network", *plan.protocols, "winner", "margin"]
    rows = []
    for name, network in plan.presets_inside().items():
        lat = plan.latency_at(network.bandwidth_bps, network.rtt_s)
        for m, machine in enumerate(plan.machines):
            order = sorted(range(len(plan.protocols)), key=lambda p: lat[m][p])
            margin = lat[m][order[1]] / lat[m][order[0]] if len(order) > 1 else 1.0
            lead = [f"{machine.threads_per_party:g}"] if plan.threads_axis else []
            rows.append(lead + [name] + [human_seconds(v) for v in lat[m]] + [plan.protocols[order[0]],
                                                                               human_times(margin)])
    return header, rows


def target_lines(plan: Plan) -> list[str]:
    if plan.target_s is None:
        return []
    return [f"target {human_seconds(plan.target_s)}: the least bandwidth at each RTT at which each protocol meets "
            "it, or never, with the floor that stops it (compute alone, or compute + rounds x RTT)"]


def csv_text(plan: Plan) -> Any:
    """The CSV, in pieces (one row per grid point)."""
    header, rows = point_table(plan)
    return csv_pieces(header, rows)


def markdown(plan: Plan) -> str:
    """Every part, every point."""
    out = [f"## Plan: {objective_text(plan)}", ""]
    right = lambda header: [h not in ("threads", "winner") for h in header]  # noqa: E731
    for m, machine in enumerate(plan.machines):
        if plan.threads_axis:
            out += [f"### {machine.threads_per_party:g} cores per party", ""]
        out += [f"- {line.strip()}" for line in form_lines(plan, m)[:2]]
        out += [f"  - `{line.strip()}`" for line in form_lines(plan, m)[2:]]
        out += ["", map_legend(plan, m, None, None) + ":", "", "```", *map_lines(plan, m, None, None), "```", ""]
        found = boundary_lines(plan, m)
        out += [found[0][0].upper() + found[0][1:], ""] + [f"- {line.strip()}" for line in found[1:]] + [""]
    header, rows = points_rows(plan, None)
    out += ["### Every point", "", dump_markdown(header, rows, right(header))]
    if plan.target_s is not None:
        out += [f"### {target_lines(plan)[0]}", ""]
        header, rows = target_table(plan, None)
        out += [dump_markdown(header, rows, right(header))]
        if plan.least_threads:
            header, rows = least_threads_table(plan, None)
            out += ["Fewest cores per party (of those planned) meeting the target at the top of the bandwidth range:",
                    "", dump_markdown(header, rows, right(header))]
    return "\n".join(out).rstrip() + "\n"


def terminal(plan: Plan, width: int) -> Any:
    """The terminal view: per machine the forms, the winner map (fit to ``width``) and the
    boundaries; a table of evenly chosen points; with a target, its answers at evenly chosen RTTs."""
    from rich.console import Group

    from picost.report.render import Paragraphs, rich_table

    parts: list[Any] = [Paragraphs([objective_text(plan)])]
    for m in range(len(plan.machines)):
        parts.append(Paragraphs(form_lines(plan, m)))
        most_columns = max(10, width - 12)
        parts.append(Paragraphs([map_legend(plan, m, MAP_ROWS, most_columns) + ":"]))
        parts.append(_Verbatim(map_lines(plan, m, MAP_ROWS, most_columns)))
        parts.append(Paragraphs(boundary_lines(plan, m)))
    header, rows = preset_rows(plan)
    if rows:
        parts.append(rich_table("latency at the network presets inside the ranges (`picost networks`; every grid "
                                "point: -f csv)", _columns(header, plan), rows, hint="every column: -f md"))
    if plan.target_s is not None:
        parts.append(Paragraphs(target_lines(plan)))
        header, rows = target_table(plan, 2 * TABLE_STEPS)
        parts.append(rich_table("least bandwidth to meet the target (every RTT: -f csv)", _columns(header, plan), rows,
                                hint="every column: -f md"))
        if plan.least_threads:
            header, rows = least_threads_table(plan, 2 * TABLE_STEPS)
            parts.append(rich_table("fewest cores per party meeting the target within the bandwidth range",
                                    _columns(header, plan), rows, hint="every column: -f md"))
    return Group(*parts)


def _columns(header: Sequence[str], plan: Plan) -> list[Column]:
    """Terminal columns: protocols headed by their map letters when short of room, the last
    protocols and the margin left out first."""
    marks = dict(zip(plan.protocols, letters(plan)))
    n = len(plan.protocols)
    out = []
    for h in header:
        if h in marks:
            k = plan.protocols.index(h)
            out.append(Column(h, numeric=True, short_header=marks[h], drop=10 + k))
        else:
            out.append(Column(h, numeric=h not in ("network", "winner"), drop={"margin": 10 + n}.get(h, 0)))
    return out


class _Verbatim:
    """Lines printed as they are (no wrapping: the map is laid out for the width)."""

    def __init__(self, lines: Sequence[str]) -> None:
        self.lines = list(lines)

    def __rich_console__(self, console: Any, options: Any) -> Any:
        from rich.text import Text

        yield Text("\n".join(self.lines), no_wrap=True)

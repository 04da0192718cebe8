"""CLI commands for what-if analysis: ``aero``, ``symbolic``, ``check`` (and, on the estimate,
``sweep``, ``compare``, ``report``). A thin face: each command calls library functions and renders.

Registered on the main typer app by :func:`register` (called from :mod:`picost.cli.main`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional, Sequence

import typer

from picost.errors import UserError

FMT_HELP = "Output: table | json | csv | md."
OPTION_HELP = ("A protocol table option, NAME=VALUE (every table) or TABLE:NAME=VALUE; repeatable. "
               "`picost protocols show P` lists a table's options.")
MACHINE_HELP = ("Where compute runs: a preset (`picost machines`) or a profile file (.yaml, from `picost calibrate "
                "--engine`); default: the tables' reference machine (2 cores, all parties on it).")
THREADS_HELP = "Cores per party (one machine per party unless --machine says otherwise)."
COMPUTE_HELP = "model (default) | none: leave compute out (communication and round delays only)."


def machine_option() -> Any:
    return typer.Option(None, "--machine", help=MACHINE_HELP)


def threads_option() -> Any:
    return typer.Option(None, "--threads", help=THREADS_HELP)


def compute_option() -> Any:
    return typer.Option(None, "--compute", help=COMPUTE_HELP)


def _out(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _check_format(fmt: str) -> str:
    from picost.report.render import FORMATS

    if fmt not in FORMATS:
        raise UserError(f"unknown value '{fmt}' for --format; choose from {', '.join(FORMATS)}", field="--format")
    return fmt


def emit_table(fmt: str, title: str, header: Sequence[Any], rows: Sequence[Sequence[Any]],
               json_obj: Any, align_right: Sequence[bool] | None = None, hint: str = "") -> None:
    """Print one table as a rich table, CSV, markdown, or ``json_obj`` as JSON. ``header`` holds
    names or :class:`~picost.report.render.Column` s (how the terminal table fits its width)."""
    from picost.report import render

    names = [getattr(h, "header", h) for h in header]
    if fmt == "json":
        _out(render.dump_json(json_obj))
    elif fmt == "csv":
        _out(render.dump_csv(names, rows))
    elif fmt == "md":
        _out(f"**{title}**\n\n" + render.dump_markdown(names, rows, align_right) + "\n")
    else:
        _print(render.rich_table(title, header, rows, align_right, hint=hint))


def _print(renderable: Any) -> None:
    from rich.console import Console

    Console().print(renderable)


def _out_wrapped(lines: Sequence[str]) -> None:
    """Plain text lines, wrapped on spaces to the terminal's width."""
    from picost.report.render import wrap_lines

    if lines:
        _out(wrap_lines(lines))


def aero(
    spec: str = typer.Argument(..., help="Baseline spec (file or shipped name), e.g. gpt2."),
    context: Optional[int] = typer.Option(None, "--context", "-T", help="Tokens T (default: the spec's)."),
    prune: Optional[int] = typer.Option(None, "--prune", help="How many of the deepest FFNs to prune "
                                        "(default: half of the layers)."),
    temperature: bool = typer.Option(False, "--temperature", help="Keep entropy regularization's learnable "
                                     "temperature at inference and cost it."),
    protocol: Optional[str] = typer.Option(None, "--protocol", "-p", help="Protocol table: adds communication "
                                           "and latency columns."),
    network: Optional[str] = typer.Option(None, "--network", "-n", help="Network preset (default wan)."),
    bandwidth: Optional[str] = typer.Option(None, "--bandwidth", help="Bandwidth override, e.g. 100Mbps."),
    rtt: Optional[str] = typer.Option(None, "--rtt", help="Round-trip time override, e.g. 80ms."),
    option: Optional[list[str]] = typer.Option(None, "--option", help=OPTION_HELP),
    machine: Optional[str] = machine_option(),
    threads: Optional[int] = threads_option(),
    compute: Optional[str] = compute_option(),
    fmt: str = typer.Option("table", "--format", "-f", help=FMT_HELP),
) -> None:
    """AERO's steps applied to SPEC as spec transforms: the ablation table of a PI paper.

    Entropy regularization changes training only (no inference op), so it appears only with
    --temperature, which keeps its learnable temperature (one server-held scaling per score).
    """
    from picost.analysis.ablation import ablation, format_counts
    from picost.model.aero_transforms import ENTROPY_REG_NOTE, aero_steps
    from picost.report.render import Column, human_bytes, human_count, human_seconds
    from picost.model.load import load_spec

    _check_format(fmt)
    steps = aero_steps(load_spec(spec), prune=prune, keep_temperature=temperature)
    cost, where = None, ""
    if protocol is not None:
        cost, where = _cost_fn(protocol, network, bandwidth, rtt, option, (machine, threads, compute))
    rows = ablation(steps, context, cost)
    ctx = context or steps[0].spec.context_length
    human = fmt in ("table", "md")
    sep = "\n" if fmt == "table" else "; "
    header = ["step", "nonlinear ops", "FFN FLOPs", "attn FLOPs", "total FLOPs", "FLOPs x"]
    if cost is not None:
        header += ["comm", "comm x", "latency", "latency x"]
    cells = []
    for r in rows:
        cell = [r.label, format_counts(r.nonlinear, sep=sep)]
        cell += [human_count(v) if human else v for v in (r.ffn_flops, r.attention_flops, r.total_flops)]
        cell.append(_times(r.savings["total_flops"]) if human else r.savings["total_flops"])
        if cost is not None:
            cell += [human_bytes(r.comm_bytes) if human else r.comm_bytes,
                     _times(r.savings["comm_bytes"]) if human else r.savings["comm_bytes"],
                     human_seconds(r.latency_s) if human else r.latency_s,
                     _times(r.savings["latency_s"]) if human else r.savings["latency_s"]]
        cells.append(tuple(cell))
    obj = {"schema": "picost.aero/1", "spec": steps[0].spec.name, "context": ctx, "note": ENTROPY_REG_NOTE,
           "costed_under": where or None,
           "steps": [{"label": r.label, "action": r.action, "spec": r.spec_name,
                      "nonlinear": {k: [{"instances": n, "shape": s} for n, s in v] for k, v in r.nonlinear.items()},
                      "ffn_flops": r.ffn_flops, "attention_flops": r.attention_flops, "total_flops": r.total_flops,
                      "comm_bytes": r.comm_bytes, "latency_s": r.latency_s,
                      "savings": {k: _json_ratio(v) for k, v in r.savings.items()}} for r in rows]}
    # narrow terminals: with costs, the FLOPs columns go first and the nonlinear ops move below the table
    drop = ({"nonlinear ops": 6, "attn FLOPs": 5, "FFN FLOPs": 4, "FLOPs x": 3, "comm x": 2} if cost is not None
            else {"attn FLOPs": 5, "FFN FLOPs": 4, "nonlinear ops": 3})
    columns = [Column("step", text=True, min_width=16),
               Column("nonlinear ops", text=True, spill=True, min_width=24, drop=drop["nonlinear ops"])]
    columns += [Column(h, numeric=True, drop=drop.get(h, 0)) for h in header[2:]]
    if fmt == "csv":  # the JSON's names, each with its unit (savings: baseline / this step)
        names = ["step", "nonlinear_ops", "ffn_flops", "attention_flops", "total_flops", "total_flops_savings",
                 "comm_bytes", "comm_bytes_savings", "latency_s", "latency_s_savings"]
        columns = [Column(n, text=i < 2, numeric=i >= 2) for i, n in enumerate(names[:len(header)])]
    emit_table(fmt, f"AERO ablation of {steps[0].spec.name} at T={ctx}{where}", columns, cells, obj,
               [False, False] + [True] * (len(header) - 2), hint="every column: -f csv or -f md")
    if human:
        _out_wrapped([f"note: {ENTROPY_REG_NOTE}."])


def _cost_fn(protocol: str, network: str | None, bandwidth: str | None, rtt: str | None,
             option: Sequence[str] | None, machine: tuple = (None, None, None)) -> tuple[Any, str]:
    """A cost function (lowered model -> (comm bytes, latency s)) and a phrase saying where."""
    from picost.analysis.ablation import estimate_cost

    link = _one_network(network, bandwidth, rtt)
    table = _one_table(protocol, option, machine)
    return estimate_cost(table, link), f" under {table.label} over {link.name} ({link.summary()})"


def symbolic(
    spec: str = typer.Argument(..., help="Spec file or shipped spec name."),
    symbols: str = typer.Option("T", "--symbols", help="Comma-separated symbols among T, L, d."),
    protocol: Optional[str] = typer.Option(None, "--protocol", "-p", help="Protocol table: adds communication "
                                           "and latency per class, and their crossovers."),
    network: Optional[str] = typer.Option(None, "--network", "-n", help="Network preset (default wan)."),
    bandwidth: Optional[str] = typer.Option(None, "--bandwidth", help="Bandwidth override, e.g. 100Mbps."),
    rtt: Optional[str] = typer.Option(None, "--rtt", help="Round-trip time override, e.g. 80ms."),
    option: Optional[list[str]] = typer.Option(None, "--option", help=OPTION_HELP),
    machine: Optional[str] = machine_option(),
    threads: Optional[int] = threads_option(),
    compute: Optional[str] = compute_option(),
    allow_uncosted: bool = typer.Option(False, "--allow-uncosted", help="Leave out ops the table cannot cost."),
    fmt: str = typer.Option("table", "--format", "-f", help="Output: table | json."),
    new_tokens: bool = typer.Option(False, "--new-tokens", help="With --protocol: also the closed forms of a whole "
                                    "generation (prefill of T tokens + N decode steps) in T and N, per op class."),
) -> None:
    """Closed forms (sympy) of FLOPs and, with --protocol, of communication, rounds and latency
    per op class, and crossover points (with --new-tokens: of a generation, in T and N).

    The forms are in T (and L, d). The crossovers: attention vs FFN FLOPs (under several counting
    conventions, AERO's T < 8/3 d among them), softmax communication vs everything else, and the
    T where latency turns from round-bound to bandwidth-bound."""
    import sympy

    from picost.analysis.closed_forms import class_forms
    from picost.analysis.crossovers import aero_claim_condition, cost_crossovers, flop_conventions
    from picost.model.flops import symbolic_flops
    from picost.report.render import dump_json
    from picost.model.load import load_spec

    if fmt not in ("table", "json"):
        raise UserError(f"unknown value '{fmt}' for --format; choose from table, json", field="--format")
    model = load_spec(spec)
    chosen = [s.strip() for s in symbols.split(",") if s.strip()]
    forms = symbolic_flops(model, chosen)
    conventions = flop_conventions(model, symbolic_width=True)
    at_d = {c.name: _at_width(c.crossover, model.d_model) for c in conventions}
    obj: dict[str, Any] = {
        "schema": "picost.symbolic/1", "spec": model.name, "symbols": chosen,
        "flops": {k: str(v) for k, v in forms.items()},
        "attention_vs_ffn": [{"convention": c.name, "description": c.description, "attention": str(c.attention),
                              "ffn": str(c.ffn), "crossover": str(c.crossover),
                              "crossover_at_spec_d": at_d[c.name]} for c in conventions],
        "aero_claim": aero_claim_condition()}
    lines = [f"FLOPs of {model.name} ({', '.join(chosen)} symbolic):"]
    lines += [f"  {group:>20} = {expr}" for group, expr in forms.items()]
    lines.append("\nAttention FLOPs overtake FFN FLOPs at (d symbolic; value at the spec's d):")
    lines += [f"  {c.name:>12}: T* = {c.crossover}  (= {at_d[c.name]} at d = {model.d_model})  [{c.description}]"
              for c in conventions]
    lines.append(f"\nAERO's 'FFN FLOPs dominate when T < 8/3 d': {aero_claim_condition()}.")
    if protocol is not None:
        link = _one_network(network, bandwidth, rtt)
        table = _one_table(protocol, option, (machine, threads, compute))
        cf = class_forms(model, table, allow_uncosted, chosen)
        per_class = {c: {"flops": f["flops"], "comm_bytes": f["comm_bytes"], "rounds": f["rounds"],
                         "latency_s": sympy.N(cf.latency(link, [c]), 6)} for c, f in cf.forms.items()}
        totals = {"flops": cf.total("flops"), "comm_bytes": cf.total("comm_bytes"), "rounds": cf.total("rounds"),
                  "latency_s": sympy.N(cf.latency(link), 6)}
        obj.update({"protocol": table.name, "options": dict(table.chosen), "network": link.as_dict(),
                    "uncosted": list(cf.uncosted),
                    "classes": {c: {k: str(v) for k, v in f.items()} for c, f in per_class.items()},
                    "total": {k: str(v) for k, v in totals.items()}})
        lines.append(f"\nUnder {table.label} over {link.name} ({link.summary()}); bytes, rounds, seconds:")
        for c, f in list(per_class.items()) + [("total", totals)]:
            lines += [f"  {c:>16} flops      = {f['flops']}",
                      f"  {'':>16} comm_bytes = {_readable(f['comm_bytes'])}",
                      f"  {'':>16} rounds     = {_readable(f['rounds'])}",
                      f"  {'':>16} latency_s  = {_readable(f['latency_s'])}"]
        if cf.uncosted:
            lines.append(f"  uncosted (left out): {', '.join(cf.uncosted)}")
        if "T" in chosen:
            t_only = cf if chosen == ["T"] else class_forms(model, table, allow_uncosted, ["T"])
            labels = {"softmax_comm_vs_rest": "softmax communication overtakes all other classes together",
                      "bandwidth_vs_rounds": "latency turns from round-bound to bandwidth-bound"}
            found = cost_crossovers(t_only, link)
            obj["cost_crossovers"] = {k: {"exact": None if x.exact is None else str(x.exact),
                                          "first_T": x.first_t, "always": x.always} for k, x in found.items()}
            lines.append("")
            for k, x in found.items():
                lines.append(f"  {labels[k]}: {_describe_crossover(x)}")
    if new_tokens:
        if protocol is None:
            raise UserError("--new-tokens needs --protocol (the forms of a generation are costs)", field="--new-tokens")
        obj["generation"] = _generation_forms(model, table, link, allow_uncosted, lines)
    searches = _searches_in(obj)
    if searches:
        obj["searches"] = {s.name: s.as_dict() for s in searches}
        lines += ["", "where (formulas in --format json, key 'searches'):"] + [f"  {s.describe()}" for s in searches]
    if fmt == "json":
        _out(dump_json(obj))
    else:
        _out_wrapped(lines)


def _generation_forms(model: Any, table: Any, link: Any, allow_uncosted: bool, lines: list[str]) -> dict[str, Any]:
    """The closed forms of a generation (picost.analysis.generation.generation_forms) per class and
    in total, with latency over ``link``; appends their text to ``lines``, returns their JSON."""
    import sympy

    from picost.analysis.generation import generation_forms

    g = generation_forms(model, table, allow_uncosted)
    round_s = sympy.nsimplify(link.round_s) * g["delays_per_round"]
    bandwidth = sympy.nsimplify(link.bandwidth_bps) * g["transfer_links"]
    rows = dict(g["forms"])
    rows["total"] = {f: sympy.Add(*(c[f] for c in g["forms"].values())) for f in ("flops", "comm_bytes", "rounds",
                                                                                   "compute_s")}
    lines.append(f"\nGeneration (prefill of T tokens, then N decode steps) under {table.label}; in T and N:")
    out = {}
    for c, f in rows.items():
        latency = f["compute_s"] + f["comm_bytes"] * 8 / bandwidth + f["rounds"] * round_s
        if not latency.has(sympy.Sum):  # sympy cannot evalf a Sum with symbolic bounds
            latency = sympy.N(latency, 6)
        out[c] = {k: str(f[k]) for k in ("flops", "comm_bytes", "rounds")} | {"latency_s": str(latency)}
        lines += [f"  {c:>16} flops      = {f['flops']}",
                  f"  {'':>16} comm_bytes = {_readable(f['comm_bytes'])}",
                  f"  {'':>16} rounds     = {_readable(f['rounds'])}",
                  f"  {'':>16} latency_s  = {_readable(latency)}"]
    return {"T": "prompt tokens", "N": "decode steps", "classes": out}


def _searches_in(obj: Any) -> list[Any]:
    """The table searches (``pick_min_N``, :class:`picost.cost.formula.PickSearch`) named in any
    form of ``obj`` (the JSON of ``picost symbolic``), in order of their numbers."""
    import re

    from picost.cost.formula import PICK_MIN_SEARCHES

    used = set(re.findall(r"\bpick_min_\d+\b", str(obj)))
    return [s for name, s in PICK_MIN_SEARCHES.items() if name in used]


def _readable(expr: Any) -> str:
    """``ceiling(log(T)/log(2))`` -> ``ceiling(log2(T))`` for display."""
    from sympy.codegen.rewriting import log2_opt, optimize

    return str(optimize(expr, [log2_opt]))


def _describe_crossover(x: Any) -> str:
    if x.always == "a":
        return f"already at T = {x.first_t}"
    if x.always == "b":
        return "never (up to T = 2^40)"
    exact = "" if x.exact is None else f" (exact root T = {x.exact})"
    first = "" if x.first_t is None else f"first at T = {x.first_t}"
    return (first + exact).strip() or "not found"


def _split_list(text: str | None, option: str = "--network") -> list[str]:
    """Comma-separated names; an empty item (``a,,b``, ``a,``) is an error, never skipped."""
    if text is None or not text.strip():
        return []
    items = [p.strip() for p in text.split(",")]
    if "" in items:
        raise UserError(f"empty item in {option} '{text}' (two commas in a row, or one at an end)", field=option)
    return items


def _networks(names: str | None, bandwidth: str | None, rtt: str | None, default: str = "lan,wan") -> list[Any]:
    """Networks from ``--network a,b`` (default ``default``), each with ``--bandwidth``/``--rtt``
    overrides; with no ``--network`` but both overrides, one custom network."""
    from picost.cost.network import get_network

    if names is None and bandwidth is not None and rtt is not None:
        return [get_network(None, bandwidth=bandwidth, rtt=rtt)]
    chosen = _split_list(names if names is not None else default)
    if not chosen:
        raise UserError("give at least one network", field="--network")
    return [get_network(n, bandwidth=bandwidth, rtt=rtt) for n in chosen]


def _protocol_list(text: str) -> list[str]:
    """``-p a,b``: tables; a hybrid (``linear=bumblebee,nonlinear=sigma``) is one item, and with
    others the items are separated by ``;`` (``crypten;linear=bumblebee,nonlinear=sigma``)."""
    if ";" in text:
        return [p.strip() for p in text.split(";") if p.strip()]
    from picost.cost.hybrid import is_hybrid_text

    return [text.strip()] if is_hybrid_text(text) else _split_list(text, "--protocol")


def _tables(protocols: str, option: Sequence[str] | None, machine: tuple = (None, None, None)) -> list[Any]:
    """The tables of ``-p``, with their ``--option`` values, and compute scaled to ``machine``
    (``(--machine, --threads, --compute)``)."""
    from picost.analysis.estimate import with_machine
    from picost.cost.table_options import load_tables

    names = _protocol_list(protocols)
    if not names:
        raise UserError("give at least one protocol", field="--protocol")
    return [with_machine(t, *machine) for t in load_tables(names, option)]


def _one_network(names: str | None, bandwidth: str | None, rtt: str | None) -> Any:
    """The single network of a command that takes one (default wan)."""
    found = _networks(names, bandwidth, rtt, default="wan")
    if len(found) != 1:
        raise UserError(f"this command takes one network (got {len(found)})", field="--network")
    return found[0]


def _one_table(protocols: str, option: Sequence[str] | None, machine: tuple = (None, None, None)) -> Any:
    """The single protocol table of a command that takes one."""
    found = _tables(protocols, option, machine)
    if len(found) != 1:
        raise UserError(f"this command takes one protocol (got {len(found)})", field="--protocol")
    return found[0]


def sweep(
    spec: str = typer.Argument(..., help="Spec file or shipped spec name."),
    context: str = typer.Option("64,128,...,32768", "--context", "-T",
                                help="Contexts: 64,128,...,32768 (doubling), 64,128,256, or 64:32768:64."),
    protocol: str = typer.Option(..., "--protocol", "-p", help="Protocol table(s), comma-separated."),
    network: Optional[str] = typer.Option(None, "--network", "-n", help="Network preset(s), comma-separated "
                                          "(default lan,wan)."),
    bandwidth: Optional[str] = typer.Option(None, "--bandwidth", help="Bandwidth override, e.g. 100Mbps."),
    rtt: Optional[str] = typer.Option(None, "--rtt", help="Round-trip time override, e.g. 80ms."),
    option: Optional[list[str]] = typer.Option(None, "--option", help=OPTION_HELP),
    machine: Optional[str] = machine_option(),
    threads: Optional[int] = threads_option(),
    compute: Optional[str] = compute_option(),
    share: str = typer.Option("latency", "--share", help="Class shares of: latency | comm."),
    allow_uncosted: bool = typer.Option(False, "--allow-uncosted", help="Leave out ops the table cannot cost."),
    new_tokens: Optional[str] = typer.Option(None, "--new-tokens", "-N", help="Generation: N new tokens after "
                                             "each T-token prompt (1,8,64 sweeps N too): time to first token, mean "
                                             "per-token latency and totals of the prefill + N decode steps."),
    fmt: str = typer.Option("table", "--format", "-f", help=FMT_HELP),
) -> None:
    """Costs over many contexts (and protocols, networks; with --new-tokens, numbers of generated
    tokens): one row per point with totals and each op class's share.

    Vectorized: lowered once per protocol with a symbolic T (and the decode steps once over every
    cache length the points visit). In a narrow terminal the table keeps the totals and the
    classes with the largest shares; -f csv gives every column."""
    from picost.analysis import sweep as sweeps
    from picost.model.load import load_spec
    from picost.report import sweep_output

    _check_format(fmt)
    if share not in ("latency", "comm"):
        raise UserError(f"unknown value '{share}' for --share; choose from latency, comm", field="--share")
    contexts = sweeps.parse_contexts(context)
    counts = sweeps.parse_new_tokens(new_tokens) if new_tokens is not None else None
    model, tables = load_spec(spec), _tables(protocol, option, (machine, threads, compute))
    links = _networks(network, bandwidth, rtt)
    if counts is None:
        result = sweeps.sweep(model, contexts, tables, links, allow_uncosted)
    else:
        from picost.analysis.generation_sweep import generation_sweep

        result = generation_sweep(model, contexts, counts, tables, links, allow_uncosted)
    field = "latency_s" if share == "latency" else "comm_bytes"
    shares = {c: result.share(c, field) for c in result.classes}
    if fmt == "json":
        emit_table(fmt, "", (), (), sweep_output.json_obj(result, field, shares))
        return
    header = sweep_output.csv_header(result, field) if fmt == "csv" else sweep_output.header(result)
    rows = sweep_output.rows(result, shares, human=fmt in ("table", "md"))
    if fmt == "table":
        _print(sweep_output.terminal_table(result, share, shares, rows))
    else:
        what = "T and N" if counts is not None else "T"
        emit_table(fmt, f"{result.spec_name}: sweep over {what} (class shares of {share})", header, rows, None,
                   [False, False] + [True] * (len(header) - 2))
    _out_wrapped([f"uncosted under {proto} (left out of the totals): {', '.join(names)}"
                  for proto, names in result.uncosted.items()])


def compare(
    specs: list[str] = typer.Argument(..., help="Two or more specs; savings are against the first."),
    protocol: str = typer.Option(..., "--protocol", "-p", help="Protocol table."),
    network: Optional[str] = typer.Option(None, "--network", "-n", help="Network preset (default wan)."),
    bandwidth: Optional[str] = typer.Option(None, "--bandwidth", help="Bandwidth override, e.g. 100Mbps."),
    rtt: Optional[str] = typer.Option(None, "--rtt", help="Round-trip time override, e.g. 80ms."),
    option: Optional[list[str]] = typer.Option(None, "--option", help=OPTION_HELP),
    machine: Optional[str] = machine_option(),
    threads: Optional[int] = threads_option(),
    compute: Optional[str] = compute_option(),
    context: Optional[int] = typer.Option(None, "--context", "-T", help="Tokens T (default: each spec's own)."),
    allow_uncosted: bool = typer.Option(False, "--allow-uncosted", help="List ops the table cannot cost."),
    new_tokens: Optional[int] = typer.Option(None, "--new-tokens", "-N", help="Compare generations: the prefill "
                                             "of T tokens, then N decode steps (totals, the prefill = time to first "
                                             "token, and the mean per-token step)."),
    fmt: str = typer.Option("table", "--format", "-f", help=FMT_HELP),
) -> None:
    """Specs side by side under one protocol and network: communication and latency per op class
    and in total, with savings (x) against the first spec (with --new-tokens N: of a generation,
    plus its prefill and mean per-token step)."""
    from picost.analysis.compare import compare as compare_estimates
    from picost.analysis.compare import compare_generations
    from picost.analysis.estimate import estimate_lowered
    from picost.analysis.generation import check_new_tokens, generation_of
    from picost.model.lower import lower
    from picost.report.render import CLASS_LABELS, Column, human_bytes, human_seconds
    from picost.model.load import load_spec

    _check_format(fmt)
    if len(specs) < 2:
        raise UserError("give at least two specs to compare", field="SPECS")
    if new_tokens is not None:
        check_new_tokens(new_tokens)
    table = _one_table(protocol, option, (machine, threads, compute))
    link = _one_network(network, bandwidth, rtt)
    if new_tokens is None:
        estimates = [estimate_lowered(lower(load_spec(s), context), table, link, allow_uncosted) for s in specs]
        cmp = compare_estimates(estimates)
        contexts = [e.context for e in estimates]
    else:
        estimates = [generation_of(load_spec(s), table, link, context, new_tokens, allow_uncosted) for s in specs]
        cmp = compare_generations(estimates)
        contexts = [g.prompt for g in estimates]
    names = [e.spec_name for e in estimates]
    rows_of = cmp.classes + cmp.phases
    if fmt == "json":
        def entry(i: int, c: str) -> dict[str, Any]:
            return {**cmp.values[i][c], "savings": {m: _json_ratio(cmp.savings(i, c, m)) for m in cmp.values[i][c]}}

        specs_json = []
        for i, name in enumerate(names):
            item: dict[str, Any] = {"spec": name, "context": contexts[i],
                                    "classes": {c: entry(i, c) for c in cmp.classes}}
            if new_tokens is not None:
                item["generation"] = {"new_tokens": new_tokens, "ttft_s": estimates[i].ttft_s,
                                      "per_token_mean_s": estimates[i].mean_token_s,
                                      **{p: entry(i, p) for p in cmp.phases}}
            specs_json.append(item)
        obj: dict[str, Any] = {"schema": "picost.compare/1", "protocol": table.name, "options": dict(table.chosen),
                               "network": link.as_dict()}
        if new_tokens is not None:
            obj["new_tokens"] = new_tokens
        emit_table(fmt, "", (), (), {**obj, "specs": specs_json})
        return
    human = fmt in ("table", "md")
    ctx = ", ".join(f"{n} T={t}" for n, t in zip(names, contexts))
    gen = "" if new_tokens is None else f", {new_tokens} new tokens (prefill + {new_tokens} decode steps)"
    title = f"{table.label} over {link.name} ({link.summary()}): {ctx}{gen}"
    if not human:
        header = ["class"] + [f"{n} {m}" for n in names for m in ("comm_bytes", "latency_s")]
        header += [f"{n} {m} savings" for n in names[1:] for m in ("comm_bytes", "latency_s")]
        rows = [tuple([c] + [cmp.values[i][c][m] for i in range(len(names)) for m in ("comm_bytes", "latency_s")]
                      + [cmp.savings(i, c, m) for i in range(1, len(names)) for m in ("comm_bytes", "latency_s")])
                for c in rows_of]
        emit_table(fmt, title, header, rows, None)
        return
    labels = {"prefill": "prefill (TTFT)", "per_token": "per token (mean)"}
    for metric, label, show in (("comm_bytes", "communication", human_bytes), ("latency_s", "latency", human_seconds)):
        rows = []
        for c in rows_of:
            cells = [show(cmp.values[0][c][metric])]
            for i in range(1, len(names)):
                cells.append(f"{show(cmp.values[i][c][metric])} ({_times(cmp.savings(i, c, metric))})")
            rows.append(tuple([labels.get(c, c)] + cells))
        columns = [Column("class", short=CLASS_LABELS)] + [Column(n, numeric=True, drop=i) for i, n in enumerate(names)]
        emit_table(fmt, f"{label}: {title}", columns, rows, None, [False] + [True] * len(names),
                   hint="every column: -f csv or -f md")


def _json_ratio(x: float | None) -> float | str | None:
    """A savings factor for JSON, which has no infinity: ``"inf"`` when the cost is gone."""
    return "inf" if x == float("inf") else x


def _times(x: float | None) -> str:
    """A savings factor: ``2.31x``, ``inf`` (the class is gone), ``-`` (neither model has it)."""
    return "-" if x is None else ("inf" if x == float("inf") else f"{x:.2f}x")


def check(
    comm: str = typer.Option(..., "--comm", help="Reported communication, e.g. 25.3GB, 1.5GiB, 800Mb."),
    latency: str = typer.Option(..., "--latency", help="Reported latency, e.g. 8.2min, 95s, 800ms."),
    network: Optional[str] = typer.Option(None, "--network", "-n", help="Network preset (default wan)."),
    bandwidth: Optional[str] = typer.Option(None, "--bandwidth", help="Bandwidth override, e.g. 100Mbps."),
    rtt: Optional[str] = typer.Option(None, "--rtt", help="Round-trip time override, e.g. 80ms."),
    rounds: Optional[int] = typer.Option(None, "--rounds", help="Reported rounds, if known."),
    fmt: str = typer.Option("table", "--format", "-f", help="Output: table | json."),
) -> None:
    """Are a published communication and latency consistent with a network? Prints the
    bandwidth they imply and the lower bound on latency from the bytes alone."""
    from picost.analysis.published_check import check_published
    from picost.report.render import dump_json, human_bytes, human_seconds
    from picost.cost.network import parse_bytes, parse_duration

    if fmt not in ("table", "json"):
        raise UserError(f"unknown value '{fmt}' for --format; choose from table, json", field="--format")
    link = _one_network(network, bandwidth, rtt)
    r = check_published(parse_bytes(comm, "--comm"), parse_duration(latency, "--latency"),
                        link.bandwidth_bps / 8, link.round_s, rounds)
    if fmt == "json":
        _out(dump_json({"schema": "picost.check/1", "network": link.as_dict(), "comm_bytes": r.comm_bytes,
                        "latency_s": r.latency_s, "rounds": r.rounds, "verdict": r.verdict,
                        "implied_bandwidth_bps": 8 * r.implied_bandwidth_bytes_per_s,
                        "transfer_floor_s": r.transfer_floor_s, "duplex_floor_s": r.duplex_floor_s,
                        "latency_floor_s": r.latency_floor_s, "transfer_share": r.transfer_share,
                        "round_budget": r.round_budget}))
        return
    implied = 8 * r.implied_bandwidth_bytes_per_s
    lines = [f"network {link.name}: {link.summary()} (a round costs RTT/2 = {human_seconds(link.round_s)})"]
    lines.append(f"reported: {human_bytes(r.comm_bytes)} in {human_seconds(r.latency_s)}"
                 + (f", {r.rounds} rounds" if r.rounds is not None else ""))
    lines.append(f"implied bandwidth (all latency spent moving bytes): {implied / 1e6:.4g} Mbit/s "
                 f"= {implied / link.bandwidth_bps:.3g} x the network's")
    lines.append(f"latency floor from bytes alone: {human_seconds(r.transfer_floor_s)} "
                 f"(full duplex, perfectly balanced: {human_seconds(r.duplex_floor_s)})")
    if r.rounds is not None:
        lines.append(f"plus {r.rounds} rounds x {human_seconds(link.round_s)} = {human_seconds(r.rounds_floor_s)}; "
                     f"floor {human_seconds(r.latency_floor_s)}")
    budget = ("any number of round delays (the RTT is 0)" if r.round_budget is None
              else f"{r.round_budget:.0f} round delays")
    lines.append(f"the transfer floor is {100 * r.transfer_share:.1f}% of the reported latency; "
                 f"room left for {budget} (compute taken as 0)")
    verdicts = {"consistent": "consistent: the reported latency is at or above the floor",
                "needs-duplex": "consistent only if both directions ran at full rate at once, perfectly balanced",
                "impossible": "INCONSISTENT: the reported latency is below what the bytes alone need on this network"}
    lines.append(f"verdict: {verdicts[r.verdict]}")
    _out_wrapped(lines)


def report(
    specs: Optional[list[str]] = typer.Argument(None, help="Spec(s); with --aero, the baseline whose AERO steps "
                                                "are reported."),
    protocol: Optional[str] = typer.Option(None, "--protocol", "-p", help="Protocol table(s), comma-separated."),
    network: str = typer.Option("lan,wan", "--network", "-n", help="Network preset(s), comma-separated."),
    bandwidth: Optional[str] = typer.Option(None, "--bandwidth", help="Bandwidth override, e.g. 100Mbps."),
    rtt: Optional[str] = typer.Option(None, "--rtt", help="Round-trip time override, e.g. 80ms."),
    option: Optional[list[str]] = typer.Option(None, "--option", help=OPTION_HELP),
    machine: Optional[str] = machine_option(),
    threads: Optional[int] = threads_option(),
    compute: Optional[str] = compute_option(),
    context: Optional[int] = typer.Option(None, "--context", "-T", help="Tokens T of the tables (default: the "
                                          "spec's)."),
    sweep_contexts: str = typer.Option("64,128,...,8192", "--sweep", help="Contexts of the sweep and plots."),
    aero_steps: bool = typer.Option(False, "--aero", help="Report AERO's steps applied to the (first) spec."),
    prune: Optional[int] = typer.Option(None, "--prune", help="With --aero: deepest FFNs pruned (default half)."),
    title: Optional[str] = typer.Option(None, "--title", help="Report title."),
    output: Optional[str] = typer.Option(None, "--output", "-o", help="Markdown file to write, e.g. "
                                         "reports/NAME.md; plots go to reports/NAME/."),
    all_examples: bool = typer.Option(False, "--all", help="Regenerate every example of reports/examples.yaml "
                                      "(run from the repository root)."),
    new_tokens: Optional[str] = typer.Option(None, "--new-tokens", "-N", help="Add a generation section: N new "
                                             "tokens after the T-token prompt (1,2,...,64): TTFT, per-token latency "
                                             "and totals, per-token latency vs N by op class."),
    plan_section: bool = typer.Option(False, "--plan", help="Add a deployment plan section (`picost plan`): the "
                                      "fastest protocol over bandwidth and RTT, with its map and curves."),
) -> None:
    """Write a markdown cost report (setting, summary, breakdowns, sweep with PNG plots, with
    --new-tokens a generation section, with --plan a deployment plan section, formulas and sources,
    uncosted ops). Files are written
    atomically; on error nothing is written."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:  # before any work, not after it
        raise UserError("picost report draws its plots with matplotlib, which is not installed here: "
                        "pip install -c constraints.txt -e '.[report]' (in the repository; "
                        "`pip install 'picost[report]'` elsewhere)", field="report")
    from picost.report.markdown_report import ReportConfig, build_report, load_examples, write_report

    if all_examples:
        if specs or output:
            raise UserError("--all regenerates reports/examples.yaml; give no specs and no --output", field="--all")
        configs = [(c, f"reports/{c.name}.md") for c in load_examples()]
    else:
        if not specs or protocol is None or output is None:
            raise UserError("give SPEC(s), --protocol and --output (or --all)", field="--output")
        configs = [(ReportConfig(name=Path(output).stem, specs=tuple(specs), protocols=tuple(_protocol_list(protocol)),
                                 networks=tuple(_split_list(network)), context=context, sweep=sweep_contexts,
                                 aero=aero_steps, prune=prune, title=title, bandwidth=bandwidth, rtt=rtt,
                                 output=output, options=tuple(option or ()), new_tokens=new_tokens,
                                 machine=machine, threads=threads, compute=compute, plan=plan_section), output)]
    built = [build_report(c, out) for c, out in configs]  # everything computed before anything is written
    for r in built:
        if not r.markdown_path.parent.is_dir():
            raise UserError(f"directory '{r.markdown_path.parent}' does not exist", field="--output")
    for r in built:
        write_report(r)
        _out(f"wrote {r.markdown_path} and {len(r.files) - 1} files in {r.markdown_path.with_suffix('')}/")


def _at_width(expr: Any, d_model: int) -> Any:
    """``expr`` (in the symbol ``d``) at ``d = d_model``; None stays None."""
    if expr is None:
        return None
    return expr.subs({s: d_model for s in expr.free_symbols if s.name == "d"})


def register(app: typer.Typer) -> None:
    """Add the what-if commands to ``app``."""
    app.command()(aero)
    app.command()(symbolic)
    app.command()(sweep)
    app.command()(compare)
    app.command()(check)
    app.command()(report)

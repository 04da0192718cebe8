"""CLI commands for what-if analysis: ``aero``, ``symbolic``, ``check`` (and, on the estimate,
``sweep``, ``compare``, ``report``). A thin face: each command calls library functions and renders.

Registered on the main typer app by :func:`register` (called from :mod:`picost.cli`).
"""

from __future__ import annotations

import sys
from typing import Any, Optional, Sequence

import typer

from picost.errors import UserError

FMT_HELP = "Output: table | json | csv | md."


def _out(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _check_format(fmt: str) -> str:
    from picost.render import FORMATS

    if fmt not in FORMATS:
        raise UserError(f"unknown value '{fmt}' for --format; choose from {', '.join(FORMATS)}", field="--format")
    return fmt


def emit_table(fmt: str, title: str, header: Sequence[str], rows: Sequence[Sequence[Any]],
               json_obj: Any, align_right: Sequence[bool] | None = None) -> None:
    """Print one table as a rich table, CSV, markdown, or ``json_obj`` as JSON."""
    from picost import render

    if fmt == "json":
        _out(render.dump_json(json_obj))
    elif fmt == "csv":
        _out(render.dump_csv(header, rows))
    elif fmt == "md":
        _out(f"**{title}**\n\n" + render.dump_markdown(header, rows, align_right))
    else:
        from rich.console import Console

        Console().print(render.rich_table(title, header, rows, align_right))


def _savings(row: Any, name: str) -> str:
    value = row.savings.get(name)
    if value is None:
        return ""
    return "inf" if value == float("inf") else f"{value:.2f}x"


def aero(
    spec: str = typer.Argument(..., help="Baseline spec (file or shipped name), e.g. gpt2."),
    context: Optional[int] = typer.Option(None, "--context", "-T", help="Tokens T (default: the spec's)."),
    prune: Optional[int] = typer.Option(None, "--prune", help="How many of the deepest FFNs to prune "
                                        "(default: half of the layers)."),
    temperature: bool = typer.Option(False, "--temperature", help="Keep entropy regularization's learnable "
                                     "temperature at inference and cost it."),
    fmt: str = typer.Option("table", "--format", "-f", help=FMT_HELP),
) -> None:
    """AERO's steps applied to SPEC as spec transforms: the ablation table of a PI paper.

    Entropy regularization changes training only (no inference op), so it appears only with
    --temperature, which keeps its learnable temperature (one server-held scaling per score).
    """
    from picost.ablation import ablation, format_counts
    from picost.aero import ENTROPY_REG_NOTE, aero_steps
    from picost.render import human_count
    from picost.spec import load_spec

    _check_format(fmt)
    steps = aero_steps(load_spec(spec), prune=prune, keep_temperature=temperature)
    rows = ablation(steps, context)
    header = ("step", "nonlinear ops", "FFN FLOPs", "attn FLOPs", "total FLOPs", "FLOPs savings")
    human = fmt in ("table", "md")
    sep = "\n" if fmt == "table" else "; "
    cells = [(r.label, format_counts(r.nonlinear, sep=sep),
              human_count(r.ffn_flops) if human else r.ffn_flops,
              human_count(r.attention_flops) if human else r.attention_flops,
              human_count(r.total_flops) if human else r.total_flops,
              _savings(r, "total_flops")) for r in rows]
    ctx = context or steps[0].spec.context_length
    obj = {"schema": "picost.aero/1", "spec": steps[0].spec.name, "context": ctx, "note": ENTROPY_REG_NOTE,
           "steps": [{"label": r.label, "action": r.action, "spec": r.spec_name,
                      "nonlinear": {k: [{"instances": n, "shape": s} for n, s in v] for k, v in r.nonlinear.items()},
                      "ffn_flops": r.ffn_flops, "attention_flops": r.attention_flops,
                      "total_flops": r.total_flops, "savings": r.savings} for r in rows]}
    emit_table(fmt, f"AERO ablation of {steps[0].spec.name} at T={ctx}", header, cells, obj,
               [False, False, True, True, True, True])
    if fmt in ("table", "md"):
        _out(f"note: {ENTROPY_REG_NOTE}.")


def symbolic(
    spec: str = typer.Argument(..., help="Spec file or shipped spec name."),
    symbols: str = typer.Option("T", "--symbols", help="Comma-separated symbols among T, L, d."),
    fmt: str = typer.Option("table", "--format", "-f", help="Output: table | json."),
) -> None:
    """Closed forms in T (and L, d) and crossover points: where attention FLOPs overtake FFN FLOPs
    under several counting conventions (AERO's T < 8/3 d among them)."""
    from picost.crossover import aero_claim_condition, flop_conventions
    from picost.flops import symbolic_flops
    from picost.render import dump_json
    from picost.spec import load_spec

    if fmt not in ("table", "json"):
        raise UserError(f"unknown value '{fmt}' for --format; choose from table, json", field="--format")
    model = load_spec(spec)
    chosen = [s.strip() for s in symbols.split(",") if s.strip()]
    forms = symbolic_flops(model, chosen)
    conventions = flop_conventions(model, symbolic_width=True)
    at_d = {c.name: _at_width(c.crossover, model.d_model) for c in conventions}
    if fmt == "json":
        _out(dump_json({
            "schema": "picost.symbolic/1", "spec": model.name, "symbols": chosen,
            "flops": {k: str(v) for k, v in forms.items()},
            "attention_vs_ffn": [{"convention": c.name, "description": c.description,
                                  "attention": str(c.attention), "ffn": str(c.ffn),
                                  "crossover": str(c.crossover), "crossover_at_spec_d": at_d[c.name]}
                                 for c in conventions],
            "aero_claim": aero_claim_condition()}))
        return
    _out(f"FLOPs of {model.name} ({', '.join(chosen)} symbolic):")
    for group, expr in forms.items():
        _out(f"  {group:>20} = {expr}")
    _out("\nAttention FLOPs overtake FFN FLOPs at (T, with d symbolic; value at the spec's d):")
    for c in conventions:
        _out(f"  {c.name:>12}: T* = {c.crossover}  (= {at_d[c.name]} at d = {model.d_model})  [{c.description}]")
    _out(f"\nAERO's 'FFN FLOPs dominate when T < 8/3 d': {aero_claim_condition()}.")


def _at_width(expr: Any, d_model: int) -> Any:
    """``expr`` (in the symbol ``d``) at ``d = d_model``; None stays None."""
    if expr is None:
        return None
    return expr.subs({s: d_model for s in expr.free_symbols if s.name == "d"})


def register(app: typer.Typer) -> None:
    """Add the what-if commands to ``app``."""
    app.command()(aero)
    app.command()(symbolic)

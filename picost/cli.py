"""The ``picost`` command line: a thin face over the library.

Each command calls one library function and renders its result. User mistakes
(:class:`~picost.errors.UserError`) print one located message and exit with code 2.
Heavy modules (torch, pandas, matplotlib, sympy) are imported inside the commands that need them.
"""

from __future__ import annotations

import sys
from typing import Any, Optional

import typer

from picost.errors import UserError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="picost: what a transformer costs under private inference (FLOPs, communication, rounds, latency).",
    pretty_exceptions_enable=False,
)


def _echo(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _print(renderable: Any) -> None:
    from rich.console import Console

    Console().print(renderable)


def _choice(value: str, allowed: tuple[str, ...], option: str) -> str:
    if value not in allowed:
        raise UserError(f"unknown value '{value}' for {option}; choose from {', '.join(allowed)}", field=option)
    return value


@app.command()
def specs() -> None:
    """List the shipped model specs (usable by name, e.g. `picost flops gpt2`)."""
    from picost.spec import load_spec, shipped_spec_names, shipped_specs_dir

    rows = []
    for name in shipped_spec_names():
        spec = load_spec(name)
        rows.append((name, spec.n_layers, spec.d_model, spec.n_heads, spec.kv_heads, spec.ffn_width,
                     spec.vocab_size, spec.activation, spec.norm.kind, spec.description))
    from picost.render import rich_table

    header = ("name", "L", "d", "H", "H_kv", "d_ff", "V", "activation", "norm", "description")
    _print(rich_table(f"Shipped specs ({shipped_specs_dir()})", header, rows,
                      [False, True, True, True, True, True, True, False, False, False]))


@app.command()
def flops(
    spec: str = typer.Argument(..., help="Spec file (YAML or HF config.json) or shipped spec name."),
    context: Optional[int] = typer.Option(None, "--context", "-T", help="Tokens T (default: the spec's context_length)."),
    by: str = typer.Option("block", "--by", help="Breakdown: block | layer | op."),
    fmt: str = typer.Option("table", "--format", "-f", help="Output: table | json | csv."),
    symbolic: bool = typer.Option(False, "--symbolic", help="Print closed forms (sympy) instead of numbers."),
    symbols: str = typer.Option("T", "--symbols", help="With --symbolic: comma-separated symbols among T, L, d."),
) -> None:
    """Exact FLOPs (2 per multiply-add) and nonlinear element counts of one forward pass."""
    from picost import flops_report
    from picost.spec import load_spec

    _choice(by, ("block", "layer", "op"), "--by")
    _choice(fmt, ("table", "json", "csv"), "--format")
    model = load_spec(spec)
    if symbolic:
        from picost.flops import symbolic_flops

        forms = symbolic_flops(model, [s.strip() for s in symbols.split(",") if s.strip()])
        if fmt == "json":
            from picost.render import dump_json

            _echo(dump_json({"schema": "picost.flops.symbolic/1", "spec": model.name,
                             "symbols": symbols.split(","), "flops": {k: str(v) for k, v in forms.items()}}))
        else:
            for group, expr in forms.items():
                _echo(f"{group:>20} = {expr}")
        return
    report = flops_report.build(model, context)
    _echo(flops_report.render(report, by=by, fmt=fmt)) if fmt != "table" else _print(
        flops_report.render(report, by=by, fmt=fmt))


from picost.cli_whatif import register as _register_whatif  # noqa: E402  (commands need `app`)

_register_whatif(app)


def main() -> None:
    """Console entry point: run the app, turning user errors into one message and exit code 2.

    Usage errors (unknown option, bad option type) are reported by typer with exit code 2.
    """
    try:
        app()
    except UserError as exc:
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(2)

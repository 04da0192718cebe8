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


@app.command()
def estimate(
    spec: str = typer.Argument(..., help="Spec file (YAML or HF config.json) or shipped spec name."),
    protocol: str = typer.Option(..., "--protocol", "-p", help="Protocol table: shipped name (see `picost protocols`) or path."),
    network: Optional[str] = typer.Option(None, "--network", "-n", help="Network preset: lan, wan, wan400, ... (see docs/latency-model.md)."),
    context: Optional[int] = typer.Option(None, "--context", "-T", help="Tokens T (default: the spec's context_length)."),
    bandwidth: Optional[str] = typer.Option(None, "--bandwidth", help="Override bandwidth, e.g. 100Mbps, 1Gbps, 400MB/s."),
    rtt: Optional[str] = typer.Option(None, "--rtt", help="Override round-trip time, e.g. 80ms, 0.5ms."),
    by: str = typer.Option("class", "--by", help="Breakdown: op | layer | block | class."),
    fmt: str = typer.Option("table", "--format", "-f", help="Output: table | json | csv | md."),
    allow_uncosted: bool = typer.Option(False, "--allow-uncosted", help="List ops the table cannot cost as UNCOSTED rows instead of failing."),
) -> None:
    """Communication, rounds and latency of one private forward pass, per op and per group."""
    from picost import estimate_report
    from picost.estimate import estimate as run_estimate

    _choice(by, ("op", "layer", "block", "class"), "--by")
    _choice(fmt, ("table", "json", "csv", "md"), "--format")
    result = run_estimate(spec, protocol, network, context, bandwidth=bandwidth, rtt=rtt,
                          allow_uncosted=allow_uncosted)
    out = estimate_report.render(result, by=by, fmt=fmt)
    _print(out) if fmt == "table" else _echo(out)


protocols_app = typer.Typer(help="Protocol cost tables: list them, or show one's formulas and sources.",
                            invoke_without_command=True, no_args_is_help=False)
app.add_typer(protocols_app, name="protocols")


@protocols_app.callback()
def protocols(ctx: typer.Context) -> None:
    """List the shipped protocol tables with their setting and confidence."""
    if ctx.invoked_subcommand is not None:
        return
    from picost.protocol_docs import listing
    from picost.protocols import shipped_protocols_dir
    from picost.render import rich_table

    _print(rich_table(f"Protocol tables ({shipped_protocols_dir()})", ("name", "setting", "op kinds", "confidence"),
                      listing(), [False, False, True, False]))


@protocols_app.command("show")
def protocols_show(
    protocol: str = typer.Argument(..., help="Shipped table name or path."),
    fmt: str = typer.Option("table", "--format", "-f", help="Output: table | md (the generated docs page)."),
) -> None:
    """Each op kind's formulas (bytes, rounds, compute, offline) and sources."""
    from picost import protocol_docs
    from picost.protocols import load_protocol

    _choice(fmt, ("table", "md"), "--format")
    table = load_protocol(protocol)
    _echo(protocol_docs.markdown(table)) if fmt == "md" else _print(protocol_docs.rich_view(table))


@app.command()
def networks() -> None:
    """List the network presets (bandwidth, RTT, source); a round costs RTT/2 (docs/latency-model.md)."""
    from picost.network import presets
    from picost.render import rich_table

    rows = [(n.name, n.summary(), n.description, n.source) for n in presets().values()]
    _print(rich_table("Network presets (picost/networks.yaml)", ("name", "link", "what", "source"), rows))


def main() -> None:
    """Console entry point: run the app, turning user errors into one message and exit code 2.

    Usage errors (unknown option, bad option type) are reported by typer with exit code 2.
    """
    try:
        app()
    except UserError as exc:
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(2)


# The what-if commands (aero, symbolic, sweep, compare, check, report) live in their own module;
# registered last so that they follow the core commands in `picost --help`.
from picost.cli_whatif import register as _register_whatif  # noqa: E402

_register_whatif(app)

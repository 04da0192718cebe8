"""The ``picost`` command line: a thin face over the library.

Each command calls one library function and renders its result. User mistakes
(:class:`~picost.errors.UserError`) print one located message and exit with code 2.
Heavy modules (torch, pandas, matplotlib, sympy) are imported inside the commands that need them.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Iterable, Optional

import typer

from picost.cli.whatif import OPTION_HELP
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
    from picost.model.load import load_spec, shipped_spec_names, shipped_specs_dir

    rows = []
    for name in shipped_spec_names():
        spec = load_spec(name)
        rows.append((name, spec.n_layers, spec.d_model, spec.n_heads, spec.kv_heads, spec.ffn_width,
                     spec.vocab_size, spec.activation, spec.norm.kind, spec.description))
    from picost.report.render import rich_table

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
    from picost.report import flops_output as flops_report
    from picost.model.load import load_spec

    _choice(by, ("block", "layer", "op"), "--by")
    _choice(fmt, ("table", "json", "csv"), "--format")
    model = load_spec(spec)
    if symbolic:
        from picost.model.flops import symbolic_flops

        forms = symbolic_flops(model, [s.strip() for s in symbols.split(",") if s.strip()])
        if fmt == "json":
            from picost.report.render import dump_json

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
    calibration: Optional[str] = typer.Option(None, "--calibration", help="Compute profile from `picost calibrate` (YAML): this machine's compute time per op kind."),
    option: Optional[list[str]] = typer.Option(None, "--option", help=OPTION_HELP),
) -> None:
    """Communication, rounds and latency of one private forward pass, per op and per group."""
    from picost.report import estimate_output as estimate_report
    from picost.cost.calibration import calibrated_table
    from picost.analysis.estimate import estimate as run_estimate

    _choice(by, ("op", "layer", "block", "class"), "--by")
    _choice(fmt, ("table", "json", "csv", "md"), "--format")
    result = run_estimate(spec, calibrated_table(protocol, calibration, option), network, context, bandwidth=bandwidth,
                          rtt=rtt, allow_uncosted=allow_uncosted)
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
    from picost.report.protocol_docs import listing
    from picost.cost.protocol_table import shipped_protocols_dir
    from picost.report.render import rich_table

    _print(rich_table(f"Protocol tables ({shipped_protocols_dir()})", ("name", "setting", "op kinds", "confidence"),
                      listing(), [False, False, True, False]))


@protocols_app.command("show")
def protocols_show(
    protocol: str = typer.Argument(..., help="Shipped table name or path."),
    fmt: str = typer.Option("table", "--format", "-f", help="Output: table | md (the generated docs page)."),
    option: Optional[list[str]] = typer.Option(None, "--option", help=OPTION_HELP),
) -> None:
    """Each op kind's formulas (bytes, rounds, compute, offline) and sources, and the table's options."""
    from picost.report import protocol_docs
    from picost.cost.table_options import load_tables

    _choice(fmt, ("table", "md"), "--format")
    table = load_tables([protocol], option)[0]
    _echo(protocol_docs.markdown(table)) if fmt == "md" else _print(protocol_docs.rich_view(table))

# -- the two-party engine (picost.mpc; needs torch) -------------------------------------------

def _need_torch() -> None:
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        raise UserError("the MPC engine needs torch: pip install 'picost[torch]'")


def _mpc_failed(exc: Exception) -> None:
    sys.stderr.write(f"error: {exc}\n")
    raise typer.Exit(1)


def _show_checked(result: Any, fmt: str, to_json: Callable[[Any], Any], render: Callable[[Any], Iterable[Any]],
                  summary: str) -> None:
    """Print an engine run checked against the table: JSON, or its tables and a summary line;
    exit 1 unless ``result.ok``."""
    if fmt == "json":
        from picost.report.render import dump_json

        _echo(dump_json(to_json(result)))
    else:
        for part in render(result):
            _print(part)
        _echo(summary)
    if not result.ok:
        raise typer.Exit(1)


@app.command()
def validate(
    specs: Optional[list[str]] = typer.Argument(None, help="Specs to run privately (default: tiny and its variants)."),
    context: int = typer.Option(4, "--context", "-T", min=1, help="Prompt tokens per model run (cached tokens for decode specs)."),
    ops: bool = typer.Option(True, "--ops/--no-ops", help="Also run every op kind at three shapes."),
    timeout: float = typer.Option(60.0, "--timeout", help="Seconds to wait for any message before failing."),
    protocol: str = typer.Option("picost-2pc", "--protocol", "-p", help="Table to check the measurements against."),
    fmt: str = typer.Option("table", "--format", "-f", help="Output: table | json."),
    force: bool = typer.Option(False, "--force", help="Run even if the estimated memory exceeds what is available."),
) -> None:
    """Run the two-party engine and check measured bytes and rounds against picost-2pc (exit 1 on a mismatch)."""
    _choice(fmt, ("table", "json"), "--format")
    _need_torch()
    from rich.progress import Progress

    from picost.mpc import report
    from picost.mpc.launcher import MpcRunError, check_launch
    from picost.mpc.validate import DEFAULT_SPECS, run_validation
    from picost.cost.protocol_table import load_protocol
    from picost.model.load import load_spec

    check_launch("127.0.0.1", None, timeout)
    table = load_protocol(protocol)
    chosen = list(specs) if specs else list(DEFAULT_SPECS)
    for ref in chosen:
        load_spec(ref)  # bad specs fail fast with a located error
    total = len(chosen) + int(ops)
    with Progress(transient=True) as progress:
        task = progress.add_task("two-party runs (client, server, dealer)", total=total)
        try:
            result = run_validation(chosen, context, ops, timeout_s=timeout, table=table, force=force,
                                    on_progress=lambda done, _: progress.update(task, completed=done))
        except MpcRunError as exc:
            _mpc_failed(exc)
    _show_checked(result, fmt, report.validation_json, report.render_validation,
                  f"{'OK' if result.ok else 'MISMATCH'}: predicted == measured for "
                  f"{sum(r.ok for r in result.op_rows) + sum(r.ok for m in result.models for r in m.rows)} of "
                  f"{len(result.op_rows) + sum(len(m.rows) for m in result.models)} rows; launch wall time "
                  f"{result.wall_s:.1f} s")


mpc_app = typer.Typer(help="The real two-party engine: private runs of a spec.", no_args_is_help=True)
app.add_typer(mpc_app, name="mpc")


@mpc_app.command("run")
def mpc_run(
    spec: str = typer.Argument(..., help="Spec file or shipped spec name."),
    tokens: str = typer.Option(..., "--tokens", help="Comma-separated token ids (the client's private prompt; one id for decode specs)."),
    cached: Optional[int] = typer.Option(None, "--cached", min=1, help="Decode specs: tokens in the KV cache (default: the spec's context_length)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the server's random weights (as the torch reference)."),
    frac_bits: int = typer.Option(16, "--frac-bits", min=8, max=18, help="Fixed-point fractional bits (costs do not depend on it)."),
    timeout: float = typer.Option(60.0, "--timeout", help="Seconds to wait for any message before failing."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address the parties rendezvous at."),
    port: Optional[int] = typer.Option(None, "--port", help="Rendezvous port (default: a free one)."),
    fmt: str = typer.Option("table", "--format", "-f", help="Output: table | json."),
    force: bool = typer.Option(False, "--force", help="Run even if the estimated memory exceeds what is available."),
) -> None:
    """Run SPEC privately on --tokens: next token, error vs plaintext, per-op cost (measured and predicted)."""
    _choice(fmt, ("table", "json"), "--format")
    _need_torch()
    try:
        ids = [int(t) for t in tokens.split(",") if t.strip()]
    except ValueError:
        raise UserError(f"--tokens must be comma-separated integers (got '{tokens}')", field="--tokens") from None
    from picost.mpc import report
    from picost.mpc.launcher import MpcRunError, check_launch, model_job, run_local
    from picost.mpc.validate import check_model

    check_launch(host, port, timeout)
    job = model_job(spec, ids, seed, frac_bits, cached, force=force)
    try:
        run = run_local(job, host=host, port=port, timeout_s=timeout)
    except MpcRunError as exc:
        _mpc_failed(exc)
    result = check_model(spec, ids, seed, run, context=job["context"])
    _show_checked(result, fmt, report.model_json, report.render_model,
                  f"next token: {result.next_token} (plaintext: {result.reference_token}); max |logit error| "
                  f"{result.max_abs_error:.3g}; launch wall time {run.wall_s:.1f} s")


@mpc_app.command("party", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def mpc_party(ctx: typer.Context) -> None:
    """One party of a multi-host run: same options as `python -m picost.mpc.party --help`."""
    _need_torch()
    from picost.mpc.party import main as party_main

    raise typer.Exit(party_main(list(ctx.args)))


@app.command()
def calibrate(
    out: str = typer.Option(..., "--out", "-o", help="Profile file to write (YAML)."),
    repeats: int = typer.Option(3, "--repeats", min=1, help="Timed runs of every op (after one warm-up)."),
    kinds: Optional[str] = typer.Option(None, "--kinds", help="Comma-separated op kinds (default: all the engine runs)."),
) -> None:
    """Measure this machine's compute time per op kind for the engine (picost-2pc); write a profile for `estimate --calibration`."""
    _need_torch()
    from pathlib import Path

    from rich.progress import Progress

    from picost.cost.calibration import compute_formula
    from picost.mpc.measure_compute import CALIBRATION_SHAPES, calibrate as run_calibration
    from picost.mpc.launcher import MpcRunError
    from picost.report.render import rich_table

    chosen = [k.strip() for k in kinds.split(",") if k.strip()] if kinds else None
    for kind in chosen or ():
        if kind not in CALIBRATION_SHAPES:
            raise UserError(f"unknown op kind '{kind}' (kinds: {', '.join(CALIBRATION_SHAPES)})", field="--kinds")
    target = Path(out)
    if not target.parent.is_dir():
        raise UserError("the directory of the output file does not exist", file=out, field="--out")
    if target.is_dir():
        raise UserError("the output is a directory; give a file name", file=out, field="--out")
    with Progress(transient=True) as progress:
        progress.add_task("timing the engine's ops (client, server, dealer on this machine)", total=None)
        try:
            profile = run_calibration(chosen, repeats)
        except MpcRunError as exc:
            _mpc_failed(exc)
    from picost.report.atomic_write import write_all_atomic

    try:
        write_all_atomic({target: profile.to_yaml()})  # all or nothing; no temporary file left behind
    except OSError as exc:
        raise UserError(f"cannot write the profile: {exc.strerror or exc}", file=out, field="--out") from None
    rows = [(kind, compute_formula(kind, t)) for kind, t in profile.kinds.items()]
    _print(rich_table(f"Compute seconds per row kind (written to {out})", ("kind", "compute_s"), rows))


@app.command()
def networks() -> None:
    """List the network presets (bandwidth, RTT, source); a round costs RTT/2 (docs/latency-model.md)."""
    from picost.cost.network import presets
    from picost.report.render import rich_table

    rows = [(n.name, n.summary(), n.description, n.source) for n in presets().values()]
    _print(rich_table("Network presets (picost/cost/networks.yaml)", ("name", "link", "what", "source"), rows))


def main() -> None:
    """Console entry point: run the app, turning user errors into one message and exit code 2.

    Usage errors (unknown option, bad option type) are reported by typer with exit code 2.
    """
    import signal

    seen: list[int] = []

    def interrupted(signum: int, frame: Any) -> None:
        seen.append(signum)
        raise KeyboardInterrupt(signum)

    for sig in (signal.SIGINT, signal.SIGTERM):  # SIGTERM cleans up like Ctrl-C: staged files, engine parties
        signal.signal(sig, interrupted)
    try:
        app()
    except UserError as exc:
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(2)
    except (KeyboardInterrupt, SystemExit) as exc:  # typer turns an interrupt into a silent exit 130
        if not seen and not isinstance(exc, KeyboardInterrupt):
            raise
        signum = seen[0] if seen else signal.SIGINT
        sys.stderr.write(f"error: interrupted ({signal.Signals(signum).name}); nothing was left half-written\n")
        sys.exit(128 + signum)


# The what-if commands (aero, symbolic, sweep, compare, check, report) live in their own module;
# registered last so that they follow the core commands in `picost --help`.
from picost.cli.whatif import register as _register_whatif  # noqa: E402

_register_whatif(app)

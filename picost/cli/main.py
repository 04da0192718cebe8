"""The ``picost`` command line: a thin face over the library.

Each command calls one library function and renders its result. User mistakes
(:class:`~picost.errors.UserError`) print one located message and exit with code 2.
Heavy modules (torch, pandas, matplotlib, sympy) are imported inside the commands that need them.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Iterable, Optional

import typer

from picost.cli.whatif import OPTION_HELP, compute_option, machine_option, threads_option
from picost.errors import UserError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="picost: what a transformer costs under private inference (FLOPs, communication, rounds, latency).",
    pretty_exceptions_enable=False,
)


def printable(text: str) -> str:
    """``text`` with control characters (escape sequences a terminal would act on) shown escaped:
    a spec name or argument with ``\x1b[2J`` in it is printed, not obeyed. Newlines and tabs stay."""
    return "".join(c if c.isprintable() or c in "\n\t" else repr(c)[1:-1] for c in text)


def _echo(text: "str | Iterable[str]") -> None:
    """Write ``text`` (or its pieces, as they come) to stdout, ending with a newline."""
    last = ""
    for piece in [text] if isinstance(text, str) else text:
        if piece:
            sys.stdout.write(piece)
            last = piece
    if not last.endswith("\n"):
        sys.stdout.write("\n")


def _print(renderable: Any) -> None:
    from rich.console import Console

    Console().print(renderable)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        _echo(f"picost {version('picost')}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print the installed picost version and exit."),
) -> None:
    pass


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
    from picost.report.render import Column, rich_table

    drop = {"V": 3, "H_kv": 2, "norm": 1}
    columns = [Column("name")] + [Column(h, numeric=True, drop=drop.get(h, 0))
                                  for h in ("L", "d", "H", "H_kv", "d_ff", "V")]
    columns += [Column("activation"), Column("norm", drop=1), Column("description", text=True, spill=True, drop=9)]
    _print(rich_table(f"Shipped specs ({shipped_specs_dir()})", columns, rows,
                      hint="every field: the spec files (model_specs/)"))


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
            from picost.report.render import wrap_lines

            _echo(wrap_lines([f"{group:>20} = {expr}" for group, expr in forms.items()]))
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
    new_tokens: Optional[int] = typer.Option(None, "--new-tokens", "-N", help="Generation: the prefill of T tokens, then N decode steps at a growing KV cache (time to first token, per-token latency, totals)."),
    machine: Optional[str] = machine_option(),
    threads: Optional[int] = threads_option(),
    compute: Optional[str] = compute_option(),
) -> None:
    """Communication, rounds and latency of one private forward pass, per op and per group (with
    --new-tokens N: of a prefill and N decode steps)."""
    from picost.report import estimate_output as estimate_report
    from picost.cost.calibration import calibrated_table
    from picost.analysis.estimate import estimate as run_estimate, with_machine

    _choice(by, ("op", "layer", "block", "class"), "--by")
    _choice(fmt, ("table", "json", "csv", "md"), "--format")
    if new_tokens is not None:
        from picost.analysis.generation import check_new_tokens, generation
        from picost.report import generation_output

        check_new_tokens(new_tokens)
        table = with_machine(calibrated_table(protocol, calibration, option), machine, threads, compute)
        gen = generation(spec, table, network, context, new_tokens,
                         bandwidth=bandwidth, rtt=rtt, allow_uncosted=allow_uncosted)
        out = generation_output.render(gen, fmt)
        _print(out) if fmt == "table" else _echo(out)
        return
    table = with_machine(calibrated_table(protocol, calibration, option), machine, threads, compute)
    result = run_estimate(spec, table, network, context, bandwidth=bandwidth, rtt=rtt, allow_uncosted=allow_uncosted)
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
    from picost.report.render import Column, rich_table

    columns = (Column("name"), Column("setting", text=True), Column("op kinds", numeric=True, drop=1),
               Column("confidence", text=True, spill=True, drop=2))
    _print(rich_table(f"Protocol tables ({shipped_protocols_dir()})", columns, listing(limit=None)))


@protocols_app.command("compose")
def protocols_compose() -> None:
    """What composes into a hybrid (`-p linear=bumblebee,nonlinear=sigma`): each table's share domain, and the
    conversion steps inserted between two tables whose domains differ (or why the pair is refused)."""
    from picost.cost.conversions import shipped_conversions_path
    from picost.cost.hybrid import GROUPS
    from picost.report.protocol_docs import compose_listing
    from picost.report.render import Column, rich_table

    domains, pairs = compose_listing()
    _print(rich_table("Share domains (setting.sharing, ring_bits, fractional_bits) and transports",
                      (Column("table"), Column("domain", text=True), Column("delays/round", numeric=True)), domains))
    _print(rich_table(f"Conversions between 2PC additive domains ({shipped_conversions_path()})",
                      (Column("from"), Column("to"), Column("steps", text=True, min_width=30)), pairs))
    _echo("Tables with the same domain compose with no conversion. Any other pair (3PC replicated with 2PC, HE "
          "ciphertexts with shares, plaintext with a protocol) has no conversion and is refused. Keys: op classes "
          "or the groups " + "; ".join(f"{g} = {', '.join(cs)}" for g, cs in GROUPS.items())
          + "; a bare table name covers the other classes (docs/protocol-tables.md, Hybrid protocols).")


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


ENGINE_TIMEOUT_S = 60.0
"""Default of ``validate --timeout`` for picost's own engine (seconds without a message)."""


@app.command()
def validate(
    specs: Optional[list[str]] = typer.Argument(None, help="Specs to run privately (default: tiny and its variants)."),
    context: int = typer.Option(4, "--context", "-T", min=1, help="Prompt tokens per model run (cached tokens for decode specs)."),
    ops: bool = typer.Option(True, "--ops/--no-ops", help="Also run every op kind at three shapes."),
    timeout: Optional[float] = typer.Option(None, "--timeout", help="Seconds to wait for any message before failing (engine default 60; SPU and CrypTen runs: their own defaults)."),
    protocol: Optional[str] = typer.Option(None, "--protocol", "-p", help="Table to check the engine against (default picost-2pc); with --against spu, the SPU protocol: semi2k, cheetah or aby3 (default semi2k)."),
    against: str = typer.Option("engine", "--against", help="engine (picost's own two-party engine), spu (SecretFlow SPU 0.9.5, in .venv-spu: bash scripts/setup-spu.sh) or crypten (CrypTen 0.4.1, in .venv-crypten: bash scripts/setup-crypten.sh)."),
    option: Optional[list[str]] = typer.Option(None, "--option", help=OPTION_HELP),
    fmt: str = typer.Option("table", "--format", "-f", help="Output: table | json."),
    new_tokens: Optional[int] = typer.Option(None, "--new-tokens", "-N", help="Engine only: run a generation (prefill of T tokens, then N decode steps on the cache it left) per spec and check every step's rows and the generation totals exactly."),
    force: bool = typer.Option(False, "--force", help="Run even if the estimated memory exceeds what is available."),
) -> None:
    """Run a real engine and check measured bytes against picost's tables (exit 1 on a mismatch): picost's
    own engine against picost-2pc (bytes and rounds, exactly), SPU against spu-* (totals within 10%,
    op classes within 20%), or CrypTen against crypten (bytes and rounds per op class, exactly)."""
    _choice(fmt, ("table", "json"), "--format")
    _choice(against, ("engine", "spu", "crypten"), "--against")
    tiny = ["tiny", "tiny-relu", "tiny-smonly-fused", "tiny-llama"]
    if against == "spu":
        _validate_spu(specs or tiny, context, protocol or "semi2k", option, timeout, fmt)
        return
    if against == "crypten":
        if protocol not in (None, "crypten"):
            raise UserError("--against crypten checks the crypten table (no --protocol)", field="--protocol")
        _validate_crypten(specs or tiny, context, option, timeout, fmt)
        return
    protocol = protocol or "picost-2pc"
    timeout = ENGINE_TIMEOUT_S if timeout is None else timeout
    _need_torch()
    if new_tokens is not None:
        if option:
            raise UserError("--option with --new-tokens: generation runs the engine's defaults", field="--option")
        _validate_generation(specs, context, new_tokens, protocol, timeout, fmt)
        return
    from rich.progress import Progress

    from picost.mpc import report
    from picost.mpc.launcher import MpcRunError, check_launch
    from picost.mpc.validate import DEFAULT_SPECS, run_validation
    from picost.model.load import load_spec

    check_launch("127.0.0.1", None, timeout)
    table = _engine_table(protocol, option)
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


def _engine_table(protocol: str, option: Optional[list[str]]) -> Any:
    """The table the engine is checked against, with its ``--option`` values in force (the
    engine runs what they choose: picost-2pc's comparison, truncation and exp)."""
    from picost.cost.table_options import load_tables

    return load_tables([protocol], option)[0]


def _validate_generation(specs: Optional[list[str]], context: int, new_tokens: int, protocol: str, timeout: float,
                         fmt: str) -> None:
    from picost.cost.protocol_table import load_protocol
    from picost.model.load import load_spec
    from picost.mpc.generate import run_generation_check
    from picost.mpc.launcher import MpcRunError
    from picost.mpc.validate import token_ids
    from picost.report.render import dump_json

    table = load_protocol(protocol)
    checks = []
    for ref in specs or ["tiny", "tiny-llama"]:
        spec = load_spec(ref)
        try:
            checks.append(run_generation_check(ref, token_ids(spec.vocab_size, context), new_tokens, timeout_s=timeout,
                                               table=table))
        except MpcRunError as exc:
            _mpc_failed(exc)
    ok = all(c.ok for c in checks)
    if fmt == "json":
        _echo(dump_json({"schema": "picost.validate-generation/1", "protocol": table.name, "ok": ok, "checks": [
            {"spec": c.spec, "prompt": c.prompt, "new_tokens": c.new_tokens, "ok": c.ok, "predicted": c.predicted,
             "measured": c.measured, "rows": len(c.rows), "rows_ok": sum(r.ok for r in c.rows),
             "op_order_ok": c.op_order_ok, "tokens": c.tokens, "reference_tokens": c.reference_tokens}
            for c in checks]}))
    else:
        for c in checks:
            _echo(f"{c.spec}: prompt {c.prompt}, {c.new_tokens} decode steps: {sum(r.ok for r in c.rows)} of "
                  f"{len(c.rows)} rows equal; totals predicted {c.predicted} measured {c.measured}: "
                  f"{'equal' if c.totals_ok else 'DIFFERENT'}; tokens {c.tokens} (plaintext reference "
                  f"{c.reference_tokens})")
            for r in c.rows:
                if not r.ok:
                    _echo(f"  MISMATCH {r.name}: predicted {r.predicted} measured {r.measured}")
        _echo(f"{'OK' if ok else 'MISMATCH'}: generation on the engine vs {table.name}")
    if not ok:
        raise typer.Exit(1)


def _validate_spu(specs: list[str], context: int, protocol: str, option: Optional[list[str]],
                  timeout: Optional[float], fmt: str) -> None:
    """``validate --against spu``: each spec run in SPU next to the spu-<protocol> estimate."""
    from picost.cost.table_options import parse_option_args
    from picost.model.load import load_spec
    from picost.spu import bridge, validate as spu_validate

    if protocol not in spu_validate.SPU_PROTOCOLS:
        raise UserError(f"unknown SPU protocol '{protocol}'; choose from {', '.join(spu_validate.SPU_PROTOCOLS)}",
                        field="--protocol")
    args = parse_option_args(option)
    options = {**args.get(None, {}), **args.get(f"spu-{protocol}", {})}
    models = [load_spec(ref) for ref in specs]  # bad specs fail fast with a located error
    for model in models:  # and bad options, before any SPU run
        spu_validate.estimate_bytes(model, context, protocol, options)
    bridge.spu_python()
    checks = _engine_checks(models, f"SPU {protocol} runs (whole model, then op by op)",
                            lambda model: spu_validate.check(model, context, protocol, options, timeout))
    _show_engine_checks(checks, fmt, "picost.validate.spu/1", spu_validate.render,
                        f"runs within {spu_validate.TOTAL_TOLERANCE:.0%} in total and "
                        f"{spu_validate.CLASS_TOLERANCE:.0%} per op class")


def _validate_crypten(specs: list[str], context: int, option: Optional[list[str]], timeout: Optional[float],
                      fmt: str) -> None:
    """``validate --against crypten``: each spec run in CrypTen next to the crypten estimate."""
    from picost.cost.table_options import options_for, parse_option_args
    from picost.crypten_engine import bridge, validate as crypten_validate
    from picost.model.load import load_spec

    args = parse_option_args(option)
    other = sorted(set(args) - {None, crypten_validate.TABLE})
    if other:
        raise UserError(f"--option names table '{other[0]}'; --against crypten uses only "
                        f"'{crypten_validate.TABLE}'", field="--option")
    options = options_for(crypten_validate.TABLE, args)
    models = [load_spec(ref) for ref in specs]  # bad specs fail fast with a located error
    for model in models:  # and bad options, before any CrypTen run
        crypten_validate.estimate(model, context, options)
    bridge.crypten_python()
    checks = _engine_checks(models, "CrypTen runs (two processes)",
                            lambda model: crypten_validate.check(model, context, options, timeout))
    _show_engine_checks(checks, fmt, "picost.validate.crypten/1", crypten_validate.render,
                        "runs equal to the crypten table (bytes and rounds, in total and per op class), "
                        f"logits within {crypten_validate.LOGITS_TOLERANCE:.0%}")


def _engine_checks(models: list[Any], label: str, run: Callable[[Any], Any]) -> list[Any]:
    """``run(model)`` for each model under a progress bar."""
    from rich.progress import Progress

    checks = []
    with Progress(transient=True) as progress:
        task = progress.add_task(label, total=len(models))
        for model in models:
            checks.append(run(model))
            progress.update(task, advance=1)
    return checks


def _show_engine_checks(checks: list[Any], fmt: str, schema: str, render: Callable[[list[Any]], Any],
                        verdict: str) -> None:
    """JSON, or the checks' table and a summary line; exit 1 unless every check is ok."""
    ok = all(c.ok for c in checks)
    if fmt == "json":
        from picost.report.render import dump_json

        _echo(dump_json({"schema": schema, "checks": [c.as_dict() for c in checks]}))
    else:
        _print(render(checks))
        _echo(f"{'OK' if ok else 'OUTSIDE TOLERANCE'}: {sum(c.ok for c in checks)} of {len(checks)} {verdict}")
    if not ok:
        raise typer.Exit(1)


mpc_app = typer.Typer(help="The real two-party engine: private runs of a spec.", no_args_is_help=True)
app.add_typer(mpc_app, name="mpc")


@mpc_app.command("run")
def mpc_run(
    spec: str = typer.Argument(..., help="Spec file or shipped spec name."),
    tokens: Optional[str] = typer.Option(None, "--tokens", help="Comma-separated token ids (the client's private prompt; one id for decode specs)."),
    context: Optional[int] = typer.Option(None, "--context", "-T", min=1, help="Instead of --tokens: a prompt of T pseudo-random ids (drawn from --seed)."),
    cached: Optional[int] = typer.Option(None, "--cached", min=1, help="Decode specs: tokens in the KV cache (default: the spec's context_length)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the server's random weights (as the torch reference)."),
    frac_bits: int = typer.Option(16, "--frac-bits", min=8, max=18, help="Fixed-point fractional bits (costs do not depend on it)."),
    timeout: float = typer.Option(ENGINE_TIMEOUT_S, "--timeout", help="Seconds to wait for any message before failing."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address the parties rendezvous at."),
    port: Optional[int] = typer.Option(None, "--port", help="Rendezvous port (default: a free one)."),
    fmt: str = typer.Option("table", "--format", "-f", help="Output: table | json."),
    force: bool = typer.Option(False, "--force", help="Run even if the estimated memory exceeds what is available."),
    option: Optional[list[str]] = typer.Option(None, "--option", help="A picost-2pc option the engine runs: comparison=tables|tree, truncation=exact|local, exp=spline|limit (see `picost protocols show picost-2pc`)."),
) -> None:
    """Run SPEC privately on --tokens (or -T pseudo-random ones): next token, error vs plaintext, per-op cost (measured and predicted)."""
    _choice(fmt, ("table", "json"), "--format")
    _need_torch()
    if (tokens is None) == (context is None):
        raise UserError("give the prompt as --tokens ids or as -T N (pseudo-random ids), one of the two",
                        field="--tokens")
    if tokens is None:
        import random

        from picost.model.load import load_spec

        vocab = load_spec(spec).vocab_size
        picker = random.Random(seed)
        ids = [picker.randrange(vocab) for _ in range(context)]
    else:
        try:
            ids = [int(t) for t in tokens.split(",") if t.strip()]
        except ValueError:
            raise UserError(f"--tokens must be comma-separated integers (got '{tokens}')", field="--tokens") from None
    from picost.mpc import report
    from picost.mpc.launcher import MpcRunError, check_launch, model_job, run_local
    from picost.mpc.validate import check_model

    check_launch(host, port, timeout)
    table = _engine_table("picost-2pc", option)
    job = model_job(spec, ids, seed, frac_bits, cached, force=force, options=dict(table.chosen))
    try:
        run = run_local(job, host=host, port=port, timeout_s=timeout)
    except MpcRunError as exc:
        _mpc_failed(exc)
    result = check_model(spec, ids, seed, run, table, context=job["context"])
    peaks = ", ".join(f"{role} {b / 2**30:.2f}" for role, b in run.peak_rss_bytes.items())
    _show_checked(result, fmt, report.model_json, report.render_model,
                  f"next token: {result.next_token} (plaintext: {result.reference_token}); max |logit error| "
                  f"{result.max_abs_error:.3g}; online {result.wall_s:.1f} s, preprocessing {result.preprocess_s:.1f} s, "
                  f"launch wall time {run.wall_s:.1f} s; peak memory GiB: {peaks}")


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
    engine: Optional[str] = typer.Option(None, "--engine", help="spu | crypten: time representative ops in that engine (its environment, root for the network namespaces) and write a machine profile for --machine; default: picost-2pc's per-kind calibration profile for --calibration."),
) -> None:
    """Measure this machine: with --engine spu|crypten its per-core speed against the tables' reference machine (a profile for `--machine FILE`, a few minutes); without, the picost-2pc engine's compute per op kind (a profile for `estimate --calibration`)."""
    from pathlib import Path

    if engine is not None:
        _calibrate_machine(engine, repeats, out, kinds)
        return
    _need_torch()

    from rich.progress import Progress

    from picost.mpc.measure_compute import CALIBRATION_SHAPES, calibrate as run_calibration
    from picost.mpc.launcher import MpcRunError

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
    _print(calibration_table(profile, out))


def _calibrate_machine(engine: str, repeats: int, out: str, kinds: str | None) -> None:
    """``calibrate --engine``: time the engine's representative ops, fit the per-core speed, write the profile."""
    from pathlib import Path

    from picost.netlab.calibrate_machine import ENGINES, calibrate_machine
    from picost.report.atomic_write import write_all_atomic

    if engine not in ENGINES:
        raise UserError(f"unknown engine '{engine}'; choose from {', '.join(ENGINES)}", field="--engine")
    if kinds is not None:
        raise UserError("--kinds is for picost-2pc's calibration; --engine times a fixed set of ops", field="--kinds")
    target = Path(out)
    if not target.parent.is_dir() or target.is_dir():
        raise UserError("give a file in an existing directory", file=out, field="--out")
    machine = calibrate_machine(engine, repeats)
    try:
        write_all_atomic({target: machine.to_yaml()})
    except OSError as exc:
        raise UserError(f"cannot write the profile: {exc.strerror or exc}", file=out, field="--out") from None
    _echo(f"wrote {out}: {machine.summary()}\n{machine.source}")


def calibration_table(profile: Any, out: str) -> Any:
    """The table `picost calibrate` prints: per row kind, compute_s = fixed + per element x elements."""
    from picost.cost.calibration import elements_expression
    from picost.report.render import Column, rich_table

    rows = [(kind, f"{t.fixed_s:.3g} s", f"{t.per_element_s:.3g} s", elements_expression(kind))
            for kind, t in profile.kinds.items()]
    columns = (Column("kind"), Column("fixed", numeric=True), Column("per element", numeric=True),
               Column("elements", text=True, min_width=12))
    return rich_table(f"Compute seconds per row kind: fixed + per element x elements (written to {out})", columns,
                      rows)


@app.command()
def networks() -> None:
    """List the network presets (bandwidth, RTT, source); a round costs RTT/2 (docs/latency-model.md)."""
    from picost.cost.network import presets
    from picost.report.render import Column, rich_table

    rows = [(n.name, n.summary(), n.description, n.source) for n in presets().values()]
    columns = (Column("name"), Column("link"), Column("what", text=True, min_width=24),
               Column("source", text=True, spill=True, drop=1))
    _print(rich_table("Network presets (picost/cost/networks.yaml)", columns, rows))


@app.command()
def machines() -> None:
    """List the machine presets for --machine (cores per party, placement, per-core speed, source)."""
    from picost.cost.machine import REFERENCE, get_machine, preset_names
    from picost.report.render import Column, rich_table

    rows = []
    for name in preset_names():
        m = REFERENCE if name == "reference" else get_machine(name)
        rows.append((name, f"{m.threads_per_party:g}", "shared host" if m.parties_share_host else "own machine",
                     "?" if m.per_core_speed is None else f"{m.per_core_speed:g}x", m.description, m.source))
    columns = (Column("name"), Column("cores", numeric=True), Column("parties"), Column("speed", numeric=True),
               Column("what", text=True, min_width=24), Column("source", text=True, spill=True, drop=1))
    _print(rich_table("Machine presets (picost/cost/machines.yaml; cores per party, speed per core vs the reference)",
                      columns, rows))


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
        sys.stderr.write(f"error: {printable(str(exc))}\n")
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
from picost.cli.plan import plan as _plan  # noqa: E402
from picost.cli.crossovers import crossovers as _crossovers  # noqa: E402

_register_whatif(app)
app.command()(_plan)
app.command()(_crossovers)


def _unwrap_help(typer_app: typer.Typer) -> None:
    """Give every command its docstring with the line breaks inside paragraphs removed: typer's
    help keeps them, which breaks lines mid-sentence at any terminal width."""
    import inspect

    for info in typer_app.registered_commands:
        if info.help is None and info.callback is not None and info.callback.__doc__:
            info.help = "\n\n".join(" ".join(p.split()) for p in inspect.cleandoc(info.callback.__doc__).split("\n\n"))
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            _unwrap_help(group.typer_instance)


_unwrap_help(app)

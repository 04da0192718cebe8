"""CLI command ``plan``: which protocol is fastest over a grid of bandwidths, RTTs and cores, the
exact boundaries between winners, and what a latency target needs. A thin face over
:func:`picost.analysis.plan.plan_deployment`; output by :mod:`picost.report.plan_output`.
"""

from __future__ import annotations

from typing import Optional

import typer

from picost.cli.whatif import (FMT_HELP, OPTION_HELP, _check_format, _out, _print, _tables, compute_option,
                               machine_option)


def plan(
    spec: str = typer.Argument(..., help="Spec file or shipped spec name."),
    protocol: str = typer.Option(..., "--protocol", "-p", help="Protocol tables, comma-separated (a hybrid: "
                                 "`linear=bumblebee,nonlinear=sigma`; with others, separate items by `;`)."),
    context: Optional[int] = typer.Option(None, "--context", "-T", help="Tokens T (default: the spec's)."),
    new_tokens: Optional[int] = typer.Option(None, "--new-tokens", "-N", help="Plan a generation: the prefill of "
                                             "T tokens, then N decode steps (see --objective)."),
    objective: Optional[str] = typer.Option(None, "--objective", help="With --new-tokens: ttft | per-token | "
                                            "total (default total)."),
    bandwidth: str = typer.Option("10Mbps..10Gbps", "--bandwidth", help="Bandwidths: LOW..HIGH (log-spaced) or "
                                  "one value."),
    rtt: str = typer.Option("0.1ms..200ms", "--rtt", help="Round-trip times: LOW..HIGH (log-spaced) or one value."),
    points: int = typer.Option(50, "--points", help="Grid points per range (bandwidth and RTT)."),
    threads: Optional[str] = typer.Option(None, "--threads", help="Cores per party: N, or A..B (A, 2A, 4A, ..., B); "
                                          "one machine per party unless --machine says otherwise."),
    machine: Optional[str] = machine_option(),
    compute: Optional[str] = compute_option(),
    target: Optional[str] = typer.Option(None, "--target", help="A latency target, e.g. 60s: the least bandwidth "
                                         "(and cores) meeting it at each RTT."),
    option: Optional[list[str]] = typer.Option(None, "--option", help=OPTION_HELP),
    fmt: str = typer.Option("table", "--format", "-f", help=FMT_HELP),
) -> None:
    """Which protocol is fastest where: each protocol's latency at every point of a grid of
    bandwidths and RTTs (and cores per party), the winner and its margin, the exact boundaries
    between winners, and with --target the least bandwidth (and cores) meeting it.

    For a fixed model and table latency = compute + bits / bandwidth + k x RTT (the estimate's
    model), so one estimate per protocol and core count gives every point; the boundaries are
    where two such forms are equal (lines in 1/bandwidth and RTT), not read off the grid."""
    from picost.analysis.plan import check_points, parse_axis, plan_deployment, plan_machines
    from picost.cost.network import parse_duration
    from picost.model.load import load_spec
    from picost.report import plan_output
    from picost.report.render import dump_json, terminal_width

    _check_format(fmt)
    check_points(points)
    bandwidths, rtts = parse_axis(bandwidth, "--bandwidth", points), parse_axis(rtt, "--rtt", points)
    target_s = None if target is None else parse_duration(target, "--target")
    result = plan_deployment(load_spec(spec), _tables(protocol, option), plan_machines(machine, threads, compute),
                             bandwidths, rtts, context, new_tokens, objective, target_s)
    if fmt == "json":
        _out(dump_json(plan_output.json_obj(result)))
    elif fmt == "csv":
        for piece in plan_output.csv_text(result):
            typer.echo(piece, nl=False)
    elif fmt == "md":
        _out(plan_output.markdown(result))
    else:
        _print(plan_output.terminal(result, terminal_width()))

"""CLI command ``crossovers``: every context at which one op class overtakes another in bytes and
in latency, per protocol. A thin face over :func:`picost.analysis.class_crossovers.class_crossovers`."""

from __future__ import annotations

from typing import Optional

import typer

from picost.cli.whatif import (FMT_HELP, OPTION_HELP, _check_format, _networks, _split_list, _tables, compute_option,
                               emit_table, machine_option, threads_option)
from picost.errors import UserError


def crossovers(
    spec: str = typer.Argument(..., help="Spec file or shipped spec name."),
    protocol: str = typer.Option(..., "--protocol", "-p", help="Protocol tables, comma-separated (a hybrid: "
                                 "`linear=bumblebee,nonlinear=sigma`; with others, separate items by `;`)."),
    network: Optional[str] = typer.Option("wan", "--network", "-n", help="Network preset(s) for latency, "
                                          "comma-separated."),
    bandwidth: Optional[str] = typer.Option(None, "--bandwidth", help="Bandwidth override, e.g. 100Mbps."),
    rtt: Optional[str] = typer.Option(None, "--rtt", help="Round-trip time override, e.g. 80ms."),
    max_context: int = typer.Option(16384, "--max-context", help="Largest context T searched (every T from 1)."),
    classes: Optional[str] = typer.Option(None, "--classes", help="Only crossovers between these op classes, "
                                          "comma-separated (e.g. attention_matmul,linear,softmax,activation)."),
    option: Optional[list[str]] = typer.Option(None, "--option", help=OPTION_HELP),
    machine: Optional[str] = machine_option(),
    threads: Optional[int] = threads_option(),
    compute: Optional[str] = compute_option(),
    fmt: str = typer.Option("table", "--format", "-f", help=FMT_HELP),
) -> None:
    """Every context T (up to --max-context) at which one op class's communication or latency
    passes another's, per protocol (latency per network): where attention overtakes the linears,
    softmax the activations, as the context grows."""
    from picost.analysis.class_crossovers import QUANTITIES, class_crossovers
    from picost.analysis.estimate import ROW_CLASSES
    from picost.model.load import load_spec
    from picost.report.render import CLASS_LABELS, Column, human_bytes, human_seconds

    _check_format(fmt)
    wanted = None
    if classes is not None:
        wanted = set(_split_list(classes, "--classes"))
        unknown = sorted(wanted - set(ROW_CLASSES))
        if unknown:
            raise UserError(f"unknown op class {', '.join(unknown)}; classes: {', '.join(ROW_CLASSES)}",
                            field="--classes")
    model, tables = load_spec(spec), _tables(protocol, option, (machine, threads, compute))
    found = class_crossovers(model, tables, _networks(network, bandwidth, rtt, default="wan"), max_context)
    if wanted is not None:
        found = [x for x in found if x.over in wanted and x.under in wanted]
    human = fmt in ("table", "md")

    def shown(x, value: float):
        if not human:
            return value
        return human_bytes(value) if x.quantity == "comm_bytes" else human_seconds(value)

    if human:
        header = [Column("protocol", drop=4), Column("quantity"), Column("network", drop=3), Column("T", numeric=True),
                  Column("overtakes", short=CLASS_LABELS), Column("overtaken", short=CLASS_LABELS),
                  Column("value", numeric=True, drop=2), Column("other", numeric=True, drop=1)]
    else:
        header = ["protocol", "quantity", "network", "T_tokens", "overtakes", "overtaken", "overtakes_value",
                  "overtaken_value"]
    rows = [(x.protocol, QUANTITIES[x.quantity] if human else x.quantity, x.network or "-", x.context, x.over, x.under,
             shown(x, x.over_value), shown(x, x.under_value)) for x in found]
    obj = {"schema": "picost.crossovers/1", "spec": model.name, "max_context": max_context,
           "crossovers": [{"protocol": x.protocol, "quantity": x.quantity, "network": x.network, "context": x.context,
                           "overtakes": x.over, "overtaken": x.under, "overtakes_value": x.over_value,
                           "overtaken_value": x.under_value} for x in found]}
    title = (f"{model.name}: where one op class overtakes another, T = 1 .. {max_context:,} "
             f"(value: bytes or seconds at that T)")
    emit_table(fmt, title, header, rows, obj, [False, False, False, True, False, False, True, True],
               hint="every column: -f csv")

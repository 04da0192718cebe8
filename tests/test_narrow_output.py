"""Every table command is readable in an 80-column terminal and at 200 columns: no line wider
than the terminal, no cell cut with an ellipsis, no number split from its unit, and the
important content still there. The engine commands (validate, mpc run, calibrate) are covered
through their renderers with synthetic rows."""

from __future__ import annotations

import re
from importlib.metadata import version

import pytest
from rich.cells import cell_len
from rich.console import Console
from typer.testing import CliRunner

from picost.cli.main import app
from picost.report.protocol_docs import listing

WIDTHS = (80, 200)
ANSI = re.compile(r"\x1b\[[0-9;]*m")
# a table cell holding only a unit (or a number's prefix) is a number split from its unit
UNIT_ONLY = re.compile(r"(?:[kMGT]?B|[kMGT]?bit/s|ms|s|min|[kMGT]|x|%)")

COMMANDS = {
    "specs": ("specs",),
    "flops": ("flops", "tiny"),
    "flops-layer": ("flops", "gpt2", "--by", "layer"),
    "flops-op": ("flops", "gpt2", "-T", "64", "--by", "op"),
    "flops-symbolic": ("flops", "gpt2", "--symbolic", "--symbols", "T,L,d"),
    "estimate": ("estimate", "gpt2", "-p", "bumblebee", "-n", "wan"),
    "estimate-op": ("estimate", "tiny", "-p", "bumblebee", "-n", "wan", "--by", "op"),
    "estimate-layer": ("estimate", "tiny", "-p", "crypten", "-n", "lan", "--by", "layer"),
    "estimate-block": ("estimate", "gpt2", "-p", "puma", "-n", "wan", "--by", "block"),
    "protocols": ("protocols",),
    "protocols-show": ("protocols", "show", "bumblebee"),
    "networks": ("networks",),
    "sweep": ("sweep", "gpt2", "-p", "bumblebee", "-T", "64,128,256", "-n", "wan"),
    "sweep-grid": ("sweep", "tiny", "-p", "bumblebee,puma", "-T", "64,128"),
    "compare": ("compare", "gpt2", "gpt2-relu", "gpt2-smonly-fused", "-p", "bumblebee", "-n", "wan", "-T", "128"),
    "aero": ("aero", "gpt2", "-p", "bumblebee", "-n", "wan", "-T", "128"),
    "aero-flops": ("aero", "gpt2", "-T", "128"),
    "symbolic": ("symbolic", "gpt2", "-p", "bumblebee", "-n", "wan"),
    "check": ("check", "--comm", "25.3GB", "--latency", "8.2min", "-n", "wan", "--rounds", "300"),
    "help": ("--help",),
    "help-symbolic": ("symbolic", "--help"),
}


def run(width: int, *args: str) -> str:
    res = CliRunner().invoke(app, list(args), env={"COLUMNS": str(width), "FORCE_COLOR": None, "NO_COLOR": "1"})
    assert res.exit_code == 0, (args, res.output, res.exception)
    return ANSI.sub("", res.output)


def render(width: int, renderable) -> str:
    console = Console(width=width, record=True, file=open("/dev/null", "w"), color_system=None)
    console.print(renderable)
    return console.export_text()


def assert_readable(out: str, width: int) -> None:
    """No line wider than ``width``, no ellipsis, no table cell that is only a unit."""
    assert "…" not in out, out
    for line in out.splitlines():
        assert cell_len(line) <= width, f"{cell_len(line)} > {width}: {line!r}"
        if line.startswith("│"):
            for cell in line.strip("│").split("│"):
                assert not UNIT_ONLY.fullmatch(cell.strip()), f"a unit on a line of its own: {line!r}"


def table_rows(out: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("│").split("│")] for line in out.splitlines() if line.startswith("│")]


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", COMMANDS)
def test_every_table_command_fits(name, width):
    assert_readable(run(width, *COMMANDS[name]), width)


@pytest.mark.parametrize("width", WIDTHS)
def test_sweep_keeps_totals_with_units(width):
    out = run(width, *COMMANDS["sweep"])
    rows = table_rows(out)
    assert [r[0] for r in rows] == ["64", "128", "256"]  # T first: one protocol and network go to the title
    assert "under bumblebee over wan" in " ".join(out.split())
    for r in rows:
        assert re.fullmatch(r"\d+\.\d\d GB", r[1]) and re.fullmatch(r"\d+\.\d\d (d|h|min|s|ms)", r[3]), r
        assert all(c.endswith("%") for c in r[4:]) and len(r) >= 6  # the top classes by share
    assert "softmax" in out and re.search(r"\bact(ivation)?\b", out)
    if width == 80:
        assert "-f csv" in out and "not shown" in out
    else:
        assert "not shown" not in out and "elementwise" in out


def test_sweep_grid_keeps_protocol_and_network_columns():
    rows = table_rows(run(80, *COMMANDS["sweep-grid"]))
    assert {(r[0], r[1]) for r in rows} == {(p, n) for p in ("bumblebee", "puma") for n in ("lan", "wan")}


@pytest.mark.parametrize("width", WIDTHS)
def test_estimate_by_class_rows_stay_on_one_line(width):
    out = run(width, *COMMANDS["estimate"])
    rows = table_rows(out)
    from picost.analysis.estimate import estimate

    classes = estimate("gpt2", "bumblebee", "wan").by("class")
    assert len(rows) == len(classes) and all(r[0] for r in rows)  # one line per class: nothing wrapped
    labels = [r[0] for r in rows]
    assert "softmax" in labels and ("attn" in labels or "attention_matmul" in labels)
    if "attn" in labels:
        assert "attn = attention_matmul" in out  # short labels are spelled out under the table
    assert "total online communication" in out and "dominant class: softmax" in out


def test_estimate_by_op_moves_sources_below_the_table():
    out = run(80, *COMMANDS["estimate-op"])
    assert "source (by kind):" in out
    assert "  softmax: measured:" in out


def test_protocols_listing_gives_every_confidence_in_full():
    out = run(80, "protocols")
    flat = " ".join(out.split())
    for name, _, _, confidence in listing(limit=None):
        assert f"{name}: {confidence}" in flat, name
    assert len(table_rows(out)) < 25  # settings wrap over a few lines, not eight


def test_networks_and_specs_keep_their_content():
    out = run(80, "networks")
    assert "400 Mbit/s, RTT 40 ms" in out and "OpenCheetah" in out
    out = run(80, "specs")
    from picost.model.load import shipped_spec_names

    names = {r[0] for r in table_rows(out)}
    assert set(shipped_spec_names()) <= names


def test_help_paragraphs_are_not_broken_mid_sentence():
    out = run(200, "--help")
    sweep = next(line for line in out.splitlines() if line.startswith("│ sweep"))
    assert "op class's share" in sweep


def test_version():
    res = CliRunner().invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output == f"picost {version('picost')}\n"


# -- the engine commands, through their renderers ----------------------------------------------

def _row_checks():
    from picost.mpc.validate import FIELDS, RowCheck

    good = {f: 1234567 for f in FIELDS}
    bad = dict(good, rounds=7)
    return [RowCheck(f"L{i}.attn.softmax.trunc", "softmax", good, good if i else bad, 0.01234) for i in range(3)]


def _model_check():
    from picost.mpc.validate import ModelCheck

    return ModelCheck(spec="tiny-smonly-fused", ids=(1, 2, 3), context=3, phase="prefill", rows=_row_checks(),
                      max_abs_error=1.234e-3, max_abs_logit=12.5, next_token=17, reference_token=17,
                      top2_margin=0.5, wall_s=12.25, op_order_ok=True)


@pytest.mark.parametrize("width", WIDTHS)
def test_validate_and_mpc_run_tables_fit(width):
    from picost.mpc import report
    from picost.mpc.validate import Validation

    parts = report.render_validation(Validation(_row_checks(), [_model_check()], 3.0))
    for part in parts + report.render_model(_model_check()):
        out = render(width, part)
        assert_readable(out, width)
    models = table_rows(render(width, report.models_table([_model_check()])))
    assert models[0][0] == "tiny-smonly-fused" and "3.70 MB" in models[0]  # 3 rows of 1234567 B
    rows = table_rows(render(width, report.rows_table("rows", _row_checks())))
    assert rows[0][-1] == "MISMATCH" and "1234567 != 7" in rows[0]


@pytest.mark.parametrize("width", WIDTHS)
def test_calibrate_table_fits(width):
    from picost.cli.main import calibration_table
    from picost.cost.calibration import KindTime, Profile

    profile = Profile("picost-2pc", "test", {"relu": KindTime(0.0019966380630471524, 4.019056323641451e-06),
                                             "softmax": KindTime(0.04006530347545067, 4.5115887741301156e-05),
                                             "embedding": KindTime(0.01, 1e-8)})
    out = render(width, calibration_table(profile, "/some/rather/long/directory/name/profile.yaml"))
    assert_readable(out, width)
    assert {r[0] for r in table_rows(out)} == {"relu", "softmax", "embedding"}
    assert "tokens*vocab*width" in out and "4.02e-06 s" in out


def test_fit_table_shortens_then_drops_by_priority_and_spills():
    from picost.report.render import CLASS_LABELS, Column, rich_table

    columns = [Column("class", short=CLASS_LABELS), Column("bytes", numeric=True),
               Column("extra", numeric=True, drop=2), Column("more", numeric=True, drop=1),
               Column("why", text=True, spill=True, drop=3)]
    rows = [("attention_matmul", "1.00 GB", "12345678901", "22", "a long reason " * 5)]
    wide = render(200, rich_table("t", columns, rows))
    assert "attention_matmul" in wide and "not shown" not in wide and "why:" not in wide
    narrow = render(36, rich_table("t", columns, rows, hint="every column: -f csv"))
    assert_readable(narrow, 36)
    flat = " ".join(narrow.split())
    assert table_rows(narrow)[0][:2] == ["attn", "1.00 GB"] and "attn = attention_matmul" in flat
    assert "not shown at 36 columns: extra; every column: -f csv" in flat  # 'more' (drop 1) is kept
    assert "why:\n  attention_matmul: a long reason" in narrow  # spilled, keyed by the first column

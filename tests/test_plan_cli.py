"""`picost plan` as a command (every format, bad input as exit 2 naming the option) and its plots
(drawn from the CSV beside them)."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import subprocess
import sys

import pytest

from picost.analysis.plan import parse_axis, plan_deployment, plan_machines
from picost.cost.table_options import load_tables
from picost.model.load import load_spec
from tests.conftest import REPO

RUNNER = r"""
import contextlib, io, json, sys
from picost.cli.main import main
out = []
for argv in json.loads(sys.argv[1]):
    stdout, stderr, code = io.StringIO(), io.StringIO(), 0
    sys.argv = ["picost", *argv]
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            main()
        except SystemExit as exc:
            code = exc.code or 0
    out.append({"code": code, "stdout": stdout.getvalue(), "stderr": stderr.getvalue()})
print(json.dumps(out))
"""


def run_many(*argvs: list[str]) -> list[dict]:
    """Each argv through the CLI's entry point, in one process (the imports paid once)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "80"}
    done = subprocess.run([sys.executable, "-c", RUNNER, json.dumps(argvs)], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


BASE = ["plan", "tiny", "-p", "crypten,puma", "-T", "16", "--points", "4"]
BAD = [
    (["-p", "nosuch"], "--protocol"),
    (["-p", ""], "--protocol"),
    (["--bandwidth", "10Gbps..10Mbps"], "--bandwidth"),
    (["--bandwidth", "-5Mbps"], "--bandwidth"),
    (["--bandwidth", ""], "--bandwidth"),
    (["--bandwidth", "10Mbps.."], "--bandwidth"),
    (["--rtt", "0ms..200ms"], "--rtt"),
    (["--rtt", "1ms..2ms..3ms"], "--rtt"),
    (["--rtt", "80"], "--rtt"),
    (["--objective", "fastest", "--new-tokens", "4"], "--objective"),
    (["--objective", "ttft"], "--objective"),
    (["--new-tokens", "0"], "--new-tokens"),
    (["--threads", "64..1"], "--threads"),
    (["--threads", "0"], "--threads"),
    (["--threads", "many"], "--threads"),
    (["--compute", "none", "--threads", "4"], "--compute"),
    (["--target", "0s"], "--target"),
    (["--target", "soon"], "--target"),
    (["--points", "1"], "--points"),
    (["-f", "xml"], "--format"),
    (["-T", "0"], "--context"),
]


def test_bad_input_is_one_message_naming_the_option_and_exit_2():
    results = run_many(*[BASE + args for args, _ in BAD])
    wrong = []
    for (args, option), r in zip(BAD, results):
        lines = r["stderr"].strip().splitlines()
        if r["code"] != 2 or len(lines) != 1 or option.lstrip("-") not in lines[0] or "Traceback" in r["stderr"]:
            wrong.append((args, r["code"], r["stderr"][-300:]))
    assert not wrong


@pytest.fixture(scope="module")
def outputs():
    args = ["plan", "gpt2", "-p", "bumblebee,puma,crypten,spu-semi2k", "-T", "128", "--points", "9",
            "--threads", "8..32", "--target", "5min"]
    table, js, csv_text, md = run_many(*[args + ["-f", f] for f in ("table", "json", "csv", "md")])
    for r in (table, js, csv_text, md):
        assert r["code"] == 0, r["stderr"]
    return table["stdout"], json.loads(js["stdout"]), csv_text["stdout"], md["stdout"]


def test_table_fits_80_columns_and_has_map_boundaries_and_target(outputs):
    table = outputs[0]
    assert max(len(line) for line in table.splitlines()) <= 80
    assert "boundaries (exact" in table and "least bandwidth to meet the target" in table
    assert "fewest cores per party" in table


def test_json_points_follow_the_forms_and_csv_equals_json(outputs):
    _, obj, csv_text, _ = outputs
    assert obj["schema"] == "picost.plan/1"
    columns, rows = obj["points"]["columns"], obj["points"]["rows"]
    assert len(rows) == 9 * 9 * len(obj["machines"]) == 9 * 9 * 3
    forms = {m["machine"]["threads_per_party"]: m["forms"] for m in obj["machines"]}
    for row in rows:
        point = dict(zip(columns, row))
        form = forms[point["threads"]]
        lat = {p: point[f"latency_s:{p}"] for p in obj["protocols"]}
        for p, f in form.items():
            want = f["compute_s"] + f["bits"] / point["bandwidth_bps"] + f["rtt_factor"] * point["rtt_s"]
            assert math.isclose(lat[p], want, rel_tol=1e-12)
        assert point["winner"] == min(lat, key=lat.get)
        assert math.isclose(point["margin"], sorted(lat.values())[1] / min(lat.values()), rel_tol=1e-12)
    parsed = list(csv.reader(io.StringIO(csv_text)))
    assert parsed[0] == columns and len(parsed) - 1 == len(rows)
    for got, want in zip(parsed[1:], rows):
        for g, w in zip(got, want):
            if isinstance(w, float):
                assert math.isclose(float(g), w, rel_tol=1e-12)


def test_markdown_has_every_point(outputs):
    md = outputs[3]
    assert md.count("\n| ") >= 9 * 9 * 3
    assert "### 8 cores per party" in md and "### 32 cores per party" in md


def test_python_and_cli_imports_stay_light():
    code = ("import sys, picost, picost.cli.main; heavy = {'pandas', 'matplotlib', 'torch', 'sympy', 'numpy'}; "
            "print(sorted(heavy & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


@pytest.fixture(scope="module")
def plan():
    return plan_deployment(load_spec("gpt2"), load_tables(["puma", "crypten", "spu-semi2k"]),
                           plan_machines(None, 32), parse_axis("10Mbps..10Gbps", "--bandwidth", 20),
                           parse_axis("0.1ms..200ms", "--rtt", 20), 128)


def test_winner_map_is_drawn_from_its_csv(plan):
    from picost.report import plot_data, plots
    from picost.report.plan_figures import winner_map_figure

    text = plot_data.plan_map_csv(plan)
    figure = winner_map_figure(text, plan.protocols, "map")
    assert set(figure.regions) == {plan.protocols[r.protocol] for r in plan.regions[0]}
    assert len(figure.boundaries) == len(plan.boundaries[0]) >= 2
    assert {n for n, _, _ in figure.networks} == set(plan.presets_inside()) >= {"lan", "wan", "wan400"}
    for b in plan.boundaries[0]:  # each drawn boundary runs between its exact ends (RTT in ms)
        xs, ys = figure.boundaries[f"{plan.protocols[b.first]}|{plan.protocols[b.second]}"]
        assert math.isclose(xs[0], b.ends[0][0], rel_tol=1e-9) and math.isclose(ys[-1], 1e3 * b.ends[1][1], rel_tol=1e-9)
    fig = plots.draw(figure)
    try:
        ax = fig.axes[0]
        assert ax.get_xscale() == ax.get_yscale() == "log"
        assert len(ax.patches) == len(figure.regions)
        assert len(ax.texts) == len(figure.networks)
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)


def test_curves_are_drawn_from_their_csv(plan):
    from picost.report import plot_data, plots
    from picost.report.plan_figures import curves_figure

    text = plot_data.plan_curves_csv(plan, {"lan": 3e-4, "wan": 0.08})
    figure = curves_figure(text, "curves")
    assert [p.title for p in figure.panels] == ["RTT 0.30 ms (lan)", "RTT 80.00 ms (wan)"]
    scale = {"h": 3600, "min": 60, "s": 1, "ms": 1e-3}[figure.unit]
    for panel, rtt in zip(figure.panels, (3e-4, 0.08)):
        for p, form in zip(plan.protocols, plan.forms[0]):
            for b, y in zip(panel.bandwidth_bps, panel.latency[p]):
                assert math.isclose(y * scale, form.latency_s(b, rtt), rel_tol=1e-9)
    fig = plots.draw(figure)
    try:
        assert len(fig.axes) == 2 and all(len(ax.lines) == len(plan.protocols) for ax in fig.axes)
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)

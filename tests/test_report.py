"""Markdown reports: structure, plots and their data, atomic writing, determinism, bad options,
and staleness of the committed example reports."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from picost.errors import UserError
from picost.analysis.estimate import estimate_lowered
from picost.model.lower import lower
from picost.cost.network import get_network
from picost.cost.protocol_table import load_protocol
from picost.report.markdown_report import ReportConfig, build_report, load_examples, write_report
from picost.model.load import load_spec

REPO = Path(__file__).resolve().parent.parent
FIXTURE = str(Path(__file__).parent / "data" / "protocols" / "sweepfix.yaml")
SECTIONS = ["## Setting and assumptions", "## Summary", "## Per-class breakdown", "## Per-layer breakdown",
            "## Context sweep", "## Formulas and sources", "## Uncosted ops"]


def config(**kw) -> ReportConfig:
    base = dict(name="r", specs=("tiny",), protocols=(FIXTURE,), networks=("lan", "wan"), context=16,
                sweep="4,8,...,64")
    return ReportConfig(**{**base, **kw})


def test_report_structure_tables_and_images(tmp_path):
    md = tmp_path / "r.md"
    r = build_report(config(protocols=(FIXTURE, "crypten")), md)
    write_report(r)
    text = md.read_text()
    positions = [text.index(s) for s in SECTIONS]
    assert positions == sorted(positions)
    # summary: one row per protocol x network, with the estimate's totals
    est = estimate_lowered(lower(load_spec("tiny"), 16), load_protocol("crypten"), get_network("wan"))
    from picost.report.render import human_bytes, human_seconds

    assert "| tiny | crypten | wan | 16 | " in text
    assert human_bytes(est.totals.comm_bytes) in text and human_seconds(est.totals.latency_s) in text
    # images referenced relative to the markdown exist and are PNGs, with their data beside them
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert images == ["r/comm-tiny.png", "r/latency-tiny-lan.png", "r/latency-tiny-wan.png"]
    for rel in images:
        png = md.parent / rel
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert png.with_suffix(".csv").is_file()
    # per-layer table has every layer; the sweep table every context
    assert "| L0 |" in text and "| L1 |" in text
    for T in (4, 8, 16, 32, 64):
        assert f"\n| {T} |" in text
    # formulas of every op kind used, with sources
    assert "| `softmax` | `200*rows*cols` | `3*ceil(log2(cols)) + 4` |" in text
    assert "None: every op of every model is costed" in text


def test_plotted_data_equals_the_sweep(tmp_path):
    """The latency CSVs hold, per protocol and T, each class's latency and the total, as the
    point-by-point estimate gives them."""
    from picost.report.plot_data import read_csv

    r = build_report(config(protocols=(FIXTURE, "crypten")), tmp_path / "r.md", plots=False)
    tables = {"sweepfix": load_protocol(FIXTURE), "crypten": load_protocol("crypten")}
    for net in ("lan", "wan"):
        rows = read_csv(r.files[tmp_path / "r" / f"latency-tiny-{net}.csv"])
        assert [(row["protocol"], row["T"]) for row in rows] == [(p, str(T)) for p in tables for T in (4, 8, 16, 32, 64)]
        for row in rows:
            est = estimate_lowered(lower(load_spec("tiny"), int(row["T"])), tables[row["protocol"]], get_network(net))
            by_class = {c: g.latency_s for c, g in est.by("class").items()}
            assert set(by_class) - {"total"} <= set(row), "a class of the estimate is missing from the CSV"
            for c in set(row) - {"protocol", "T", "total"}:
                assert float(row[c]) == pytest.approx(by_class.get(c, 0.0), rel=1e-9, abs=1e-15), c
            assert float(row["total"]) == pytest.approx(est.totals.latency_s, rel=1e-9)
    assert not any(p.suffix == ".png" for p in r.files)


def test_uncosted_ops_are_listed(tmp_path):
    r = build_report(config(protocols=("sigma",)), tmp_path / "r.md", plots=False)
    section = r.markdown.split("## Uncosted ops")[1]
    assert "| tiny | sigma | embedding | 1 | embed.tok |" in section
    est = estimate_lowered(lower(load_spec("tiny"), 16), load_protocol("sigma"), get_network("lan"),
                           allow_uncosted=True)
    kinds = {r.kind for r in est.rows if not r.costed}
    assert all(f"| tiny | sigma | {k} |" in section for k in kinds)


def test_aero_report_has_the_ablation(tmp_path):
    r = build_report(config(specs=("gpt2",), aero=True, context=128, sweep="64,128", protocols=(FIXTURE,),
                            networks=("wan",)), tmp_path / "a.md", plots=False)
    assert "## AERO ablation" in r.markdown and "SM: 144 x R^{128x128}" in r.markdown
    assert "| SM-only + fusion + 6 FFNs pruned |" in r.markdown
    assert "training loss only" in r.markdown


def test_report_is_deterministic(tmp_path):
    a = build_report(config(), tmp_path / "r.md", plots=False)
    b = build_report(config(), tmp_path / "r.md", plots=False)
    assert a.files == b.files
    # the output location (a temporary directory here) never leaks into the text
    assert str(tmp_path) not in a.markdown and "pytest-of" not in a.markdown


def test_atomic_writing_leaves_nothing_on_error(tmp_path, monkeypatch):
    md = tmp_path / "r.md"
    md.write_text("old report\n")
    with pytest.raises(UserError):
        build_report(config(protocols=("nosuchprotocol",)), md)
    assert md.read_text() == "old report\n" and sorted(p.name for p in tmp_path.iterdir()) == ["r.md"]
    import picost.report.atomic_write as atomic

    built = build_report(config(), md, plots=False)
    # a failure while staging (here: content that cannot be written) leaves nothing behind
    broken = type(built)(built.markdown_path, {**built.files, tmp_path / "r" / "bad.csv": object()})
    with pytest.raises(TypeError):
        write_report(broken)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.md"] and md.read_text() == "old report\n"
    # a failure while renaming into place keeps the old report and removes the new empty directory
    monkeypatch.setattr(atomic.os, "replace", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(UserError, match="disk full"):
        write_report(built)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.md"] and md.read_text() == "old report\n"
    monkeypatch.undo()
    write_report(built)
    assert md.read_text() == built.markdown and (tmp_path / "r" / "latency-tiny-lan.csv").is_file()
    assert (md.stat().st_mode & 0o777) == 0o666 & ~atomic._umask()


def test_report_cli_and_bad_options(cli, tmp_path):
    out = tmp_path / "c.md"
    ok = cli("report", "tiny", "-p", FIXTURE, "-n", "wan", "-T", "8", "--sweep", "4,8", "-o", str(out))
    assert ok.returncode == 0, ok.stderr
    assert out.is_file() and (tmp_path / "c" / "latency-tiny-wan.png").is_file()
    for args in (["tiny", "-p", FIXTURE, "-o", str(tmp_path / "x.txt")],
                 ["tiny", "-p", FIXTURE, "-o", str(tmp_path / "nodir" / "x.md")],
                 ["tiny", "-p", FIXTURE, "--sweep", "4,x", "-o", str(tmp_path / "y.md")],
                 ["tiny", "-p", FIXTURE, "-n", "moon", "-o", str(tmp_path / "y.md")],
                 ["tiny", "-o", str(tmp_path / "y.md")],
                 ["tiny", "tiny", "-p", FIXTURE, "-o", str(tmp_path / "y.md")],
                 ["tiny", "-p", f"{FIXTURE},{FIXTURE}", "-o", str(tmp_path / "y.md")],
                 ["tiny", "--all"]):
        bad = cli("report", *args)
        assert bad.returncode == 2 and "Traceback" not in bad.stderr, (args, bad.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c", "c.md"]


def test_examples_file_errors_are_located(tmp_path):
    f = tmp_path / "examples.yaml"
    f.write_text("one:\n  specs: [tiny]\n  protocolz: [crypten]\n")
    with pytest.raises(UserError) as exc:
        load_examples(f)
    assert exc.value.line == 3 and exc.value.field == "one.protocolz"


EXAMPLES = REPO / "reports" / "examples.yaml"


@pytest.mark.skipif(not EXAMPLES.is_file(), reason="no committed example reports")
@pytest.mark.parametrize("example", load_examples(EXAMPLES) if EXAMPLES.is_file() else [], ids=lambda c: c.name)
def test_committed_reports_are_fresh(example, monkeypatch):
    """Fails when a committed report differs from what picost now generates: regenerate with
    `python -m picost report --all` (markdown and plotted data compared; PNG bytes are not)."""
    monkeypatch.chdir(REPO)
    md = Path("reports") / f"{example.name}.md"
    built = build_report(example, md, plots=False)
    assert md.is_file(), f"{md} is missing: run `python -m picost report --all`"
    assert md.read_text() == built.markdown, f"{md} is stale: run `python -m picost report --all`"
    for path, content in built.data_files().items():
        assert path.read_text() == content, f"{path} is stale: run `python -m picost report --all`"
        assert path.with_suffix(".png").is_file(), f"{path.with_suffix('.png')} is missing"
    assets = md.parent / example.name
    expected = {p.name for p in built.data_files()} | {p.with_suffix(".png").name for p in built.data_files()}
    left_over = sorted(p.name for p in assets.iterdir()) if assets.is_dir() else []
    assert set(left_over) == expected, f"{assets} holds files the report no longer writes: {sorted(set(left_over) - expected)}"


def test_generation_section_csv_sums_to_the_generation_totals(tmp_path):
    import picost
    from picost.report.plot_data import read_csv

    md = tmp_path / "g.md"
    built = build_report(config(protocols=(FIXTURE, "crypten"), new_tokens="1,2,...,8"), md, plots=False)
    text = built.markdown
    assert text.index("## Context sweep") < text.index("## Generation") < text.index("## Formulas and sources")
    assert "--new-tokens 1,2,...,8" in text and "a generation of N = 1,2,...,8 new tokens" in text
    for network in ("lan", "wan"):
        rows = read_csv(built.files[tmp_path / "g" / f"per-token-tiny-{network}.csv"])
        assert [int(r["N"]) for r in rows] == [1, 2, 4, 8] * 2
        for r in rows:
            classes = [k for k in r if k not in ("protocol", "N", "total")]
            assert sum(float(r[c]) for c in classes) == pytest.approx(float(r["total"]), rel=1e-9)
            g = picost.estimate("tiny", r["protocol"] if r["protocol"] != "sweepfix" else FIXTURE, network, 16,
                                new_tokens=int(r["N"]))
            assert float(r["total"]) == pytest.approx(g.mean_token_s, rel=1e-9)
            assert g.ttft_s + int(r["N"]) * float(r["total"]) == pytest.approx(g.totals()["latency_s"], rel=1e-9)
    assert "![mean per-token latency by op class vs N over wan, tiny](g/per-token-tiny-wan.png)" in text
    from picost.report.figures import N_LABEL, class_figure

    plan = class_figure(built.files[tmp_path / "g" / "per-token-tiny-wan.csv"], "per_token", "t")
    assert plan.x_label == N_LABEL and plan.panels[0].T == (1, 2, 4, 8) and plan.quantity == "mean per-token latency"
    one = build_report(config(new_tokens=4), tmp_path / "one.md", plots=False)  # one N: the table, no plot
    assert "## Generation" in one.markdown and not any("per-token" in p.name for p in one.files)
    with pytest.raises(UserError) as exc:
        build_report(config(new_tokens="0"), tmp_path / "bad.md", plots=False)
    assert exc.value.field == "--new-tokens"


def test_examples_accept_new_tokens(tmp_path):
    f = tmp_path / "examples.yaml"
    f.write_text("one:\n  specs: [tiny]\n  protocols: [crypten]\n  networks: [wan]\n  new_tokens: 1,4,16\n")
    (c,) = load_examples(f)
    assert c.new_tokens == "1,4,16" and "--new-tokens 1,4,16" in c.command()


@pytest.mark.parametrize("seconds, text", [(0.25, "250.00 ms"), (59, "59.00 s"), (119.9, "119.90 s"),
                                           (120, "2.00 min"), (7199, "119.98 min"), (7200, "2.00 h"),
                                           (39182.39 * 60, "27.21 d")])
def test_durations_print_in_the_largest_sensible_unit(seconds, text):
    """Issue 23: 39,182.39 min (27 days) printed as minutes; two or more of a unit is that unit."""
    from picost.report.render import human_seconds

    assert human_seconds(seconds) == text


def test_report_without_matplotlib_says_which_extra_before_any_work(tmp_path):
    """Issue 23: after the README's plain install, `picost report` crashed with a traceback only
    after computing everything; now it names the extra at once (exit 2, nothing written)."""
    import subprocess
    import sys

    code = ("import sys, importlib.util\n"
            "real = importlib.util.find_spec\n"
            "importlib.util.find_spec = lambda name, *a: None if name == 'matplotlib' else real(name, *a)\n"
            "from picost.cli.main import main\n"
            f"sys.argv = ['picost', 'report', 'tiny', '-p', 'crypten', '-o', {str(tmp_path / 'r.md')!r}]\n"
            "main()\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stderr
    assert ".[report]" in res.stderr and "matplotlib" in res.stderr and "Traceback" not in res.stderr
    assert not list(tmp_path.iterdir())


def test_report_lists_the_crossovers_of_attention_and_softmax(tmp_path):
    """Issue 23: the example reports show where attention passes the linears and softmax the
    activations; the rows are picost crossovers' at the sweep's range."""
    from picost.analysis.class_crossovers import class_crossovers

    md = tmp_path / "r.md"
    r = build_report(config(protocols=("crypten",)), md, plots=False)
    text = r.markdown
    section = text[text.index("## Crossovers"):text.index("## Formulas")]
    expected = [x for x in class_crossovers(load_spec("tiny"), [load_protocol("crypten")],
                                            [get_network(n) for n in ("lan", "wan")], 64, allow_uncosted=True)
                if {x.over, x.under} in ({"attention_matmul", "linear"}, {"softmax", "activation"})]
    assert expected
    for x in expected:
        assert f"| {x.over} > {x.under} | {x.context} |" in section, x
    assert section.count("\n| crypten |") == len(expected)

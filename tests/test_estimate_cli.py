"""`picost estimate` and `picost protocols` on the command line: outputs, schema, exit codes."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from picost.analysis.estimate import estimate
from tests.conftest import run_cli

FX = str(Path(__file__).parent / "data" / "protocols" / "fixture2pc.yaml")
PARTIAL = str(Path(__file__).parent / "data" / "protocols" / "fixture_partial.yaml")

ROW_KEYS = {"name", "kind", "class", "layer", "block", "flops", "costed", "comm_bytes", "bytes_client_to_server",
            "bytes_server_to_client", "rounds", "compute_s", "comm_s", "latency_s", "offline_bytes", "setup_bytes",
            "share", "source", "formulas", "dims", "uncosted_reason", "table", "notes", "compute_beyond"}
TOTAL_KEYS = {"rows", "costed", "uncosted", "flops", "comm_bytes", "bytes_client_to_server",
              "bytes_server_to_client", "rounds", "compute_s", "comm_s", "latency_s", "offline_bytes",
              "setup_bytes", "compute_rows", "offline_rows", "setup_rows", "share"}


def test_json_schema_and_values():
    res = run_cli("estimate", "tiny", "--protocol", FX, "--network", "wan", "--context", "8", "--format", "json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["schema"] == "picost.estimate/1"
    assert set(data) == {"schema", "spec", "context", "phase", "batch_size", "protocol", "network", "machine",
                         "latency_model", "totals", "by_layer", "by_block", "by_class", "rows"}
    assert set(data["totals"]) == TOTAL_KEYS | {"bytes_bound_s", "dominant_class", "extrapolated_rows",
                                                "extrapolated_share"}
    assert data["machine"]["name"] == "reference" and data["machine"]["reference"] is True
    assert all(set(r) == ROW_KEYS for r in data["rows"])
    assert all(set(t) == TOTAL_KEYS for key in ("by_layer", "by_block", "by_class") for t in data[key].values())
    assert data["network"]["rtt_s"] == pytest.approx(0.08) and data["network"]["round_s"] == pytest.approx(0.04)
    est = estimate("tiny", FX, "wan", context=8)
    assert data["totals"]["comm_bytes"] == est.totals.comm_bytes and data["totals"]["rounds"] == est.totals.rounds
    assert data["totals"]["latency_s"] == pytest.approx(est.totals.latency_s, rel=1e-12)
    assert [r["name"] for r in data["rows"]] == [r.name for r in est.rows]
    assert data["rows"][0]["formulas"]["comm_bytes"] == "tokens * vocab"
    assert data["rows"][0]["dims"] == {"tokens": 8, "vocab": 256, "width": 64}
    assert data["rows"][0]["comm_bytes"] == 8 * 256 and data["protocol"]["params"] == {"ell": 64}
    trunc = next(r for r in data["rows"] if r["name"] == "L0.attn.qkv.trunc")
    assert trunc["dims"] == {"n": 8 * 192} and trunc["comm_bytes"] == 2 * 8 * 192
    assert sum(r["comm_bytes"] for r in data["rows"]) == data["totals"]["comm_bytes"]


def test_table_ends_with_the_summary():
    res = run_cli("estimate", "tiny", "-p", FX, "-n", "wan", "-T", "8")
    assert res.returncode == 0, res.stderr
    est = estimate("tiny", FX, "wan", context=8)
    out = res.stdout
    for needle in ("total online communication", "rounds: " + f"{est.totals.rounds:,}", "dominant class: "
                   + est.dominant_class, "lower bound on latency from bytes alone"):
        assert needle in out, out
    assert f"{est.totals.comm_bytes:,} bytes" in out


@pytest.mark.parametrize("by, first_col", [("op", "name"), ("layer", "layer"), ("block", "block"), ("class", "class")])
def test_csv_groupings_sum_to_the_total(by, first_col):
    res = run_cli("estimate", "tiny", "-p", FX, "-n", "lan", "--by", by, "--format", "csv")
    assert res.returncode == 0, res.stderr
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert list(rows[0])[0] == first_col
    assert sum(int(r["comm_bytes"]) for r in rows) == estimate("tiny", FX, "lan").totals.comm_bytes


def test_allow_uncosted_rows_say_so_in_every_format():
    base = ("estimate", "tiny", "-p", PARTIAL, "-n", "lan", "--allow-uncosted", "--by", "op")
    table = run_cli(*base, "--format", "md")
    assert table.returncode == 0 and "| L0.ffn.act | gelu_tanh | activation | UNCOSTED |" in table.stdout
    assert "UNCOSTED rows" in table.stdout
    rows = list(csv.DictReader(io.StringIO(run_cli(*base, "--format", "csv").stdout)))
    act = next(r for r in rows if r["name"] == "L0.ffn.act")
    assert act["costed"] == "False" and act["comm_bytes"] == "" and act["source"].startswith("UNCOSTED")
    data = json.loads(run_cli(*base, "--format", "json").stdout)
    act = next(r for r in data["rows"] if r["name"] == "L0.ffn.act")
    assert act["costed"] is False and act["comm_bytes"] is None and act["uncosted_reason"]
    assert data["totals"]["uncosted"] > 0
    groups = run_cli(*base[:-2], "--by", "class", "--format", "md").stdout
    assert "| activation | 2 (2 UNCOSTED) | UNCOSTED | UNCOSTED |" in groups
    assert "| head | 2 (1 UNCOSTED) | >= 256 B | >= 1 |" in groups
    rich = run_cli(*base[:-2])
    assert "UNCOSTED" in rich.stdout and "WARNING" in rich.stdout


def test_uncosted_without_flag_exits_2():
    res = run_cli("estimate", "tiny", "-p", PARTIAL, "-n", "lan")
    assert res.returncode == 2
    assert "cannot cost op L0.attn.qk.trunc" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.parametrize("args, needle", [
    (("-p", "nosuchprotocol", "-n", "wan"), "no such protocol table file or shipped protocol 'nosuchprotocol'"),
    (("-p", FX, "-n", "wam"), "unknown network 'wam'; did you mean wan"),
    (("-p", FX, "-n", "wan", "--bandwidth", "100mbps"), "unknown bandwidth unit 'mbps'"),
    (("-p", FX, "-n", "wan", "--rtt", "80"), "has no unit"),
    (("-p", FX), "give a network preset"),
    (("-p", FX, "-n", "wan", "--by", "head"), "unknown value 'head' for --by"),
    (("-p", FX, "-n", "wan", "--format", "xml"), "unknown value 'xml' for --format"),
])
def test_bad_input_exits_2_with_one_message(args, needle):
    res = run_cli("estimate", "tiny", *args)
    assert res.returncode == 2, res.stdout
    assert needle in res.stderr and "Traceback" not in res.stderr
    assert res.stdout == ""


def test_malformed_table_exits_2_with_line(tmp_path):
    bad = Path(FX).read_text().replace('rounds: "ceil(log2(cols))"', 'rounds: "ceil(log2(cols)) + foo"')
    path = tmp_path / "fixture2pc.yaml"
    path.write_text(bad)
    line = next(i for i, text in enumerate(bad.splitlines(), 1) if "+ foo" in text)
    res = run_cli("estimate", "tiny", "-p", str(path), "-n", "wan")
    assert res.returncode == 2
    assert f"fixture2pc.yaml:{line}, field 'ops.argmax.rounds'" in res.stderr and "unknown symbol 'foo'" in res.stderr


def test_bandwidth_and_rtt_without_preset():
    res = run_cli("estimate", "tiny", "-p", FX, "--bandwidth", "8Mbps", "--rtt", "2ms", "-f", "json")
    data = json.loads(res.stdout)
    assert data["network"]["name"] == "custom" and data["network"]["bandwidth_bps"] == pytest.approx(8e6)


def test_protocols_list_and_show():
    res = run_cli("protocols")
    assert res.returncode == 0 and "plaintext" in res.stdout
    show = run_cli("protocols", "show", FX)
    assert show.returncode == 0
    assert "(m*k + k*n) * ell / 8" in show.stdout and "derived: fixture" in show.stdout and "fx §9" in show.stdout
    md = run_cli("protocols", "show", "plaintext", "--format", "md")
    docs = Path(__file__).resolve().parent.parent / "docs" / "protocols" / "plaintext.md"
    assert md.stdout == docs.read_text(encoding="utf-8")
    missing = run_cli("protocols", "show", "bumblebe")
    assert missing.returncode == 2 and "no such protocol" in missing.stderr


def test_networks_lists_presets_with_sources():
    res = run_cli("networks")
    assert res.returncode == 0
    for needle in ("wan400", "400 Mbit/s, RTT 40 ms", "OpenCheetah", "lan-sirnn", "3.016 Gbit/s"):
        assert needle in res.stdout, res.stdout


@pytest.mark.parametrize("fmt", ["table", "json"])
def test_estimate_cli_does_not_import_heavy_modules(fmt, monkeypatch):
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")  # what `python -X importtime` does
    res = run_cli("estimate", "tiny", "-p", FX, "-n", "wan", "-f", fmt)
    assert res.returncode == 0, res.stderr
    imported = {line.split("|")[-1].strip().split(".")[0] for line in res.stderr.splitlines()
                if line.startswith("import time:")}
    assert "picost" in imported
    assert not imported & {"sympy", "pandas", "numpy", "torch", "matplotlib"}, sorted(imported)


def test_the_summary_names_the_kinds_whose_rows_have_no_compute(cli):
    import re

    text = cli("estimate", "tiny", "-p", "plaintext", "-n", "lan", "-T", "8")
    data = json.loads(cli("estimate", "tiny", "-p", "plaintext", "-n", "lan", "-T", "8", "-f", "json").stdout)
    without = sorted({r["kind"] for r in data["rows"] if r["compute_s"] is None and r["costed"]})
    with_compute = {r["kind"] for r in data["rows"] if r["compute_s"] is not None}
    assert without and with_compute  # plaintext times only its products
    named = re.search(r"the others\s+\(([^)]*)\)", " ".join(text.stdout.split())).group(1)
    assert named.split(", ") == without


def test_the_transfer_time_column_is_not_called_comm():
    """Issue 23: 'comm' was a time in estimate tables next to a bytes column and bytes elsewhere;
    the time to move the bytes is 'transfer', the bytes are 'bytes'."""
    for by in ("op", "class"):
        res = run_cli("estimate", "tiny", "-p", "crypten", "-n", "wan", "--by", by, "-f", "md")
        assert res.returncode == 0, res.stderr
        header = res.stdout.splitlines()[2] if res.stdout.startswith("#") else next(
            line for line in res.stdout.splitlines() if line.startswith("|"))
        cells = [c.strip() for c in header.strip("|").split("|")]
        assert "transfer" in cells and "bytes" in cells and "comm" not in cells, cells

"""Sweeps equal point-by-point estimates; contexts parse; comparisons give the right ratios."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from picost.analysis.compare import compare, savings
from picost.errors import UserError
from picost.analysis.estimate import estimate_lowered
from picost.model.lower import lower
from picost.cost.network import get_network
from picost.cost.protocol_table import load_protocol
from picost.model.load import load_spec
from picost.analysis.sweep import parse_contexts, sweep
from tests.conftest import run_cli

FIXTURE = str(Path(__file__).parent / "data" / "protocols" / "sweepfix.yaml")
CONTEXTS = [1, 2, 3, 7, 64, 100, 127, 128, 129, 1000, 2**13, 2**15]


@pytest.mark.parametrize("spec_name,protocol", [("gpt2", FIXTURE), ("llama3-8b", FIXTURE), ("gpt2", "crypten"),
                                                ("gpt2-smonly-fused-pruned", "crypten"), ("gpt2", "bumblebee"),
                                                ("llama3-8b", "puma"), ("tiny", "picost-2pc")])  # 2 delays/round
def test_sweep_equals_point_by_point_estimates(spec_name, protocol):
    spec, table = load_spec(spec_name), load_protocol(protocol)
    nets = [get_network("lan"), get_network("wan", rtt="10ms")]
    result = sweep(spec, CONTEXTS, [table], nets, allow_uncosted=True)
    assert len(result) == len(CONTEXTS) * len(nets)
    for i in range(len(result)):
        T, net = int(result.context[i]), {n.name: n for n in nets}[result.network[i]]
        est = estimate_lowered(lower(spec, T), table, net, allow_uncosted=True)
        assert result.total["comm_bytes"][i] == pytest.approx(est.totals.comm_bytes, rel=1e-12)
        assert result.total["rounds"][i] == est.totals.rounds  # exact, also through ceil(log2(T))
        assert result.total["latency_s"][i] == pytest.approx(est.totals.latency_s, rel=1e-9)
        by_class = est.by("class")
        for c in result.classes:
            expected = by_class[c].latency_s if c in by_class else 0
            assert result.by_class[c]["latency_s"][i] == pytest.approx(expected, rel=1e-9, abs=1e-12)
            assert result.share(c)[i] == pytest.approx(expected / est.totals.latency_s, rel=1e-9, abs=1e-12)


def test_rounds_exact_at_every_power_of_two():
    # ceil(log2(cols)) in floating point is wrong at some powers of two unless rewritten as log2
    spec, table = load_spec("tiny"), load_protocol(FIXTURE)
    contexts = [2**k for k in range(0, 31)] + [2**k + 1 for k in range(1, 31)]
    result = sweep(spec, contexts, [table], [get_network("lan")])
    for T, rounds in zip(contexts, result.total["rounds"]):
        if T <= 2**12:
            assert rounds == estimate_lowered(lower(spec, T), table, get_network("lan")).totals.rounds
    softmax_rounds = result.by_class["softmax"]["rounds"]
    for T, r in zip(contexts, softmax_rounds):
        log2_ceil = (T - 1).bit_length()
        assert r == 2 * (3 * log2_ceil + 4)  # 2 layers of 3*ceil(log2(T)) + 4


def test_formula_outside_its_domain_is_an_error_not_nan(tmp_path):
    text = Path(FIXTURE).read_text().replace('rounds: "3*ceil(log2(cols)) + 4"', 'rounds: "ceil(log2(cols - 1))"')
    text = text.replace("name: sweepfix", "name: domainfix")
    table = tmp_path / "domainfix.yaml"
    table.write_text(text)
    with pytest.raises(UserError, match="T = 1"):  # log2(0) at T = 1
        sweep(load_spec("tiny"), [1, 2, 3], [load_protocol(str(table))], [get_network("lan")])
    assert len(sweep(load_spec("tiny"), [2, 3], [load_protocol(str(table))], [get_network("lan")])) == 2


def test_sweep_orders_points_protocol_network_context():
    result = sweep(load_spec("tiny"), [4, 8], [load_protocol(FIXTURE), load_protocol("crypten")],
                   [get_network("lan"), get_network("wan")])
    assert list(result.protocol) == ["sweepfix"] * 4 + ["crypten"] * 4
    assert list(result.network) == ["lan", "lan", "wan", "wan"] * 2
    assert list(result.context) == [4, 8] * 4


@pytest.mark.parametrize("text,expected", [
    ("64,128,...,1024", [64, 128, 256, 512, 1024]), ("64,128,256", [64, 128, 256]),
    ("100:400:100", [100, 200, 300, 400]), ("1,3,...,9", [1, 3, 5, 7, 9]), ("10,20,...,40", [10, 20, 40]),
    ("10,20,30,...,50", [10, 20, 30, 40, 50]), ("1,3,9,...,81", [1, 3, 9, 27, 81])])
def test_parse_contexts(text, expected):
    assert parse_contexts(text) == expected


@pytest.mark.parametrize("text", ["", "a,b", "64,...,128", "64,128,...,1000", "0,1", "1:10", "5:1:0", "-4"])
def test_bad_contexts(text):
    with pytest.raises(UserError):
        parse_contexts(text)


def test_compare_ratios():
    table, net = load_protocol(FIXTURE), get_network("wan")
    specs = ["gpt2", "gpt2-relu", "gpt2-smonly"]
    ests = [estimate_lowered(lower(load_spec(s), 128), table, net) for s in specs]
    cmp = compare(ests)
    for i, est in enumerate(ests):
        assert cmp.values[i]["total"]["latency_s"] == est.totals.latency_s
        assert cmp.savings(i, "total", "comm_bytes") == ests[0].totals.comm_bytes / est.totals.comm_bytes
    # ReLU costs 50 B/element in the fixture, GELU (tanh) 100 B: exactly 2x less activation traffic
    assert cmp.savings(1, "activation", "comm_bytes") == 2
    assert cmp.savings(2, "norm", "comm_bytes") == float("inf")  # the Softmax-only model has no norm
    assert cmp.savings(2, "elementwise", "comm_bytes") == 0  # only it has the learned FFN scale
    assert cmp.savings(1, "embedding", "latency_s") == 1
    assert savings(0, 0) is None


def test_sweep_cli_formats_and_errors(cli):
    r = cli("sweep", "tiny", "-p", FIXTURE, "-T", "4,8,...,32", "-n", "lan,wan", "-f", "json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert [p["context"] for p in data["points"]] == [4, 8, 16, 32] * 2
    p = data["points"][0]
    assert sum(c["share"] for c in p["classes"].values()) == pytest.approx(1)
    est = estimate_lowered(lower(load_spec("tiny"), 4), load_protocol(FIXTURE), get_network("lan"))
    assert p["comm_bytes"] == est.totals.comm_bytes and p["latency_s"] == pytest.approx(est.totals.latency_s)
    csv = cli("sweep", "tiny", "-p", FIXTURE, "-T", "4,8", "-f", "csv", "--bandwidth", "1Gbps", "--rtt", "1ms")
    assert csv.returncode == 0 and csv.stdout.splitlines()[0].startswith("protocol,network,T_tokens,comm_bytes,rounds,latency_s")
    assert len(csv.stdout.splitlines()) == 3
    md = cli("sweep", "tiny", "-p", FIXTURE, "-T", "4", "-f", "md", "-n", "wan")
    assert md.returncode == 0 and "| sweepfix | wan | 4 |" in md.stdout
    for args in (("-T", "4,x"), ("-f", "xml"), ("-n", "moon"), ("--share", "flops"), ("--bandwidth", "9 parsecs"),
                 ("-p", "nosuchprotocol")):
        bad = cli("sweep", "tiny", "-p", FIXTURE, *args) if args[0] != "-p" else cli("sweep", "tiny", *args)
        assert bad.returncode == 2, (args, bad.stdout, bad.stderr)
        assert "Traceback" not in bad.stderr and bad.stderr.startswith("error:")


def test_compare_cli(cli):
    r = cli("compare", "gpt2", "gpt2-relu", "-p", FIXTURE, "-n", "wan", "-T", "128", "-f", "json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["specs"][1]["classes"]["activation"]["savings"]["comm_bytes"] == 2
    md = cli("compare", "gpt2", "gpt2-relu", "-p", FIXTURE, "-T", "128", "-f", "md")
    assert "(2.00x)" in md.stdout
    assert cli("compare", "gpt2", "-p", FIXTURE).returncode == 2
    assert cli("compare", "gpt2", "gpt2-relu", "-p", f"{FIXTURE},crypten").returncode == 2


def test_sweep_is_vectorized_lambdify_count_does_not_grow_with_points(monkeypatch):
    import picost.cost.formula as formula

    calls = []
    real = formula.lambdify_numpy
    monkeypatch.setattr(formula, "lambdify_numpy", lambda *a, **k: calls.append(1) or real(*a, **k))
    spec, table = load_spec("tiny"), load_protocol(FIXTURE)
    sweep(spec, [4, 8], [table], [get_network("lan")])
    few = len(calls)
    calls.clear()
    result = sweep(spec, list(range(2, 3002)), [table], [get_network("lan"), get_network("wan")])
    assert len(result) == 6000 and len(calls) == few  # one lambdify per class and field, not per point


def test_compare_json_is_strict_json(cli):
    r = cli("compare", "gpt2", "gpt2-smonly", "-p", FIXTURE, "-T", "16", "-f", "json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert data["specs"][1]["classes"]["norm"]["savings"]["comm_bytes"] == "inf"


def test_uncosted_rows_are_refused_or_listed(tmp_path):
    text = Path(FIXTURE).read_text().replace("name: sweepfix", "name: noembed")
    text = "\n".join(line for line in text.splitlines() if not line.strip().startswith("embedding:"))
    path = tmp_path / "noembed.yaml"
    path.write_text(text + "\n")
    spec, table, nets = load_spec("tiny"), load_protocol(str(path)), [get_network("lan")]
    with pytest.raises(UserError, match="cannot cost op embed.tok"):
        sweep(spec, [8], [table], nets)
    result = sweep(spec, [8], [table], nets, allow_uncosted=True)
    assert result.uncosted == {"noembed": ("embed.tok",)} and "embedding" not in result.classes


@pytest.mark.parametrize("extra", [(), ("-N", "2,4"), ("--share", "comm")])
def test_every_csv_column_says_its_unit(extra):
    """Issue 23: the sweep CSV had `comm` and `latency` without units and `embedding %` columns
    holding fractions. Every column is now a label, a count, or names its unit as the JSON does."""
    res = run_cli("sweep", "tiny", "-p", "crypten,bumblebee", "-n", "lan,wan", "-T", "8,16", *extra, "-f", "csv")
    assert res.returncode == 0, res.stderr
    rows = list(csv.reader(io.StringIO(res.stdout)))
    labels, counts = {"protocol", "network"}, {"rounds"}
    units = ("_bytes", "_s", "_tokens", "_share_of_latency_s", "_share_of_comm_bytes")
    for name in rows[0]:
        assert name in labels | counts or name.endswith(units), name
    share_cols = [i for i, name in enumerate(rows[0]) if "_share_of_" in name]
    for row in rows[1:]:
        assert abs(sum(float(row[i]) for i in share_cols) - 1) < 1e-6  # fractions, not percents

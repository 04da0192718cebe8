"""Generation sweeps (`picost sweep -N`) and comparisons (`picost compare -N`): every point equals
`picost.estimate(..., new_tokens=N)`; the decode phase is lowered once per protocol; the JSON keeps
the sweep schema's fields and adds the generation's; bad N is one located error."""

from __future__ import annotations

import json

import pytest

import picost
from picost.analysis import generation as generation_module
from picost.analysis.compare import compare_generations
from picost.analysis.generation import generation
from picost.analysis.generation_sweep import generation_sweep, visited_caches
from picost.cost.network import get_network
from picost.cost.table_options import load_tables
from picost.errors import UserError
from picost.model.load import load_spec


@pytest.mark.parametrize("spec,protocols", [("gpt2", ["bumblebee", "crypten"]), ("tiny-llama", ["picost-2pc"]),
                                            ("tiny", ["bumblebee,activation=sigma"])])
def test_every_point_equals_the_generation_estimate(spec, protocols):
    contexts, counts = [5, 16, 17, 64], [1, 3, 8]
    r = generation_sweep(load_spec(spec), contexts, counts, load_tables(protocols, None),
                         [get_network("lan"), get_network("wan")])
    assert len(r) == len(protocols) * 2 * len(contexts) * len(counts)
    for i in range(len(r)):
        g = picost.estimate(spec, r.protocol[i], r.network[i], int(r.context[i]), new_tokens=int(r.new_tokens[i]))
        totals = g.totals()
        assert r.total("rounds")[i] == totals["rounds"]
        assert r.total("comm_bytes")[i] == pytest.approx(totals["comm_bytes"], rel=1e-12)
        assert r.total("latency_s")[i] == pytest.approx(totals["latency_s"], rel=1e-12)
        assert r.ttft_s[i] == pytest.approx(g.ttft_s, rel=1e-12)
        assert r.per_token()[i] == pytest.approx(g.mean_token_s, rel=1e-12)
        for c, v in g.class_totals().items():
            assert r.by_class(c, "latency_s")[i] == pytest.approx(v["latency_s"], rel=1e-12, abs=1e-12)


def test_points_nest_protocol_network_T_N():
    r = generation_sweep(load_spec("tiny"), [4, 8], [1, 2, 3], load_tables(["crypten"], None),
                         [get_network("lan"), get_network("wan")])
    assert list(r.network) == ["lan"] * 6 + ["wan"] * 6
    assert list(r.context) == [4, 4, 4, 8, 8, 8] * 2
    assert list(r.new_tokens) == [1, 2, 3] * 4


def test_decode_is_lowered_once_per_protocol(monkeypatch):
    calls = []
    real = generation_module.lower
    monkeypatch.setattr(generation_module, "lower", lambda spec, ctx=None: calls.append(ctx) or real(spec, ctx))
    generation_sweep(load_spec("gpt2"), [64, 128, 1024, 4096], [1, 8, 64, 512], load_tables(["bumblebee"], None),
                     [get_network("wan")])
    assert len(calls) == 1 and len(calls[0]) == (639 - 64 + 1) + 512 + 512  # once, over the merged caches


def test_visited_caches_merge_overlaps():
    cache, at = visited_caches([10, 12, 100], 4)
    assert cache.tolist() == [10, 11, 12, 13, 14, 15, 100, 101, 102, 103]
    assert at.tolist() == [0, 2, 6]
    with pytest.raises(UserError, match="cache lengths"):
        visited_caches(list(range(1, 3000, 1000)), 999_999)


def test_sweep_cli_json_keeps_the_schema_and_adds_the_generation(cli):
    r = cli("sweep", "tiny", "-p", "crypten", "-T", "4,8", "-N", "1,8", "-n", "wan", "-f", "json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["schema"] == "picost.sweep/1" and d["new_tokens"] == [1, 8]
    p = d["points"][1]
    g = generation("tiny", "crypten", "wan", 4, 8)
    assert (p["context"], p["new_tokens"]) == (4, 8)
    assert p["rounds"] == g.totals()["rounds"] and p["ttft_s"] == pytest.approx(g.ttft_s)
    assert p["prefill"]["latency_s"] + p["decode"]["latency_s"] == pytest.approx(p["latency_s"])
    assert p["per_token_mean_s"] == pytest.approx(p["decode"]["latency_s"] / 8)
    assert sum(c["share"] for c in p["classes"].values()) == pytest.approx(1)
    plain = json.loads(cli("sweep", "tiny", "-p", "crypten", "-T", "4", "-n", "wan", "-f", "json").stdout)
    assert set(plain) == {"schema", "spec", "share_of", "networks", "uncosted", "points"}
    assert "new_tokens" not in plain["points"][0] and set(plain["points"][0]) <= set(p)
    csv = cli("sweep", "tiny", "-p", "crypten", "-T", "4,8", "-N", "2", "-f", "csv")
    assert csv.stdout.splitlines()[0].startswith("protocol,network,T_tokens,N_tokens,ttft_s,per_token_latency_s,comm_bytes,rounds,latency_s")


@pytest.mark.parametrize("value", ["0", "x", "1,2,...,5000000", "1:2000000:1"])
def test_bad_new_tokens_is_one_located_error(cli, value):
    r = cli("sweep", "tiny", "-p", "crypten", "-T", "4", "-N", value)
    assert r.returncode == 2 and r.stderr.startswith("error:") and "--new-tokens" in r.stderr
    assert "Traceback" not in r.stderr


def test_compare_generations_lines_up_totals_prefill_and_per_token(cli):
    link, (table,) = get_network("wan"), load_tables(["bumblebee"], None)
    gens = [generation(s, table, link, 32, 4) for s in ("gpt2", "gpt2-relu")]
    cmp = compare_generations(gens)
    assert cmp.phases == ("prefill", "per_token")
    assert cmp.values[0]["total"]["latency_s"] == gens[0].totals()["latency_s"]
    assert cmp.values[1]["prefill"]["latency_s"] == gens[1].ttft_s
    assert cmp.values[1]["per_token"]["latency_s"] == pytest.approx(gens[1].mean_token_s)
    r = cli("compare", "gpt2", "gpt2-relu", "-p", "bumblebee", "-T", "32", "-N", "4", "-f", "json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["new_tokens"] == 4 and d["specs"][0]["classes"]["total"]["rounds"] == gens[0].totals()["rounds"]
    assert d["specs"][1]["generation"]["ttft_s"] == pytest.approx(gens[1].ttft_s)
    assert d["specs"][1]["generation"]["per_token"]["savings"]["latency_s"] == pytest.approx(
        gens[0].mean_token_s / gens[1].mean_token_s)
    md = cli("compare", "gpt2", "gpt2-relu", "-p", "bumblebee", "-T", "32", "-N", "4", "-f", "md")
    assert "prefill (TTFT)" in md.stdout and "per token (mean)" in md.stdout
    assert cli("compare", "gpt2", "gpt2-relu", "-p", "bumblebee", "-N", "0").returncode == 2

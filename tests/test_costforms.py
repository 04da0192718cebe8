"""Closed forms of costs equal numeric estimates; cost crossovers land where the estimates cross."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sympy

from picost.analysis.closed_forms import class_forms
from picost.analysis.crossovers import cost_crossovers
from picost.analysis.estimate import estimate_lowered
from picost.model.lower import lower
from picost.cost.network import get_network
from picost.cost.protocol_table import load_protocol
from picost.model.load import load_spec
from picost.model.spec import ModelSpec

FIXTURE = str(Path(__file__).parent / "data" / "protocols" / "sweepfix.yaml")


def sym(expr, name):
    return next(s for s in expr.free_symbols if s.name == name)


def at(expr, **values):
    return expr.subs({s: values[s.name] for s in expr.free_symbols if s.name in values})


def variant(spec, **changes) -> ModelSpec:
    return ModelSpec.model_validate({**spec.model_dump(), **changes})


@pytest.mark.parametrize("spec_name,protocol", [("gpt2", FIXTURE), ("gpt2", "crypten"), ("llama3-8b", "crypten"),
                                                ("gpt2-smonly-fused-pruned", FIXTURE),
                                                ("tiny", "picost-2pc")])  # delays_per_round: 2
def test_forms_in_T_equal_estimates(spec_name, protocol):
    spec, table, net = load_spec(spec_name), load_protocol(protocol), get_network("wan")
    cf = class_forms(spec, table)
    for T in (2, 5, 64, 128, 1000):
        est = estimate_lowered(lower(spec, T), table, net)
        by = est.by("class")
        for c, f in cf.forms.items():
            assert at(f["comm_bytes"], T=T) == by[c].comm_bytes
            assert at(f["rounds"], T=T) == by[c].rounds
            assert at(f["flops"], T=T) == by[c].flops
            assert float(at(cf.latency(net, [c]), T=T)) == pytest.approx(by[c].latency_s, rel=1e-12)
        assert float(at(cf.latency(net), T=T)) == pytest.approx(est.totals.latency_s, rel=1e-12)


def test_forms_in_L_and_d_equal_estimates_of_resized_models():
    base, table, net = load_spec("gpt2-smonly-fused-pruned"), load_protocol(FIXTURE), get_network("lan")
    cf = class_forms(base, table, symbols=("T", "L", "d"))
    total = cf.total("comm_bytes")
    assert {s.name for s in total.free_symbols} == {"T", "L", "d"}
    # the base model itself
    est = estimate_lowered(lower(base, 100), table, net)
    assert at(total, T=100, L=12, d=768) == est.totals.comm_bytes
    # 16 layers (FFN pruned from layer 6 on), width 384 with the same 12 heads and FFN ratio
    resized = variant(base, n_layers=16, d_model=384, d_ff=1536)
    est = estimate_lowered(lower(resized, 37), table, net)
    assert at(total, T=37, L=16, d=384) == est.totals.comm_bytes
    assert at(cf.total("flops"), T=37, L=16, d=384) == est.totals.flops
    assert at(cf.total("rounds"), T=37, L=16, d=384) == est.totals.rounds
    assert float(at(cf.latency(net), T=37, L=16, d=384)) == pytest.approx(est.totals.latency_s, rel=1e-12)


def test_forms_in_d_for_a_rope_gqa_model():
    base, table, net = load_spec("llama3-8b"), load_protocol("crypten"), get_network("lan")
    cf = class_forms(base, table, symbols=("T", "d"))
    resized = variant(base, d_model=2048, d_ff=7168)  # same heads and FFN ratio, head_dim 64
    est = estimate_lowered(lower(resized, 16), table, net)
    assert at(cf.total("comm_bytes"), T=16, d=2048) == est.totals.comm_bytes


def estimate_at(spec, table, net, T):
    return estimate_lowered(lower(spec, T), table, net)


@pytest.mark.parametrize("spec_name,protocol", [("gpt2", FIXTURE), ("gpt2", "crypten"), ("llama3-8b", "crypten")])
def test_softmax_comm_crossover_is_where_estimates_cross(spec_name, protocol):
    spec, table, net = load_spec(spec_name), load_protocol(protocol), get_network("wan")
    x = cost_crossovers(class_forms(spec, table), net)["softmax_comm_vs_rest"]
    T = x.first_t
    for t, softmax_wins in ((T - 1, False), (T, True)):
        by = estimate_at(spec, table, net, t).by("class")
        soft = by["softmax"].comm_bytes
        rest = sum(v.comm_bytes for c, v in by.items() if c != "softmax")
        assert (soft > rest) == softmax_wins


def test_fixture_softmax_crossover_has_the_exact_root():
    # sweepfix gpt2: softmax 28800 T^2 vs the rest 2592 T^2 + 10346496 T + 991106164 (the final
    # LayerNorm, 300 B per element over the one row the head reads, is 230400 B whatever T)
    x = cost_crossovers(class_forms(load_spec("gpt2"), load_protocol(FIXTURE)), get_network("wan"))[
        "softmax_comm_vs_rest"]
    a, b, c = 28800 - 2592, -10346496, -991106164
    assert not x.exact.free_symbols
    root = (-b + (b * b - 4 * a * c) ** 0.5) / (2 * a)
    assert float(x.exact) == pytest.approx(root, rel=1e-12) and x.first_t == int(root) + 1


def test_round_bound_to_bandwidth_bound_crossover():
    spec, table = load_spec("gpt2"), load_protocol(FIXTURE)
    net = get_network(None, bandwidth="100Gbps", rtt="2s")  # rounds dominate at small T
    x = cost_crossovers(class_forms(spec, table), net)["bandwidth_vs_rounds"]
    assert x.always is None and x.first_t > 1
    for t, bandwidth_bound in ((x.first_t - 1, False), (x.first_t, True)):
        est = estimate_at(spec, table, net, t)
        transfer = est.totals.comm_bytes * 8 / net.bandwidth_bps
        waiting = est.totals.rounds * net.round_s
        assert (transfer > waiting) == bandwidth_bound
    assert cost_crossovers(class_forms(spec, table), get_network("wan"))["bandwidth_vs_rounds"].always == "a"


def test_symbolic_cli_with_protocol(cli):
    r = cli("symbolic", "gpt2", "-p", FIXTURE, "-n", "wan", "--format", "json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    T = sympy.Symbol("T")
    comm = sympy.sympify(data["classes"]["softmax"]["comm_bytes"], locals={"T": T})
    assert comm == 28800 * T**2
    assert data["cost_crossovers"]["softmax_comm_vs_rest"]["first_T"] == 475  # test_fixture_softmax_crossover_has_the_exact_root
    for args in (("--symbols", "T,x"), ("-p", "nosuch"), ("-n", "moon"), ("--format", "md")):
        bad = cli("symbolic", "gpt2", "-p", FIXTURE, *args)
        assert bad.returncode == 2 and "Traceback" not in bad.stderr, (args, bad.stderr)

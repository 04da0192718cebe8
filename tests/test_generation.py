"""Generation (prefill + N decode steps): the totals equal one prefill estimate plus N decode-step
estimates at the growing cache; the CLI prints prefill, per-token and totals; the closed form in
N agrees; bad N is one located error; the speed claim holds."""

from __future__ import annotations

import json
import time

import pytest
from typer.testing import CliRunner

import picost
from picost.analysis.estimate import estimate
from picost.analysis.generation import generation, generation_forms
from picost.cli.main import app
from picost.cost.protocol_table import load_protocol
from picost.errors import UserError
from picost.model.load import load_spec
from tests.conftest import run_cli

runner = CliRunner()
EXACT = ("flops", "rounds")


def _summed(spec_name, protocol, network, T, N):
    spec = load_spec(spec_name)
    decode = spec.model_copy(update={"phase": "decode"})
    fields = ("flops", "comm_bytes", "rounds", "latency_s", "bytes_client_to_server", "bytes_server_to_client")
    pre = estimate(spec, protocol, network, T)
    total = {f: getattr(pre.totals, f) for f in fields}
    steps = []
    for i in range(N):
        e = estimate(decode, protocol, network, T + i)
        steps.append(e.totals)
        for f in fields:
            total[f] = None if total[f] is None or getattr(e.totals, f) is None else total[f] + getattr(e.totals, f)
    return pre, steps, total


@pytest.mark.parametrize("spec,protocol,T,N", [("gpt2", "bumblebee", 128, 32), ("tiny-llama", "picost-2pc", 5, 7),
                                               ("pythia-70m", "crypten", 16, 4), ("llama3-8b", "puma", 64, 3)])
def test_totals_equal_prefill_plus_decode_step_estimates(spec, protocol, T, N):
    gen = generation(spec, protocol, "wan", T, N)
    pre, steps, total = _summed(spec, protocol, "wan", T, N)
    got = gen.totals()
    for f, want in total.items():
        if want is None:
            assert got[f] is None, f
        elif f in EXACT or isinstance(want, int):
            assert got[f] == want, f
        else:
            assert got[f] == pytest.approx(want, rel=1e-12), f
    assert gen.ttft_s == pre.totals.latency_s
    assert gen.last_token_s == pytest.approx(steps[-1].latency_s, rel=1e-12)
    assert gen.mean_token_s == pytest.approx(sum(s.latency_s for s in steps) / N, rel=1e-12)
    for i, s in enumerate(steps):  # every step, not only the sums
        assert gen.steps.step(i + 1)["rounds"] == s.rounds
        assert gen.steps.step(i + 1)["comm_bytes"] == pytest.approx(s.comm_bytes, rel=1e-12)
    # the cache grows: the last step attends to more keys than the first
    assert gen.steps.total["flops"][-1] > gen.steps.total["flops"][0]


def test_api_new_tokens():
    g = picost.estimate("gpt2", "bumblebee", "wan", 64, new_tokens=4)
    assert isinstance(g, picost.Generation) and g.new_tokens == 4 and len(g.steps) == 4
    assert isinstance(picost.estimate("gpt2", "bumblebee", "wan", 64), picost.Estimate)


def test_cli_prints_prefill_per_token_and_totals():
    r = runner.invoke(app, ["estimate", "gpt2", "-p", "bumblebee", "-n", "wan", "-T", "128", "--new-tokens", "32",
                            "-f", "json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    gen = generation("gpt2", "bumblebee", "wan", 128, 32)
    assert d["new_tokens"] == 32 and len(d["decode"]["steps"]["latency_s"]) == 32
    assert d["totals"]["rounds"] == gen.totals()["rounds"]
    assert d["ttft_s"] == gen.ttft_s and d["decode"]["steps"]["cache"][0] == 128
    r = runner.invoke(app, ["estimate", "gpt2", "-p", "bumblebee", "-n", "wan", "-T", "128", "--new-tokens", "32"],
                      env={"COLUMNS": "120"})
    assert r.exit_code == 0, r.output
    for text in ("prefill (128 tokens)", "decode step 32", "time to first token", "per-token latency", "total"):
        assert text in r.output


@pytest.mark.parametrize("n", ["0", "x"])
def test_bad_new_tokens_is_one_located_error(n):
    r = run_cli("estimate", "gpt2", "-p", "bumblebee", "--new-tokens", n)
    assert r.returncode == 2 and "--new-tokens" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    with pytest.raises(UserError, match="new tokens"):
        generation("gpt2", "bumblebee", "wan", 8, 0)


def test_closed_form_in_T_and_N_matches_numbers():
    spec = load_spec("gpt2")
    table = load_protocol("picost-2pc")
    forms = generation_forms(spec, table)
    T, N = forms["T"], forms["N"]
    for t, n in ((16, 3), (100, 9)):
        gen = generation(spec, table, "wan", t, n).totals()
        for f in ("rounds", "flops", "comm_bytes"):
            closed = sum(v[f] for v in forms["forms"].values()).subs({T: t, N: n}).doit()
            assert closed == gen[f] and isinstance(gen[f], int), (f, t, n)


def test_speed_1024_new_tokens_under_50ms():
    generation("gpt2", "bumblebee", "wan", 128, 8)  # warm: table loaded, numpy imported
    best = min(_timed(lambda: generation("gpt2", "bumblebee", "wan", 128, 1024)) for _ in range(3))
    assert best < 0.05, best


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def test_symbolic_new_tokens_prints_forms_equal_to_the_numbers():
    """`picost symbolic --new-tokens`: the printed total form in T and N, evaluated, is the generation's total."""
    import sympy

    from picost.cost.formula import parse

    res = run_cli("symbolic", "tiny", "-p", "bumblebee", "-n", "wan", "--new-tokens", "-f", "json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    forms = out["generation"]["classes"]
    T, N = sympy.symbols("T N", positive=True, integer=True)
    # the linears' HE block search stays a function of T, defined by its formula in 'searches'
    searches = {}
    for name, search in out["searches"].items():
        def value(*args, search=search):
            env = {**search["inputs"], **dict(zip(search["arguments"], (int(a) for a in args)))}
            return parse(search["formula"], tuple(env)).value(env)
        searches[name] = sympy.Function(name)
        searches[name]._imp_ = staticmethod(value)
    assert searches, "bumblebee's linears search SPU's block shapes"
    total = sympy.sympify(forms["total"]["comm_bytes"], locals={"T": T, "N": N, **searches})
    gen = generation("tiny", "bumblebee", "wan", 6, 5)
    assert float(total.subs({T: 6, N: 5}).doit()) == pytest.approx(gen.totals()["comm_bytes"], rel=1e-9)
    assert sympy.sympify(forms["total"]["rounds"], locals={"T": T, "N": N}).subs({T: 6, N: 5}).doit() == \
        gen.totals()["rounds"]
    bad = run_cli("symbolic", "tiny", "--new-tokens")
    assert bad.returncode == 2 and "--new-tokens needs --protocol" in bad.stderr

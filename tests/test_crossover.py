"""The crossover solver on cases with known answers, and attention-vs-FFN FLOP conventions."""

from __future__ import annotations

import sympy

from picost.analysis.crossovers import crossover, flop_conventions
from picost.model.flops import count_flops
from picost.model.load import load_spec

T = sympy.Symbol("T", positive=True, integer=True)
d = sympy.Symbol("d", positive=True)


def test_quadratic_overtakes_linear_at_known_root():
    c = crossover(3 * T**2, 300 * T + 0, T)
    assert c.exact == 100 and c.first_t == 101 and c.always is None


def test_non_integer_root_rounds_up():
    c = crossover(T**2, 10 * T + 5, T)  # root 5 + sqrt(30) = 10.477...
    assert sympy.simplify(c.exact - (5 + sympy.sqrt(30))) == 0
    assert c.first_t == 11


def test_always_and_never():
    assert crossover(T + 1, T, T).always == "a"
    never = crossover(T, 2 * T, T)
    assert never.always == "b" and never.first_t is None


def test_formulas_with_ceil_and_log_use_the_integer_search():
    # 64 * ceil(log2(T)) rounds vs T/8 bytes-seconds: T/8 > 64*ceil(log2 T) first at T = 6145
    a, b = T / 8, 64 * sympy.ceiling(sympy.log(T, 2))
    c = crossover(a, b, T)
    brute = next(t for t in range(1, 10**5) if t / 8 > 64 * ((t - 1).bit_length()))
    assert c.first_t == brute


def test_crossover_in_other_symbols():
    c = crossover(4 * T**2 * d, 8 * T * d**2, T)
    assert sympy.simplify(c.exact - 2 * d) == 0 and c.first_t is None


def test_flop_conventions_for_gpt2():
    spec = load_spec("gpt2")
    conv = {c.name: c for c in flop_conventions(spec)}
    ds = next(s for s in conv["picost"].crossover.free_symbols if s.name == "d")
    assert sympy.simplify(conv["picost"].crossover - 2 * ds) == 0
    assert sympy.simplify(conv["scores-only"].crossover - 4 * ds) == 0
    assert sympy.simplify(conv["kaplan"].crossover - 4 * ds) == 0
    # picost's T* = 2d really is where the numeric counts cross at d = 768
    for t, attention_wins in ((1535, False), (1536, False), (1537, True)):
        g = count_flops(spec, t).by_group()
        assert (g["attn_proj"] + g["attn_scores_values"] > g["ffn"]) == attention_wins
    numeric = {c.name: c.crossover for c in flop_conventions(spec, symbolic_width=False)}
    assert numeric["picost"] == 1536 and numeric["causal"] == 3071


def test_symbolic_cli(cli):
    r = cli("symbolic", "gpt2", "--format", "json")
    assert r.returncode == 0, r.stderr
    import json

    data = json.loads(r.stdout)
    by = {c["convention"]: c for c in data["attention_vs_ffn"]}
    assert by["picost"]["crossover"] == "2*d" and by["picost"]["crossover_at_spec_d"] == 1536
    assert cli("symbolic", "gpt2", "--symbols", "T,q").returncode == 2

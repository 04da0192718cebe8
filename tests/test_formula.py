"""The restricted formula grammar: what it accepts, what it rejects, and that its three
evaluators (Python numbers, sympy, numpy) agree."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

from picost.errors import UserError
from picost.cost.formula import parse, lambdify_numpy

NAMES = ("n", "m", "ell")


@pytest.mark.parametrize("text, env, expected", [
    ("2 * (m*n + n) * ell / 8", {"m": 3, "n": 4, "ell": 64}, 256),
    ("98.5 * n", {"n": 2}, 197),
    ("ceil(log2(n)) * 6 + 4", {"n": 1000}, 64),
    ("floor(log2(n))", {"n": 2**29}, 29),  # exact at powers of two
    ("min(n, m, 3) + max(n, m)", {"n": 5, "m": 7}, 10),
    ("sqrt(n) ** 2 + -m", {"n": 16, "m": 1}, 15),
    ("40", {}, 40),
    (12, {}, 12),
    ("1.2e-8 * n", {"n": 10**8}, 1.2),
])
def test_values(text, env, expected):
    value = parse(text, NAMES).value(env)
    assert value == pytest.approx(expected, rel=1e-12)


def test_integer_formulas_stay_exact_ints():
    value = parse("16 * n * m", NAMES).value({"n": 10**9, "m": 10**9 + 7})
    assert isinstance(value, int) and value == 16 * 10**9 * (10**9 + 7)
    assert parse("n / 2", NAMES).value({"n": 6}) == 3 and isinstance(parse("n / 2", NAMES).value({"n": 6}), int)


@pytest.mark.parametrize("text, needle", [
    ("n.real", "outside the formula grammar"),
    ("__import__('os').system('true')", "unknown function '__import__('os').system'"),
    ("exp(n)", "unknown function 'exp'"),
    ("math.log2(n)", "unknown function 'math.log2'"),
    ("(lambda x: x)(n)", "unknown function"),
    ("lambda: n", "outside the formula grammar"),
    ("'abc'", "only numbers"),
    ("n if n else 1", "outside the formula grammar"),
    ("n < 3", "outside the formula grammar"),
    ("n[0]", "outside the formula grammar"),
    ("[n]", "outside the formula grammar"),
    ("k * n", "unknown symbol 'k'"),
    ("log2", "is a function"),
    ("min(n)", "at least 2"),
    ("log2(n, 2)", "takes 1"),
    ("max(n, key=n)", "keyword"),
    ("min(*n)", "unpacking"),
    ("True", "only numbers"),
    ("1j * n", "only numbers"),
    ("n +", "syntax error"),
    ("", "empty formula"),
    ("n // 2", "outside the formula grammar"),
    ("n % 2", "outside the formula grammar"),
])
def test_rejects_everything_outside_the_grammar(text, needle):
    with pytest.raises(UserError) as err:
        parse(text, NAMES, file="t.yaml", line=7, field_name="ops.relu.rounds")
    assert needle in str(err.value)
    assert err.value.file == "t.yaml" and err.value.line == 7 and err.value.field == "ops.relu.rounds"


@pytest.mark.parametrize("bad", [None, True, [1], {"a": 1}, float("inf")])
def test_rejects_non_formula_values(bad):
    with pytest.raises(UserError):
        parse(bad, NAMES)


def test_symbolic_substitutes_dims_with_a_symbol():
    T = sympy.Symbol("T", positive=True, integer=True)
    expr = parse("2 * m * n + ceil(log2(n))", NAMES).symbolic({"m": 768 * T, "n": 768})
    assert sympy.simplify(expr - (2 * 768 * 768 * T + 10)) == 0
    assert parse("98.5 * n", NAMES).symbolic({"n": 1}) == sympy.Rational(197, 2)  # exact, not a float


def test_lambdify_numpy_broadcasts_min_and_max():
    T = sympy.Symbol("T", positive=True, integer=True)
    expr = parse("min(n, 100) + max(n, 3) + ceil(log2(n))", NAMES).symbolic({"n": T})
    fn = lambdify_numpy(expr, [T])
    ts = np.array([1, 4, 50, 200, 1000])
    expected = [min(t, 100) + max(t, 3) + math.ceil(math.log2(t)) for t in ts]
    assert np.allclose(fn(ts), expected)


def test_value_on_arrays_is_element_wise():
    f = parse("min(n, 100, m) + max(n, 3) + ceil(log2(n)) + floor(sqrt(n))", NAMES)
    ns = np.array([1, 4, 50, 200, 1000, 2**29])
    assert f.value({"n": ns, "m": 60}).tolist() == [f.value({"n": int(n), "m": 60}) for n in ns]


def test_lambdify_numpy_is_exact_at_powers_of_two():
    # sympy writes log2(n) as log(n)/log(2); in floating point ceil(log(2**29)/log(2)) is 30
    T = sympy.Symbol("T", positive=True, integer=True)
    fn = lambdify_numpy(parse("ceil(log2(n))", NAMES).symbolic({"n": T}), [T])
    ks = np.arange(0, 53)
    assert fn(2.0 ** ks).tolist() == ks.tolist()


_LEAVES = st.one_of(st.sampled_from(NAMES), st.integers(0, 50).map(str),
                    st.floats(0.25, 8, allow_nan=False).map(lambda x: repr(round(x, 3))))


def _expr(children):
    return st.one_of(
        st.tuples(children, st.sampled_from(["+", "-", "*", "/"]), children).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(st.sampled_from(["ceil", "floor", "log2", "sqrt"]), children).map(lambda t: f"{t[0]}(abs_({t[1]}))"),
        st.tuples(st.sampled_from(["min", "max"]), children, children).map(lambda t: f"{t[0]}({t[1]}, {t[2]})"),
    )


@settings(max_examples=60, deadline=None)
@given(st.recursive(_LEAVES, _expr, max_leaves=8), st.integers(1, 5000), st.integers(1, 5000))
def test_python_and_sympy_evaluators_agree(text, n, m):
    # abs_ is not in the grammar; replace it by a positive shift so log2/sqrt stay defined.
    text = text.replace("abs_(", "1 + max(0, ")
    f = parse(text, NAMES)
    env = {"n": n, "m": m, "ell": 64}
    try:
        numeric = f.value(env)
    except ZeroDivisionError:
        return
    symbolic = f.symbolic({k: sympy.Integer(v) for k, v in env.items()})
    assert float(symbolic) == pytest.approx(float(numeric), rel=1e-9, abs=1e-9)


def test_huge_integer_powers_raise_instead_of_hanging():
    with pytest.raises(OverflowError):
        parse("2 ** (2 ** 40)", NAMES).value({})
    assert parse("2 ** n", NAMES).value({"n": 64}) == 2**64


# -- pick_min: a bounded search (an engine's choice among candidate shapes) -------------------

PICK = "pick_min(j, 0, 5, (n - 2*j)**2 + m*j, 100*j + ell)"


def _pick_by_hand(n, m, ell):
    keys = [(n - 2 * j) ** 2 + m * j for j in range(6)]
    least = min(keys)
    return 100 * max(j for j in range(6) if keys[j] == least) + ell  # the last one on ties


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 12), st.integers(0, 5), st.integers(0, 9))
def test_pick_min_is_the_value_at_the_least_key_in_every_evaluator(n, m, ell):
    form = parse(PICK, NAMES)
    expected = _pick_by_hand(n, m, ell)
    assert form.value({"n": n, "m": m, "ell": ell}) == expected
    assert form.symbolic({"n": n, "m": m, "ell": ell}) == expected  # numbers in, a number out
    T = sympy.Symbol("T", positive=True, integer=True)
    opaque = form.symbolic({"n": T, "m": m, "ell": ell})
    assert opaque.free_symbols == {T}
    assert int(opaque.subs(T, n).evalf()) == expected
    assert int(lambdify_numpy(2 * opaque + 1, [T])(np.array([n]))[0]) == 2 * expected + 1


def test_pick_min_on_arrays_and_ties():
    form = parse(PICK, NAMES)
    ns = np.array([0, 3, 4, 11])
    got = form.value({"n": ns, "m": 0, "ell": 1})
    assert list(got) == [_pick_by_hand(int(n), 0, 1) for n in ns]
    # n = 3, m = 0: keys 9, 1, 1, 9, ... tie between j = 1 and 2: the last wins
    assert form.value({"n": 3, "m": 0, "ell": 0}) == 200


def test_equal_searches_in_closed_forms_add_up():
    """The same search at the same fixed inputs is one function, so a model's equal layers add
    up (12*pick_min_N(T)), and a different fixed input is another."""
    form = parse(PICK, NAMES)
    T = sympy.Symbol("T", positive=True, integer=True)
    a, b = form.symbolic({"n": T, "m": 1, "ell": 0}), form.symbolic({"n": T, "m": 1, "ell": 0})
    c = form.symbolic({"n": T, "m": 2, "ell": 0})
    assert a == b and a != c
    assert sympy.Add(a, b, c).count(a.func) == 1


@pytest.mark.parametrize("text, needle", [
    ("pick_min(n, 0, 3, j, j)", "already a symbol"),
    ("pick_min(3, 0, 3, n, n)", "must be a new name"),
    ("pick_min(j, 0, 64, j, j)", "at most 64"),
    ("pick_min(j, 3, 0, j, j)", "first <= last"),
    ("pick_min(j, 0, n, j, j)", "whole numbers"),
    ("pick_min(j, 0, 1.5, j, j)", "whole numbers"),
    ("pick_min(j, 0, 3, j)", "takes 5 argument"),
    ("pick_min(j, 0, 3, j, q)", "unknown symbol 'q'"),
    ("j + pick_min(j, 0, 3, j, j)", "unknown symbol 'j'"),
])
def test_pick_min_rejects_malformed_searches(text, needle):
    with pytest.raises(UserError, match=needle):
        parse(text, NAMES)


def test_huge_negative_integer_powers_are_refused_in_every_evaluator():
    """297145 ** -1000000 is a float 0.0 in Python but an exact fraction with a 5.5-million-digit
    denominator in sympy: both refuse it (one verdict), as they refuse the positive power."""
    form = parse("(1000000 - 702855) ** -1000000 + n", NAMES)
    with pytest.raises(OverflowError):
        form.value({"n": 1})
    with pytest.raises(OverflowError):
        form.symbolic({"n": 1})
    assert parse("2 ** -3 * n", NAMES).value({"n": 8}) == 1  # small negative powers still work

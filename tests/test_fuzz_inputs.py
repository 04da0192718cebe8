"""Fuzzing every way in: specs, HF configs, protocol tables (formulas) and command-line values.

The property is the same everywhere: a located :class:`UserError` (the CLI: exit 2 and one
``error:`` line), or a valid result (finite numbers, the T asked for), within a time bound.
Tables are also checked for one verdict: the estimate, the sweep and the closed forms accept or
refuse the same formula at the same T. The whole file runs in well under a minute.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from picost.errors import UserError

FIXTURE = Path(__file__).parent / "data" / "protocols" / "sweepfix.yaml"
BOUND_S = 5.0
"""Per input, generous for a loaded CI machine (typical: milliseconds)."""
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                         HealthCheck.too_slow])

# -- values a hostile but fair user might write -------------------------------------------------
odd_ints = st.one_of(st.integers(-5, 70), st.sampled_from([0, 2**31, 2**63, 2**64, 10**12, 10**300, -(2**63)]))
odd_floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([8.5, -3.0, 1e300, 0.0]))
odd_text = st.one_of(st.text(max_size=12), st.sampled_from(["abc", "1e9", "10**400", "!!int abc", "", "gpt2"]))
scalars = st.one_of(odd_ints, odd_floats, odd_text, st.booleans(), st.none())
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                      max_leaves=6)

SPEC_FIELDS = ["n_layers", "d_model", "n_heads", "n_kv_heads", "head_dim", "d_ff", "d_ff_multiplier", "vocab_size",
               "context_length", "activation", "positional", "rope_fraction", "batch_size", "phase", "head", "norm",
               "ffn", "extends", "name"]
BASE_SPEC = {"name": "f", "n_layers": 2, "d_model": 16, "n_heads": 2, "d_ff": 32, "vocab_size": 50,
             "context_length": 16}
YAML_SNIPPETS = ["a: !foo 1", "a: !!int abc", "a: !!bool maybe", "a: 2001-12-14", "a: &x {b: 1}\nc:\n  <<: *x",
                 "a: &a [*a]", "a: " + "[" * 300 + "]" * 300, "n_layers: " + "9" * 400, "x: .nan", "{", "- 1\n- 2"]


def _timed(fn, *args, **kw) -> Any:
    start = time.monotonic()
    try:
        return fn(*args, **kw)
    finally:
        assert time.monotonic() - start < BOUND_S, f"{fn.__name__} took {time.monotonic() - start:.1f} s"


def _finite_report(report: Any) -> None:
    assert isinstance(report.total, int) and report.total >= 0


@FUZZ
@given(st.dictionaries(st.sampled_from(SPEC_FIELDS), values, max_size=3), st.sampled_from([None, *YAML_SNIPPETS]))
def test_fuzzed_specs_load_or_fail_with_one_located_message(tmp_path, overrides, snippet):
    from picost.model.flops import count_flops
    from picost.model.load import load_spec

    path = tmp_path / "s.yaml"
    text = yaml.safe_dump({**BASE_SPEC, **overrides}) if snippet is None else snippet
    path.write_text(text)
    try:
        spec = _timed(load_spec, path)
    except UserError as exc:
        assert "\n" not in str(exc)
        return
    _finite_report(_timed(count_flops, spec, min(spec.context_length, 64)))


HF_KEYS = ["model_type", "n_layer", "n_embd", "n_head", "n_inner", "vocab_size", "n_positions", "rotary_pct",
           "activation_function", "hidden_act", "num_hidden_layers", "hidden_size", "num_attention_heads",
           "intermediate_size", "max_position_embeddings", "num_key_value_heads", "_name_or_path", "sliding_window"]
HF_BASE = {"model_type": "gpt2", "n_layer": 2, "n_embd": 16, "n_head": 2, "vocab_size": 50, "n_positions": 16}


@FUZZ
@given(st.dictionaries(st.sampled_from(HF_KEYS), values, max_size=3),
       st.sampled_from(["gpt2", "gpt_neox", "llama", "mistral"]))
def test_fuzzed_hf_configs_load_or_fail_with_one_located_message(tmp_path, overrides, family):
    from picost.model.load import load_spec

    path = tmp_path / "config.json"
    data = {**HF_BASE, "model_type": family, "num_hidden_layers": 2, "hidden_size": 16, "num_attention_heads": 2,
            "intermediate_size": 32, "max_position_embeddings": 16, **overrides}
    path.write_text(json.dumps(data, allow_nan=True))
    try:
        spec = _timed(load_spec, path)
    except UserError as exc:
        assert "\n" not in str(exc)
        return
    assert spec.n_layers >= 1


TABLE_PLACES = [("setting", "parties"), ("setting", "delays_per_round"), ("setting", "ring_bits"),
                ("params", "ell", "value"), ("params", "ell"), ("ops", "relu"), ("ops", "relu", "rounds"),
                ("ops", "relu", "includes_truncation"), ("options",), ("citations",), ("name",)]


@FUZZ
@given(st.sampled_from(TABLE_PLACES), values)
def test_fuzzed_tables_load_or_fail_with_one_located_message(tmp_path, place, value):
    from picost.analysis.estimate import estimate

    data = yaml.safe_load(FIXTURE.read_text())
    node = data
    for key in place[:-1]:
        node = node[key]
    node[place[-1]] = value
    path = tmp_path / "sweepfix.yaml"
    path.write_text(yaml.safe_dump(data))
    try:
        result = _timed(estimate, "tiny-relu", path, "lan", 8)
    except UserError as exc:
        assert "\n" not in str(exc)
        return
    assert math.isfinite(result.totals.latency_s)


# -- formulas: the estimate, the sweep and the closed forms give one verdict ------------------
leaves = st.one_of(st.sampled_from(["n", "n", "ell", "0", "1", "2", "0.5", "4096", "2**4096", "1e308"]),
                   st.integers(0, 10**6).map(str))


def _combine(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    binary = st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "**"]), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})")
    call = st.tuples(st.sampled_from(["sqrt", "log2", "ceil", "floor"]), inner).map(lambda t: f"{t[0]}({t[1]})")
    pair = st.tuples(st.sampled_from(["min", "max"]), inner, inner).map(lambda t: f"{t[0]}({t[1]}, {t[2]})")
    return st.one_of(binary, call, pair, inner.map(lambda x: f"-{x}"))


formulas = st.recursive(leaves, _combine, max_leaves=6)


def _verdict(fn) -> str:
    try:
        _timed(fn)
    except UserError as exc:
        assert "\n" not in str(exc)
        return "refused"
    return "ok"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(formulas, st.sampled_from(["comm_bytes", "rounds"]), st.sampled_from([4, 16]))
@example("2*sqrt(min(2" + "0" * 154 + "*1" + "0" * 154 + ", n))", "comm_bytes", 4)  # folds beyond float range
def test_a_fuzzed_formula_gets_one_verdict_from_estimate_sweep_and_closed_forms(tmp_path, text, field, T):
    from picost.analysis.closed_forms import class_forms
    from picost.analysis.estimate import estimate_lowered
    from picost.analysis.sweep import sweep
    from picost.cost.network import get_network
    from picost.cost.protocol_table import load_protocol
    from picost.model.load import load_spec
    from picost.model.lower import lower

    entry = {"comm_bytes": "50*n", "rounds": 5, "source": "fx §5", field: text}
    source = FIXTURE.read_text().replace('  relu: {comm_bytes: "50*n", rounds: 5, source: "fx §5"}',
                                         f"  relu: {json.dumps(entry)}")
    assert source != FIXTURE.read_text()
    path = tmp_path / "sweepfix.yaml"
    path.write_text(source)
    try:
        table = _timed(load_protocol, path)
    except UserError as exc:
        assert "\n" not in str(exc)
        return
    spec, lan = load_spec("tiny-relu"), get_network("lan")
    estimate = _verdict(lambda: estimate_lowered(lower(spec, T), table, lan))
    swept = _verdict(lambda: sweep(spec, [T], [table], [lan]))
    closed = _verdict(lambda: class_forms(spec, table, verify_at=[T]))
    event(f"verdict {estimate}")
    assert estimate == swept == closed, (text, estimate, swept, closed)
    if estimate == "ok":
        e = estimate_lowered(lower(spec, T), table, lan)
        s = sweep(spec, [T], [table], [lan])
        assert math.isfinite(e.totals.latency_s) and int(s.context[0]) == T
        assert float(s.total["latency_s"][0]) == pytest.approx(e.totals.latency_s, rel=1e-6)


# -- command-line values ------------------------------------------------------------------------
def run_main(*args: str) -> tuple[int, str, str]:
    """``picost ARGS`` in this process: (exit code, stdout, stderr); signal handlers restored."""
    from picost.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    argv = sys.argv
    sys.argv = ["picost", *args]
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = argv
        for s, h in handlers.items():
            signal.signal(s, h)
    return code, out.getvalue(), err.getvalue()


def _one_message_or_valid(code: int, out: str, err: str) -> None:
    assert "Traceback" not in err and "Traceback" not in out
    if code == 0:
        assert not re.search(r"\b(inf|nan|NaN|Infinity)\b|-9223372036854775808", out), out[:500]
        if out.lstrip().startswith("{"):
            json.loads(out, parse_constant=lambda c: pytest.fail(f"non-finite {c} in JSON"))
    else:
        assert code == 2, (code, err[:500])
        if err.startswith("error:"):
            assert err.count("\n") == 1, err


cli_text = st.one_of(odd_text, odd_ints.map(str), odd_floats.map(repr),
                     st.sampled_from(["1e-300bps", "0s", "80ms", "1Gbps", "10**400", "-1", "1:10000000:1",
                                      "64,128,...,32768", "1,2,...,0", "9223372036854775808"]))


@FUZZ
@given(st.sampled_from([("estimate", "tiny", "-p", "sweepfix", "-n", "lan", "-f", "json", "-T"),
                        ("estimate", "tiny", "-p", "sweepfix", "-n", "lan", "-f", "json", "--bandwidth"),
                        ("estimate", "tiny", "-p", "sweepfix", "-f", "json", "--bandwidth", "1Gbps", "--rtt"),
                        ("sweep", "tiny", "-p", "sweepfix", "-n", "lan", "-f", "json", "-T"),
                        ("check", "--comm", "1GB", "--latency", "1s", "-n", "lan", "--rounds"),
                        ("check", "--comm", "1GB", "--latency", "1s", "--bandwidth", "1Gbps", "--rtt"),
                        ("check", "--latency", "1s", "-n", "lan", "--comm"),
                        ("flops", "tiny", "-f", "json", "-T")]),
       cli_text)
def test_fuzzed_command_line_values_give_one_message_or_a_valid_result(monkeypatch, command, value):
    monkeypatch.chdir(FIXTURE.parent)  # "sweepfix" resolves as a path there
    args = [a if a != "sweepfix" else "sweepfix.yaml" for a in command]
    code, out, err = _timed(run_main, *args, value)
    _one_message_or_valid(code, out, err)
    if code == 0 and command[0] == "sweep" and "-f" in command:
        points = json.loads(out)["points"]
        assert all(1 <= p["context"] <= 2**31 for p in points)

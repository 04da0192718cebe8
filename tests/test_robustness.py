"""One regression test per class of issue 11 (robustness and safety): each input once gave a
traceback, a hang, a silent wrong number or unbounded work; now it is one located message
(exit 2) or a correct result, quickly."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from picost.errors import UserError
from picost.model.flops import count_flops
from picost.model.load import load_spec
from picost.model.located_yaml import loads_located
from test_fuzz_inputs import run_main

FIXTURE = Path(__file__).parent / "data" / "protocols" / "sweepfix.yaml"
QUICK_S = 5.0


def _table(tmp_path: Path, relu: str, name: str = "sweepfix") -> str:
    """The sweep fixture with its relu entry replaced (tiny-relu runs it)."""
    text = FIXTURE.read_text().replace('  relu: {comm_bytes: "50*n", rounds: 5, source: "fx §5"}', f"  relu: {relu}")
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return str(path)


def _refused(*args: str, needle: str) -> str:
    start = time.monotonic()
    code, out, err = run_main(*args)
    assert time.monotonic() - start < QUICK_S
    assert code == 2 and err.startswith("error:") and err.count("\n") == 1, (code, out[:300], err)
    assert needle in err, err
    return err


# -- silent wrong numbers ---------------------------------------------------------------------
@pytest.mark.parametrize("command", [("estimate", "-n", "lan"), ("sweep", "-n", "lan", "-T", "4,8"),
                                     ("symbolic", "-n", "lan")])
def test_an_imaginary_cost_is_refused_by_every_command(tmp_path, command):
    table = _table(tmp_path, '{comm_bytes: "sqrt(0 - n)", rounds: 5, source: "fx §5"}')
    err = _refused(command[0], "tiny-relu", "-p", table, *command[1:], needle="ops.relu.comm_bytes")
    assert f"{table}:" in err  # the table's line


def test_a_cost_complex_only_in_sympy_is_refused_by_the_sweep(tmp_path):
    # (0 - n) ** 0.5 is a complex number in Python and I*sqrt(n) in sympy: numpy would drop the I
    table = _table(tmp_path, '{comm_bytes: "(0 - n) ** 0.5", rounds: 5, source: "fx §5"}')
    _refused("sweep", "tiny-relu", "-p", table, "-n", "lan", "-T", "4,8", needle="ops.relu.comm_bytes")


def test_totals_are_finite_or_refused(tmp_path):
    _refused("estimate", "tiny", "-p", str(FIXTURE), "--bandwidth", "1e-300bps", "--rtt", "1ms", "-f", "json",
             needle="--bandwidth")
    table = _table(tmp_path, '{comm_bytes: "1e308", rounds: 5, source: "fx §5"}')
    for command in (("estimate", "-f", "json"), ("sweep", "-T", "4", "-f", "json")):
        _refused(command[0], "tiny-relu", "-p", table, "-n", "lan", *command[1:], needle="not a finite number")


def test_sweep_contexts_stay_whole_and_bounded():
    _refused("sweep", "tiny", "-p", str(FIXTURE), "-n", "lan", "-T", str(2**63), needle="--context")
    _refused("sweep", "tiny", "-p", str(FIXTURE), "-n", "lan", "-T", "1:10000000:1", needle="at most 100000")
    code, out, _ = run_main("sweep", "tiny", "-p", str(FIXTURE), "-n", "lan", "-T", str(2**31), "-f", "json")
    assert code == 0 and json.loads(out)["points"][0]["context"] == 2**31


def test_api_contexts_are_whole_positive_numbers():
    spec = load_spec("tiny")
    for bad in (8.5, -3.0, 0, True, "64", 10**400):
        with pytest.raises(UserError, match="context"):
            count_flops(spec, context=bad)
    assert count_flops(spec, context=np.int64(16)).total == count_flops(spec, context=16).total


# -- tracebacks ---------------------------------------------------------------------------------
@pytest.mark.parametrize("text, needle", [
    ("a: !foo 1", "tag"), ("a: !!int abc", "cannot read"), ("a: !!bool maybe", "cannot read"),
    ("a: !!timestamp 2001-12-14", "dates"), ("a: &x {b: 1}\nc:\n  <<: *x", "merge keys"),
    ("a: &a [*a]", "recursive alias"), ("a: " + "[" * 5000 + "]" * 5000, "nesting"),
    ("a: " + "9" * 5000, "cannot read"), ("a: " + "9" * 400, "bits"), ("a: .nan", "not finite"),
    ("a: !!python/object/apply:os.system [echo]", "tag"),
])
def test_yaml_beyond_plain_data_is_one_located_error(text, needle):
    with pytest.raises(UserError, match=needle) as err:
        loads_located(text, "f.yaml")
    assert str(err.value).startswith("f.yaml")


def test_alias_bombs_are_refused_quickly():
    laughs = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    laughs += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    start = time.monotonic()
    with pytest.raises(UserError, match="alias bomb"):
        loads_located("\n".join(laughs), "bomb.yaml")
    assert time.monotonic() - start < 1.0


def test_long_extends_chains_and_huge_sizes_are_refused(tmp_path):
    (tmp_path / "s0.yaml").write_text("extends: tiny\n")
    for i in range(1, 40):
        (tmp_path / f"s{i}.yaml").write_text(f"extends: s{i - 1}.yaml\n")
    _refused("flops", str(tmp_path / "s39.yaml"), needle="'extends' chain longer than 32")
    (tmp_path / "big.yaml").write_text("extends: tiny\nn_layers: 1000000000000\n")
    _refused("flops", str(tmp_path / "big.yaml"), needle="n_layers")
    (tmp_path / "hf.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": 10**9, "n_embd": 64, "n_head": 4,
                                                  "vocab_size": 100, "n_positions": 64}))
    _refused("flops", str(tmp_path / "hf.json"), needle="n_layers")


@pytest.mark.parametrize("config, needle", [({"model_type": ["gpt2"]}, "model_type"),
                                            ({"model_type": "gpt_neox", "rotary_pct": "abc"}, "rotary_pct"),
                                            ({"model_type": "gpt2", "n_embd": "abc"}, "d_model")])
def test_odd_hf_fields_are_one_message(tmp_path, config, needle):
    base = {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 128,
            "vocab_size": 100, "max_position_embeddings": 64, "n_layer": 2, "n_embd": 64, "n_head": 4,
            "n_positions": 64}
    (tmp_path / "config.json").write_text(json.dumps({**base, **config}))
    _refused("flops", str(tmp_path / "config.json"), needle=needle)


@pytest.mark.parametrize("formula, needle", [
    (" + ".join(["n"] * 100_000), "characters"), ("-" * 200 + "n", "levels of nesting"), ("(" * 1000 + "n" + ")" * 1000, "formula"),
    ("((2**4096)**4096)**4096", "exceeds 1000 bits"), ("10**10**10", "exceeds 1000 bits"),
    ("n ** 4000", "exceeds 1000 bits"), ("9" * 400, "bits"),
])
def test_huge_formulas_are_refused_quickly_by_every_command(tmp_path, formula, needle):
    relu = json.dumps({"comm_bytes": formula, "rounds": 5, "source": "fx §5"})
    table = _table(tmp_path, relu)
    for command in (("estimate",), ("sweep", "-T", "4,8"), ("symbolic",)):
        _refused(command[0], "tiny-relu", "-p", table, "-n", "lan", *command[1:], needle=needle)


def test_huge_integers_on_the_command_line_and_in_parameters(tmp_path):
    _refused("estimate", "tiny", "-p", str(FIXTURE), "-n", "lan", "-T", "1" + "0" * 400, needle="context")
    _refused("check", "--comm", "1GB", "--latency", "1s", "-n", "lan", "--rounds", "1" + "0" * 400, needle="--rounds")
    text = FIXTURE.read_text().replace("ell: {value: 64,", "ell: {value: 1" + "0" * 400 + ",")
    (tmp_path / "sweepfix.yaml").write_text(text)
    _refused("estimate", "tiny", "-p", str(tmp_path / "sweepfix.yaml"), "-n", "lan", needle="bits")


def test_check_with_zero_rtt_is_answered():
    code, out, err = run_main("check", "--comm", "1GB", "--latency", "10s", "--bandwidth", "1Gbps", "--rtt", "0s")
    assert code == 0 and "any number of round delays" in " ".join(out.split()), err  # the text wraps at 80 columns


def test_reports_to_unwritable_places_are_one_message(tmp_path):
    (tmp_path / "dir.md").mkdir()
    for target in (tmp_path / "dir.md", Path("/proc/picost.md")):
        _refused("report", "tiny", "-p", str(FIXTURE), "-n", "lan", "--sweep", "4,8", "-o", str(target),
                 needle="--output")


# -- the engine: argument errors before any party starts --------------------------------------
@pytest.mark.parametrize("args, needle", [(("--port", "0"), "--port"), (("--port", "70000"), "--port"),
                                          (("--timeout", "0"), "--timeout"), (("--timeout", "nan"), "--timeout"),
                                          (("--seed", "-1"), "--seed"), (("--host", "no.such.host.invalid"), "--host")])
def test_engine_argument_errors_exit_2_before_a_launch(args, needle):
    pytest.importorskip("torch")
    _refused("mpc", "run", "tiny", "--tokens", "1,2", *args, needle=needle)


def test_runs_too_big_for_the_machine_are_refused_up_front():
    pytest.importorskip("torch")
    for command in (("mpc", "run", "llama2-70b", "--tokens", "1"), ("validate", "llama2-70b", "--no-ops")):
        _refused(*command, needle="--force")

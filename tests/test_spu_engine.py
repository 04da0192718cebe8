"""The SPU engine (picost/spu): requests and answers (always), real SPU runs (when .venv-spu exists).

The SPU tests run SEMI2K only (fast, and its bytes are deterministic), on tiny shapes; set
PICOST_SPU_PYTHON to an interpreter with spu 0.9.5 if the virtualenv is not at .venv-spu.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from picost.errors import UserError
from picost.model.load import load_spec
from picost.model.lower import lower
from picost.model.ops import CLASSES, Block, Holder, Op
from picost.spu import bridge

SPU_MISSING = "SPU environment missing: bash scripts/setup-spu.sh"
needs_spu = pytest.mark.skipif(not bridge.spu_available(), reason=SPU_MISSING)


# -- requests -----------------------------------------------------------------------------------

def test_model_request_carries_spec_options_and_lowered_ops():
    spec = load_spec("tiny")
    req = bridge.model_request(spec, context=8, protocol="spu-cheetah", op_by_op=True)
    json.dumps(req)  # plain JSON
    assert req["protocol"] == "CHEETAH" and req["context"] == 8
    assert req["spec"]["d_model"] == 64 and req["spec"]["norm"]["kind"] == "layernorm"
    assert (req["weights"], req["input"], req["softmax"], req["mask"]) == ("server-private", "client-private",
                                                                          "stock", "where")
    names = [op["name"] for op in req["ops"]]
    assert names == [op.name for op in lower(spec, 8).ops]
    softmax = next(op for op in req["ops"] if op["kind"] == "softmax")
    assert softmax["causal"] is True and softmax["dims"] == {"rows": 4 * 8, "cols": 8, "valid": 4 * 36}
    assert req["ops"][0]["operands"] == ["client", "server"]
    assert all(isinstance(v, int) for op in req["ops"] for v in op["dims"].values())


def test_model_request_without_ops_and_with_options():
    req = bridge.model_request(load_spec("tiny-llama"), 4, "ABY3", weights="public", input="client-embedded",
                               gelu="puma", softmax="puma", mask="bias")
    assert "ops" not in req and req["protocol"] == "ABY3"
    assert (req["weights"], req["input"], req["gelu"], req["softmax"], req["mask"]) == (
        "public", "client-embedded", "puma", "puma", "bias")


@pytest.mark.parametrize(("option", "value"), [("weights", "private"), ("input", "ids"), ("gelu", "erf"),
                                               ("softmax", "fast"), ("mask", "none")])
def test_unknown_options_are_user_errors(option, value):
    with pytest.raises(UserError, match=option):
        bridge.model_request(load_spec("tiny"), 4, **{option: value})


def test_unknown_protocol_and_decode_are_user_errors():
    with pytest.raises(UserError, match="unknown SPU protocol"):
        bridge.model_request(load_spec("tiny"), 4, "spdz")
    spec = load_spec("tiny").model_copy(update={"phase": "decode"})
    with pytest.raises(UserError, match="prefill"):
        bridge.model_request(spec, 4)


def test_op_request_of_a_lowered_op():
    op = Op("L0.attn.qkv", "linear", Block.ATTENTION, 0, {"m": 16, "k": 64, "n": 192}, (Holder.SHARED, Holder.SERVER))
    req = bridge.op_request(op, "semi2k", weights="shared", bias=True)
    assert req == {"protocol": "SEMI2K", "kind": "linear", "dims": {"m": 16, "k": 64, "n": 192}, "construction": None,
                   "weights": "shared", "input": "client-private", "operands": ["shared", "server"],
                   "causal": False, "mask": "where", "bias": True, "rotated": None}


def test_missing_spu_environment_says_how_to_make_it(monkeypatch, tmp_path):
    monkeypatch.setenv("PICOST_SPU_PYTHON", str(tmp_path / "nope" / "python"))
    with pytest.raises(UserError, match="setup-spu.sh"):
        bridge.spu_python()
    assert not bridge.spu_available()
    with pytest.raises(UserError, match="SPU environment missing"):
        bridge.run_model(load_spec("tiny"), 4)


# -- answers ------------------------------------------------------------------------------------

def _op_line(name, kind, dims, total, actions=3):
    return json.dumps({"name": name, "protocol": "SEMI2K", "kind": kind, "dims": dims, "total_bytes": total,
                       "party_send_bytes": [total // 2, total - total // 2], "max_send_actions": actions,
                       "warm_s": 0.01, "runs_total_bytes": [total, total]})


def test_parse_ops_output():
    text = _op_line(None, "relu", {"n": 8}, 100) + "\n" + _op_line(None, "add", {"n": 8}, 0, 0) + "\n"
    got = bridge.parse_ops_output(text)
    assert [(m.kind, m.total_bytes, m.max_send_actions) for m in got] == [("relu", 100, 3), ("add", 0, 0)]
    assert got[0].party_send_bytes == (50, 50) and got[0].raw["runs_total_bytes"] == [100, 100]


def test_parse_ops_output_raises_on_a_failed_measurement():
    line = json.dumps({"protocol": "SEMI2K", "kind": "relu", "dims": {"n": 8}, "error": "boom\nValueError: bad"})
    with pytest.raises(UserError, match="ValueError: bad"):
        bridge.parse_ops_output(line)


def test_parse_model_output_and_bytes_by_class():
    spec = load_spec("tiny")
    ops = lower(spec, 4).ops
    lines = [json.loads(_op_line(op.name, op.kind, dict(op.dims), 10 * (i + 1))) for i, op in enumerate(ops)]
    answer = {"protocol": "SEMI2K", "model": "tiny", "context": 4, "weights": "server-private",
              "input": "client-private", "gelu": None, "softmax": "stock", "mask": "where", "spu": "0.9.5",
              "whole": {"total_bytes": 12345, "party_send_bytes": [6000, 6345], "max_send_actions": 99,
                        "warm_s": 1.5, "logits_max_abs_error": 0.01, "logits_max_abs": 50.0,
                        "next_token_matches": True},
              "ops": lines}
    run = bridge.parse_model_output("log noise\n" + json.dumps(answer) + "\n")
    assert run.whole.total_bytes == 12345 and run.whole.next_token_matches
    assert run.ops_total_bytes == sum(10 * (i + 1) for i in range(len(ops)))
    by_class = run.bytes_by_class(ops)
    assert set(by_class) <= set(CLASSES) and sum(by_class.values()) == run.ops_total_bytes
    assert by_class["embedding"] == 10  # embed.tok (embed.pos is an add: elementwise)
    # CHEETAH: an op's class bytes are its mean warm run (the tables' accounting), not its cheapest
    lines[0]["mean_warm_bytes"] = 25.5
    refilled = bridge.parse_model_output(json.dumps({**answer, "ops": lines}) + "\n")
    assert refilled.bytes_by_class(ops)["embedding"] == 25.5 and refilled.ops_total_bytes == run.ops_total_bytes


# -- real SPU runs (SEMI2K, tiny) ---------------------------------------------------------------

@needs_spu
def test_spu_ops_measure_bytes_deterministically():
    ops = [bridge.op_request(Op("x", "linear", Block.FFN, 0, {"m": 4, "k": 16, "n": 8}, (Holder.SHARED, Holder.SERVER))),
           bridge.op_request(Op("y", "relu", Block.FFN, 0, {"n": 64}, (Holder.SHARED,))),
           bridge.op_request(Op("z", "layernorm", Block.NORM, 0, {"rows": 2, "cols": 16}, (Holder.SHARED, Holder.SERVER)))]
    first, second = bridge.run_ops(ops, timeout=120), bridge.run_ops(ops, timeout=120)
    assert all(m.total_bytes > 0 and m.max_send_actions > 0 for m in first)
    assert [m.total_bytes for m in first] == [m.total_bytes for m in second]
    # SEMI2K's Beaver product: both parties open their shares of x (4x16) and W (16x8), 8 bytes
    # each, then one truncation of the 4x8 output (the private W costs what a shared one does)
    assert first[0].total_bytes == 2 * 8 * (4 * 16 + 16 * 8) + 2 * 4 * 4 * 8


@needs_spu
def test_spu_whole_tiny_model_matches_plaintext_and_its_ops():
    spec = load_spec("tiny").model_copy(update={"n_layers": 1, "d_model": 16, "n_heads": 2, "d_ff": 32,
                                                "vocab_size": 32, "context_length": 4})
    run = bridge.run_model(spec, 4, "semi2k", op_by_op=True, timeout=240)
    assert run.whole.total_bytes > 0
    assert run.whole.logits_max_abs_error < 0.05 * max(1.0, run.whole.logits_max_abs)
    assert run.whole.next_token_matches
    assert len(run.ops) == len(lower(spec, 4).ops)
    # SEMI2K's ops measured one by one add up to the whole model within 1%
    assert run.ops_total_bytes == pytest.approx(run.whole.total_bytes, rel=0.01)


def test_spu_scripts_import_no_picost():
    """The scripts run in the SPU virtualenv: no picost import (they are run by path)."""
    for name in ("runner.py", "jax_ops.py", "jax_model.py"):
        text = (bridge.RUNNER.parent / name).read_text()
        assert "import picost" not in text and "from picost" not in text, name
    done = subprocess.run(["python3", "-c", "import ast,sys; ast.parse(open(sys.argv[1]).read())",
                           str(bridge.RUNNER)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr

"""The CrypTen engine (picost/crypten_engine): requests, answers and verdicts (always), the committed
validation matrix re-checked against today's crypten table (always), real CrypTen runs (when
.venv-crypten exists; set PICOST_CRYPTEN_PYTHON to an interpreter with crypten 0.4.1 if it is
elsewhere)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

import pytest
from picost.crypten_engine import bridge, validate as cv
from picost.errors import UserError
from picost.model.load import load_spec
from picost.model.lower import lower

pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "crypten" / "validation.jsonl"
CRYPTEN_MISSING = "CrypTen environment missing: bash scripts/setup-crypten.sh"
needs_crypten = pytest.mark.skipif(not bridge.crypten_available(), reason=CRYPTEN_MISSING)


# -- requests -----------------------------------------------------------------------------------

def test_payload_describes_the_torch_reference():
    spec = load_spec("tiny-llama")
    p = bridge.model_payload(spec, 4, weights="public")
    names = [o["name"] for o in p.request["ops"]]
    assert set(names) == {op.name for op in lower(spec, 4).ops}
    assert p.request["weights"] == "public" and p.request["norm_gain"] == "shared"
    assert len(p.request["ids"]) == 4 and p.request["arch"]["kv_heads"] == 2
    rope = next(o for o in p.request["ops"] if o["kind"] == "rope")
    assert rope["rotated"] == spec.dim_head and p.saved["tables"]["rope_cos"].shape == (4, spec.dim_head)
    assert set(p.saved["params"]["L0.attn.qkv"]) == {"weight"}  # no biases in a Llama
    assert p.reference_logits.shape == (1, 1, spec.vocab_size) and p.reference_token is not None
    json.dumps(p.request)  # the request is JSON; the tensors go to the params file


def test_payload_scale_constant_and_biases():
    p = bridge.model_payload(load_spec("tiny"), 4)
    scale = next(o for o in p.request["ops"] if o["name"] == "L0.attn.scale")
    assert scale["factor"] == pytest.approx(1 / 4)
    assert set(p.saved["params"]["L0.ln_attn"]) == {"weight", "bias"}
    assert "embed.pos" in p.saved["params"]


@pytest.mark.parametrize("update, match", [({"phase": "decode"}, "prefill"), ({"batch_size": 2}, "batch 1")])
def test_payload_refuses_what_the_twin_does_not_run(update, match):
    with pytest.raises(UserError, match=match):
        bridge.model_payload(load_spec("tiny").model_copy(update=update), 4)


def test_unknown_holding_is_a_user_error():
    with pytest.raises(UserError, match="unknown weights 'private'"):
        bridge.model_payload(load_spec("tiny"), 4, weights="private")


def test_missing_crypten_environment_says_how_to_make_it(monkeypatch, tmp_path, cli):
    monkeypatch.setenv("PICOST_CRYPTEN_PYTHON", str(tmp_path / "nope" / "python"))
    with pytest.raises(UserError, match="setup-crypten.sh"):
        bridge.crypten_python()
    assert not bridge.crypten_available()
    result = cli("validate", "--against", "crypten", "tiny")
    assert result.returncode == 2 and "CrypTen environment missing" in result.stderr, result.stderr


def test_cli_refuses_other_tables_before_running(cli):
    result = cli("validate", "--against", "crypten", "-p", "spu-semi2k", "tiny")
    assert result.returncode == 2 and "no --protocol" in result.stderr
    result = cli("validate", "--against", "crypten", "--option", "spu-semi2k:weights=public", "tiny")
    assert result.returncode == 2 and "only 'crypten'" in result.stderr
    result = cli("validate", "--against", "crypten", "--option", "weights=secret", "tiny")
    assert result.returncode == 2 and "secret" in result.stderr


# -- answers ------------------------------------------------------------------------------------

def _answer(ops, logits=((1.0, 2.0),), token=1):
    total = {"rounds": [sum(o["rounds"][0] for o in ops)] * 2, "bytes": [sum(o["bytes"][0] for o in ops)] * 2}
    return json.dumps({"ops": ops, "total": total, "wall_s": [0.5, 0.6], "logits": [list(logits)],
                       "next_token": token})


def test_parse_model_output():
    ops = [{"name": "embed.tok", "kind": "embedding", "rounds": [1, 1], "bytes": [100, 100]},
           {"name": "L0.ffn.act", "kind": "relu", "rounds": [9, 9], "bytes": [40, 40]}]
    run = bridge.parse_model_output("crypten log noise\n" + _answer(ops) + "\n")
    assert [(o.name, o.comm_bytes, o.comm_rounds) for o in run.ops] == [("embed.tok", 100, 1), ("L0.ffn.act", 40, 9)]
    assert (run.comm_bytes, run.comm_rounds, run.next_token, max(run.wall_s)) == (140, 10, 1, 0.6)


@pytest.mark.parametrize("text", ["", "Traceback ...\nRuntimeError: gloo", '{"ops": 3}'])
def test_parse_model_output_without_an_answer_is_a_user_error(text):
    with pytest.raises(UserError, match="no answer picost can read"):
        bridge.parse_model_output(text)


def test_scripts_import_no_picost():
    """The scripts run in the CrypTen virtualenv: no picost import (they are run by path)."""
    import ast

    for name in ("runner.py", "ct_ops.py", "ct_model.py"):
        tree = ast.parse((bridge.RUNNER.parent / name).read_text())
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert not any(m.split(".")[0] == "picost" for m in imported), (name, imported)
    done = subprocess.run(["python3", "-c", "import ast,sys; ast.parse(open(sys.argv[1]).read())",
                           str(bridge.RUNNER)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# -- verdicts -----------------------------------------------------------------------------------

def _committed() -> list[cv.CryptenCheck]:
    return [cv.CryptenCheck.from_dict(json.loads(line)) for line in RESULTS.read_text().splitlines() if line]


def test_verdicts_are_exact_except_within_a_bound():
    check = next(c for c in _committed() if c.spec == "tiny-smonly-fused" and c.options["weights"] == "shared")
    assert check.ok and check.bound_classes == ("elementwise",)
    elementwise = check.measured_by_class["elementwise"]
    # broadcast temperatures open n + heads elements, under the table's 2n
    smaller = dict(check.estimated_by_class, elementwise={**elementwise, "comm_bytes": elementwise["comm_bytes"] + 8})
    assert dataclasses.replace(check, estimated_by_class=smaller, estimated_total={
        "comm_bytes": check.estimated_total["comm_bytes"], "rounds": check.estimated_total["rounds"]}).ok
    exact = dataclasses.replace(check, bound_classes=())
    assert not exact.ok and exact.class_verdicts()["elementwise"] is False
    tiny = next(c for c in _committed() if c.spec == "tiny")
    one_round_more = dict(tiny.estimated_by_class, norm={**tiny.estimated_by_class["norm"],
                                                         "rounds": tiny.estimated_by_class["norm"]["rounds"] + 1})
    assert not dataclasses.replace(tiny, estimated_by_class=one_round_more).ok
    assert not dataclasses.replace(tiny, ops_in_order=False).ok
    assert not dataclasses.replace(tiny, logits_max_abs_error=10.0).ok
    unattributed = dict(tiny.measured_total, comm_bytes=tiny.measured_total["comm_bytes"] + 16)
    assert not dataclasses.replace(tiny, measured_total=unattributed).ok


def test_committed_runs_stay_exact_under_todays_table():
    """benchmarks/results/crypten/validation.jsonl (benchmarks/crypten_validation.py) re-estimated
    with the shipped crypten table: every run still equal per class and in total."""
    checks = _committed()
    assert len(checks) == 24
    assert {(c.spec, c.context, c.options["weights"]) for c in checks} == {
        (s, t, w) for s in ("tiny", "tiny-relu", "tiny-smonly-fused", "tiny-llama") for t in (4, 8, 16)
        for w in ("shared", "public")}
    for measured in checks:
        again = cv.recheck(measured)
        assert again.ok, (again.spec, again.context, again.options, again.class_verdicts())
        assert again.bound_classes == measured.bound_classes


def test_render_one_table():
    from rich.console import Console

    console = Console(width=160, record=True)
    console.print(cv.render(_committed()[:2]))
    text = console.export_text()
    assert "tiny" in text and "7/7" in text and "ok" in text


# -- real CrypTen runs ----------------------------------------------------------------------------

@needs_crypten
@pytest.mark.parametrize("name, context, options", [
    ("tiny", 4, {}), ("tiny-relu", 8, {}), ("tiny-llama", 4, {}), ("tiny-llama", 8, {"weights": "public"}),
    ("tiny", 6, {"weights": "public", "norm_gain": "public"}),
])
def test_crypten_runs_equal_the_table_per_class(name, context, options):
    check = cv.check(load_spec(name), context, options, timeout=600)
    assert check.ops_in_order and check.attributed
    assert check.bound_classes == () and all(check.class_verdicts().values()), check.class_verdicts()
    assert check.measured_total == {f: int(v) for f, v in check.estimated_total.items()}
    assert check.logits_ok and check.next_token_matches

"""`picost validate` and `picost mpc run` as a user runs them."""

from __future__ import annotations

import json
from tests.conftest import REPO, run_cli


def test_validate_checks_every_row_and_exits_1_on_a_wrong_table(tmp_path):
    # one launch: a copy of the table with relu's client bytes off by one byte per element
    text = (REPO / "protocols" / "picost-2pc.yaml").read_text()
    wrong = text.replace('bytes_client_to_server: "(e + cmp1) * n"', 'bytes_client_to_server: "(e + cmp1 + 1) * n"', 1)
    wrong = wrong.replace('comm_bytes: "2 * (e + cmp1) * n"', 'comm_bytes: "(2*e + 2*cmp1 + 1) * n"', 1)
    assert wrong != text
    table = tmp_path / "picost-2pc.yaml"
    table.write_text(wrong)
    res = run_cli("validate", "tiny-relu", "--no-ops", "-T", "2", "--protocol", str(table), "--format", "json")
    assert res.returncode == 1, res.stdout + res.stderr
    data = json.loads(res.stdout)
    assert not data["ok"] and data["ops"] == []
    rows = data["models"][0]["rows"]
    assert data["models"][0]["spec"] == "tiny-relu" and len(rows) > 20
    bad = {r["row"] for r in rows if not r["ok"]}
    assert bad == {r["row"] for r in rows if r["kind"] == "relu"} == {"L0.ffn.act", "L1.ffn.act"}
    for r in rows:  # the rest matches exactly; the relu rows are off by exactly the injected byte
        if r["row"] in bad:
            diff = r["predicted"]["bytes_client_to_server"] - r["measured"]["bytes_client_to_server"]
            assert diff == 2 * 256 and r["predicted"]["rounds"] == r["measured"]["rounds"]
        else:
            assert r["predicted"] == r["measured"]


def test_validate_runs_and_checks_the_tree_comparison():
    """--option comparison=tree: the engine runs its other comparison and every row of a model
    equals picost-2pc under that option; an unknown value is refused before any launch."""
    res = run_cli("validate", "tiny-relu", "--no-ops", "-T", "2", "--option", "comparison=tree", "--format", "json")
    assert res.returncode == 0, res.stdout + res.stderr
    data = json.loads(res.stdout)
    relu = [r for r in data["models"][0]["rows"] if r["kind"] == "relu"]
    assert data["ok"] and len(relu) == 2
    assert all(r["measured"]["rounds"] == 4 and r["measured"]["offline_bytes"] == 82 * 2 * 256 for r in relu)
    bad = run_cli("mpc", "run", "tiny", "--tokens", "1,2", "--option", "comparison=bits")
    assert bad.returncode == 2 and "comparison" in bad.stderr and "tables, tree" in bad.stderr


def test_validate_runs_crypten_like_choices_exactly():
    """--option truncation=local --option exp=limit (CrypTen's choices): every row of a model with
    softmax equals picost-2pc under them; the linears' rescales send nothing, the softmax's exp
    opens eight times; the next token is still the plaintext's."""
    res = run_cli("validate", "tiny", "--no-ops", "-T", "3", "--option", "truncation=local", "--option", "exp=limit",
                  "--option", "comparison=tree", "--format", "json")
    assert res.returncode == 0, res.stdout + res.stderr
    data = json.loads(res.stdout)
    rows = data["models"][0]["rows"]
    assert data["ok"] and all(r["predicted"] == r["measured"] for r in rows)
    truncs = [r for r in rows if r["row"].endswith(".trunc")]
    assert truncs and all(r["measured"]["bytes_client_to_server"] == 0 == r["measured"]["rounds"] for r in truncs)
    bad = run_cli("mpc", "run", "tiny", "--tokens", "1,2", "--option", "exp=taylor")
    assert bad.returncode == 2 and "exp" in bad.stderr and "spline, limit" in bad.stderr


def test_mpc_run_prints_token_error_and_costs():
    res = run_cli("mpc", "run", "tiny-llama", "--tokens", "5,17,3", "--frac-bits", "14", "--format", "json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["schema"] == "picost.mpc.run/1" and data["ok"]
    assert data["next_token"] == data["reference_token"]
    assert data["max_abs_error"] < 0.02 * data["max_abs_logit"]
    assert {r["row"] for r in data["rows"]} >= {"L0.attn.rope", "L0.ffn.gate_mul", "head.argmax"}


def test_user_mistakes_exit_2_without_a_launch():
    for args, needle in [(("mpc", "run", "tiny", "--tokens", "1,x"), "--tokens"),
                         (("mpc", "run", "tiny", "--tokens", "1,999"), "0..255"),
                         (("mpc", "run", "nosuchspec", "--tokens", "1"), "no such spec"),
                         (("mpc", "run", "tests/data/mpc_specs/decode-gpt.yaml", "--tokens", "1,2"), "one id"),
                         (("mpc", "run", "tiny", "--tokens", ",".join(["1"] * 17)), "learned"),
                         (("validate", "nosuchspec"), "no such spec"),
                         (("validate", "--protocol", "nosuchtable"), "no such protocol")]:
        res = run_cli(*args, timeout=60)
        assert res.returncode == 2, (args, res.stdout, res.stderr)
        assert needle in res.stderr and "Traceback" not in res.stderr


def test_mpc_run_with_a_context_reports_setup_preprocessing_and_memory():
    res = run_cli("mpc", "run", "tiny-relu", "-T", "3", "--seed", "4", "--format", "json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["ok"] and len(data["ids"]) == 3 and data["next_token"] == data["reference_token"]
    again = json.loads(run_cli("mpc", "run", "tiny-relu", "-T", "3", "--seed", "4", "--format", "json").stdout)
    assert again["ids"] == data["ids"]  # the pseudo-random prompt follows --seed
    setup = sum(r["measured"]["setup_bytes"] for r in data["rows"])
    assert setup > 0 and setup == sum(r["predicted"]["setup_bytes"] for r in data["rows"])
    assert data["preprocess_s"] > 0 and set(data["peak_rss_bytes"]) == {"client", "server", "dealer"}
    assert all(2**24 < b < 2**33 for b in data["peak_rss_bytes"].values())


def test_mpc_run_needs_exactly_one_prompt():
    for args in ((), ("--tokens", "1,2", "-T", "2")):
        res = run_cli("mpc", "run", "tiny", *args)
        assert res.returncode == 2 and "--tokens" in res.stderr and "Traceback" not in res.stderr

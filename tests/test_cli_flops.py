"""`picost specs` and `picost flops`: outputs, JSON schema, exit codes."""

from __future__ import annotations

import csv
import io
import json

from picost.model.flops import count_flops
from picost.model.load import load_spec, shipped_spec_names
from tests.conftest import run_cli


def test_flops_json_schema_and_values():
    proc = run_cli("flops", "gpt2", "--context", "128", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["schema"] == "picost.flops/1"
    assert (data["spec"], data["context"], data["phase"], data["batch_size"]) == ("gpt2", 128, "prefill", 1)
    report = count_flops(load_spec("gpt2"), 128)
    assert data["total_flops"] == report.total
    assert sum(data["by_group"].values()) == data["total_flops"]
    assert sum(data["by_layer"].values()) == data["total_flops"]
    assert sum(op["flops"] for op in data["ops"]) == data["total_flops"]
    assert data["nonlinear"]["softmax"] == {"ops": 12, "instances": 144, "elements": 144 * 128 * 128,
                                            "shape": "128x128"}
    assert data["nonlinear"]["layernorm"]["ops"] == 24
    assert data["nonlinear"]["layernorm (final)"]["ops"] == 1
    first = data["ops"][0]
    assert set(first) == {"name", "kind", "block", "layer", "class", "dims", "operands", "instances",
                          "causal", "flops", "elements"}
    assert first["operands"] == ["client", "server"]


def test_flops_csv_by_layer_sums_to_total():
    proc = run_cli("flops", "llama3-8b", "-T", "64", "--by", "layer", "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert [r["layer"] for r in rows[1:33]] == [f"L{i}" for i in range(32)]
    assert sum(int(r["FLOPs"]) for r in rows) == count_flops(load_spec("llama3-8b"), 64).total


def test_flops_table_mentions_totals():
    proc = run_cli("flops", "tiny")
    assert proc.returncode == 0, proc.stderr
    assert "tiny: FLOPs at T=16" in proc.stdout and "softmax" in proc.stdout


def test_flops_symbolic():
    proc = run_cli("flops", "gpt2", "--symbolic", "--symbols", "T,L,d")
    assert proc.returncode == 0, proc.stderr
    assert "total = 4*L*T**2*d + 24*L*T*d**2 + 100514*d" in proc.stdout


def test_specs_lists_every_shipped_spec():
    proc = run_cli("specs")
    assert proc.returncode == 0, proc.stderr
    for name in shipped_spec_names():
        assert name in proc.stdout


def test_user_errors_exit_2_without_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nn_layers: 2\nd_model: 10\nn_heads: 3\nd_ff: 4\nvocab_size: 5\ncontext_length: 4\n")
    cases = [
        ("flops", str(bad)),
        ("flops", "no-such-spec"),
        ("flops", "gpt2", "--by", "nope"),
        ("flops", "gpt2", "--context", "0"),
        ("flops", "gpt2", "--context", "abc"),
        ("flops", "gpt2", "--symbolic", "--symbols", "T,q"),
        ("flops",),
        ("flops", "gpt2", "--unknown-option"),
    ]
    for args in cases:
        proc = run_cli(*args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr, args
    proc = run_cli("flops", str(bad))
    assert f"{bad}:4" in proc.stderr and "n_heads" in proc.stderr

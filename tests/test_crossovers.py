"""`picost crossovers` (issue 23): every context at which one op class overtakes another, in
bytes and in latency, checked against the estimate at T - 1 and T; bad input is exit 2."""

from __future__ import annotations

import csv
import io
import json

import pytest

from picost.analysis.class_crossovers import class_crossovers
from picost.analysis.estimate import estimate
from picost.cost.network import get_network
from picost.cost.protocol_table import load_protocol
from picost.model.load import load_spec
from tests.conftest import run_cli


@pytest.mark.parametrize("spec_name, protocol", [("gpt2", "bumblebee"), ("tiny", "crypten"), ("bert-base", "puma")])
def test_every_crossover_is_where_the_estimate_says_one_class_passes_another(spec_name, protocol):
    spec, table, wan = load_spec(spec_name), load_protocol(protocol), get_network("wan")
    found = class_crossovers(spec, [table], [wan], max_context=512)
    assert found
    for x in found:
        before = estimate(spec, table, wan, x.context - 1).by("class")
        at = estimate(spec, table, wan, x.context).by("class")
        assert getattr(at[x.over], x.quantity) > getattr(at[x.under], x.quantity), x
        assert getattr(before[x.over], x.quantity) <= getattr(before[x.under], x.quantity), x
        assert getattr(at[x.over], x.quantity) == pytest.approx(x.over_value, rel=1e-9)


def test_no_crossover_is_missed_between_two_classes():
    """Brute force over T = 1 .. 200 for one pair: every sign change is listed, and only those."""
    spec, table, wan = load_spec("gpt2"), load_protocol("bumblebee"), get_network("wan")
    listed = {x.context for x in class_crossovers(spec, [table], [wan], max_context=200)
              if x.quantity == "latency_s" and x.over == "softmax" and x.under == "attention_matmul"}
    ahead = [None] + [estimate(spec, table, wan, t).by("class") for t in range(1, 201)]
    truth = {t for t in range(2, 201) if ahead[t]["softmax"].latency_s > ahead[t]["attention_matmul"].latency_s
             and not ahead[t - 1]["softmax"].latency_s > ahead[t - 1]["attention_matmul"].latency_s}
    assert listed == truth and truth


def test_gpt2_lists_the_crossovers_a_pi_researcher_asks_for_first():
    res = run_cli("crossovers", "gpt2", "-p", "bumblebee", "-n", "wan", "--max-context", "4096", "-f", "json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["schema"] == "picost.crossovers/1"
    pairs = {(x["quantity"], x["overtakes"], x["overtaken"]) for x in data["crossovers"]}
    for quantity in ("comm_bytes", "latency_s"):
        assert (quantity, "attention_matmul", "linear") in pairs
        assert (quantity, "softmax", "activation") in pairs


def test_csv_names_columns_with_units_and_classes_filter():
    res = run_cli("crossovers", "tiny", "-p", "crypten", "--max-context", "256", "--classes", "softmax,norm",
                  "-f", "csv")
    assert res.returncode == 0, res.stderr
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert list(rows[0]) == ["protocol", "quantity", "network", "T_tokens", "overtakes", "overtaken",
                             "overtakes_value", "overtaken_value"]
    assert all({r["overtakes"], r["overtaken"]} == {"softmax", "norm"} for r in rows)


@pytest.mark.parametrize("args, field", [(("--classes", "softmax,attn"), "--classes"),
                                         (("--max-context", "1"), "--max-context"),
                                         (("-f", "xml"), "--format"), (("-p", "nosuch"), "")])
def test_bad_input_is_exit_2_with_one_message(args, field):
    argv = ["crossovers", "tiny", "-p", "crypten", *args] if args[0] != "-p" else ["crossovers", "tiny", *args]
    res = run_cli(*argv)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert field in res.stderr

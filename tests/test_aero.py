"""AERO transforms: each step changes exactly what it should, composes, and refuses what it must."""

from __future__ import annotations

import pytest

import picost

from picost.analysis.ablation import ablation, format_counts, nonlinear_counts
from picost.model.aero_transforms import (aero_steps, entropy_regularization, fuse_ffn, gelu_to_relu, prune_deep_ffns,
                         remove_norms, softmax_only)
from picost.errors import UserError
from picost.model.flops import count_flops
from picost.model.lower import lower
from picost.model.load import load_spec

STRUCTURAL = ("n_layers", "d_model", "n_heads", "d_ff", "vocab_size", "activation", "norm", "attention",
              "positional", "ffn", "head", "argmax")


def same_model(a, b) -> bool:
    da, db = a.model_dump(), b.model_dump()
    return all(da[k] == db[k] for k in STRUCTURAL)


@pytest.fixture(scope="module")
def gpt2():
    return load_spec("gpt2")


def kinds(spec, T=16):
    return [op.kind for op in lower(spec, T).ops]


def test_gelu_to_relu_swaps_only_the_activation(gpt2):
    relu = gelu_to_relu(gpt2)
    assert relu.activation == "relu" and gpt2.activation == "gelu_tanh"  # input untouched
    assert kinds(relu).count("relu") == 12 and "gelu_tanh" not in kinds(relu)
    assert same_model(relu, load_spec("gpt2-relu"))
    assert gelu_to_relu(relu) is relu  # idempotent
    assert count_flops(relu, 64).total == count_flops(gpt2, 64).total


def test_remove_norms_removes_every_norm(gpt2):
    free = remove_norms(gelu_to_relu(gpt2))
    assert not {"layernorm", "rmsnorm"} & set(kinds(free))
    assert same_model(free, load_spec("gpt2-lnfree-relu"))
    llama = remove_norms(load_spec("llama2-7b"))
    assert "rmsnorm" not in kinds(llama, 4)


def test_softmax_only_leaves_softmax_as_the_only_block_nonlinearity(gpt2):
    smonly = softmax_only(gpt2)
    nonlinear = {op.kind for op in lower(smonly, 16).ops if op.kind in
                 ("gelu", "gelu_tanh", "relu", "silu", "layernorm", "rmsnorm", "softmax")}
    assert nonlinear == {"softmax"}
    assert same_model(smonly, load_spec("gpt2-smonly"))
    assert sum(op.name.endswith("out_scale") for op in lower(smonly, 16).ops) == 12
    assert not softmax_only(gpt2, scaled_ffn=False).ffn.learnable_output_scale


def test_fusion_is_refused_while_an_activation_remains(gpt2):
    for spec in (gpt2, gelu_to_relu(gpt2), remove_norms(gelu_to_relu(gpt2))):
        with pytest.raises(UserError, match="activation '(gelu_tanh|relu)' remains"):
            fuse_ffn(spec)


def test_fusion_makes_one_d_by_d_linear_and_folds_the_scale(gpt2):
    fused = fuse_ffn(softmax_only(gpt2))
    ffn_linears = [op for op in lower(fused, 16).ops if op.block.value == "ffn" and op.kind == "linear"]
    assert len(ffn_linears) == 12 and all(op.dims["k"] == op.dims["n"] == 768 for op in ffn_linears)
    assert not fused.ffn.learnable_output_scale
    assert same_model(fused, load_spec("gpt2-smonly-fused"))  # one definition of AERO's fusion
    assert picost.estimate(fused, "bumblebee", "wan", 128).totals.comm_bytes == \
        picost.estimate("gpt2-smonly-fused", "bumblebee", "wan", 128).totals.comm_bytes
    # 2*T*d*d per layer instead of 2*2*T*d*4d: 8x fewer FFN FLOPs
    assert count_flops(softmax_only(gpt2), 16).by_group()["ffn"] == 8 * count_flops(fused, 16).by_group()["ffn"]


def test_prune_counts_the_deepest_ffns(gpt2):
    base = fuse_ffn(softmax_only(gpt2))
    for count in (0, 1, 6, 12):
        pruned = prune_deep_ffns(base, count)
        assert pruned.pruned_ffn_layers == frozenset(range(12 - count, 12))
    assert prune_deep_ffns(base).pruned_ffn_layers == frozenset(range(6, 12))  # default: half
    shipped = load_spec("gpt2-smonly-fused-pruned")
    assert same_model(prune_deep_ffns(base, 6), shipped)
    assert prune_deep_ffns(shipped, 6) is shipped  # nothing new to prune
    twice = prune_deep_ffns(prune_deep_ffns(base.model_copy(), 2), 4)
    assert twice.pruned_ffn_layers == frozenset(range(8, 12))
    for bad in (-1, 13, True):
        with pytest.raises(UserError, match="0..12"):
            prune_deep_ffns(base, bad)


def test_prune_keeps_earlier_pruned_layers(gpt2):
    data = gpt2.model_dump()
    data["ffn"]["pruned_layers"] = [1]
    spec = type(gpt2).model_validate(data)
    assert prune_deep_ffns(spec, 2).pruned_ffn_layers == frozenset({1, 10, 11})


def test_entropy_regularization_changes_nothing_unless_temperature_kept(gpt2):
    assert entropy_regularization(gpt2) is gpt2
    kept = entropy_regularization(gpt2, keep_temperature=True)
    names = [op.name for op in lower(kept, 16).ops]
    assert sum(n.endswith(".temperature") for n in names) == 12 and not any(n.endswith(".scale") for n in names)


def test_gated_ffns_are_refused_with_a_clear_message():
    with pytest.raises(UserError, match="gated FFN"):
        gelu_to_relu(load_spec("llama3-8b"))
    with pytest.raises(UserError, match="gated FFN"):
        softmax_only(load_spec("llama3-8b"))


def test_nonlinear_counts_in_aero_notation(gpt2):
    counts = nonlinear_counts(lower(gpt2, 128))
    assert counts["SM"] == [(144, "128x128")]
    assert counts["LN"] == [(24, "128x768"), (1, "1x768")]  # the final norm runs on the row the head reads
    assert counts["GELU"] == [(12, "128x3072")]
    assert format_counts(counts) == ("LN: 24 x R^{128x768} + 1 x R^{1x768}; SM: 144 x R^{128x128}; "
                                     "GELU: 12 x R^{128x3072}")


def test_ablation_rows_and_savings(gpt2):
    rows = ablation(aero_steps(gpt2, prune=6), context=128)
    assert [r.label for r in rows] == ["SM + LN + GELU", "SM + LN + ReLU", "SM + ReLU", "SM-only (scaled FFN)",
                                       "SM-only + FFN fusion", "SM-only + fusion + 6 FFNs pruned"]
    d, T = 768, 128
    assert rows[0].ffn_flops == 12 * 16 * T * d * d
    assert rows[4].ffn_flops == 12 * 2 * T * d * d and rows[5].ffn_flops == 6 * 2 * T * d * d
    assert all(r.attention_flops == rows[0].attention_flops for r in rows)
    assert rows[5].savings["ffn_flops"] == pytest.approx(16)
    assert rows[0].savings["total_flops"] == 1.0
    assert set(rows[-1].nonlinear) == {"SM", "argmax"}


def test_aero_cli_and_its_bad_options(cli):
    ok = cli("aero", "gpt2", "-T", "128", "--format", "json")
    assert ok.returncode == 0, ok.stderr
    import json

    data = json.loads(ok.stdout)
    assert data["steps"][0]["nonlinear"]["SM"] == [{"instances": 144, "shape": "128x128"}]
    assert "training" in data["note"]
    for args in (("--prune", "13"), ("--format", "xml"), ("--context", "0")):
        bad = cli("aero", "gpt2", *args)
        assert bad.returncode == 2, (args, bad.stderr)
        assert "Traceback" not in bad.stderr
    assert cli("aero", "llama3-8b").returncode == 2


def test_aero_ablation_costs_equal_estimates(cli):
    import json
    from pathlib import Path

    from picost.analysis.estimate import estimate_lowered
    from picost.cost.network import get_network
    from picost.cost.protocol_table import load_protocol

    fixture = str(Path(__file__).parent / "data" / "protocols" / "sweepfix.yaml")
    r = cli("aero", "gpt2", "-T", "64", "-p", fixture, "-n", "wan", "--prune", "3", "-f", "json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    steps = aero_steps(load_spec("gpt2"), prune=3)
    base = None
    for step, row in zip(steps, data["steps"]):
        est = estimate_lowered(lower(step.spec, 64), load_protocol(fixture), get_network("wan"))
        assert row["comm_bytes"] == est.totals.comm_bytes
        assert row["latency_s"] == pytest.approx(est.totals.latency_s)
        base = base or est
        assert row["savings"]["latency_s"] == pytest.approx(base.totals.latency_s / est.totals.latency_s)
    assert data["steps"][-1]["label"] == "SM-only + fusion + 3 FFNs pruned"


def test_descriptions_say_what_the_model_started_from_and_each_step():
    from picost.model.aero_transforms import gelu_to_relu, remove_norms
    from picost.model.load import load_spec

    base = load_spec("gpt2")
    text = remove_norms(gelu_to_relu(base)).description
    assert text == f"{base.description} — then: gelu_tanh replaced by ReLU; every layernorm removed"


def test_aero_csv_names_its_columns_as_the_json_does():
    """Issue 23: the CSV said `comm`, `latency` and `comm x`; now the JSON's names, with units."""
    import csv
    import io

    from tests.conftest import run_cli

    res = run_cli("aero", "gpt2", "-p", "bumblebee", "-n", "wan", "-T", "32", "-f", "csv")
    assert res.returncode == 0, res.stderr
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert list(rows[0])[2:] == ["ffn_flops", "attention_flops", "total_flops", "total_flops_savings", "comm_bytes",
                                 "comm_bytes_savings", "latency_s", "latency_s_savings"]
    base, last = rows[0], rows[-1]
    assert float(last["comm_bytes_savings"]) == pytest.approx(float(base["comm_bytes"]) / float(last["comm_bytes"]))

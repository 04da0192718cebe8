"""ViT's patch input, classifier heads (tanh) and mixtures of experts (topk) through the estimate and
the CLI: what -T means for a ViT, which tables cost tanh and topk and which refuse, and that the
routing convention shows in the output."""

from __future__ import annotations

import json

import pytest

from picost.errors import UserError
from picost.model.load import load_spec
from picost.model.lower import lower
from picost.cost.protocol_table import load_protocol
from tests.conftest import run_cli


def test_vit_tokens_are_patches_plus_cls():
    spec = load_spec("vit-base")
    patch = lower(spec).ops[0]
    assert (patch.name, patch.kind, patch.dims["m"], patch.dims["k"]) == ("embed.patch", "linear", 196, 3 * 16 * 16)
    assert lower(spec, 577).ops[0].dims["m"] == 576  # -T 577: a 384x384 image at patch 16
    assert "576 patches" in lower(spec, 577).ops[0].notes[0] and "T = 197" in lower(spec, 577).ops[0].notes[0]
    with pytest.raises(UserError, match="no image patch"):
        lower(spec, 1)


def test_vit_cli_estimate_and_bad_t():
    r = run_cli("estimate", "vit-base", "-p", "puma", "-n", "lan", "-f", "json")
    assert r.returncode == 0, r.stderr
    rows = {row["name"]: row for row in json.loads(r.stdout)["rows"]}
    assert rows["embed.patch"]["comm_bytes"] > 0 and "embed.tok" not in rows
    r = run_cli("estimate", "vit-base", "-p", "puma", "-n", "lan", "-T", "1")
    assert r.returncode == 2 and "no image patch" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("field,value,message", [
    ("context_length", 128, "contradicts the image"),
    ("vocab_size", 100, "no vocabulary"),
    ("head", "last", "projects onto a vocabulary"),
])
def test_vit_spec_mistakes_name_the_field(tmp_path, field, value, message):
    path = tmp_path / "bad.yaml"
    path.write_text(f"extends: vit-base\n{field}: {json.dumps(value)}\n")
    r = run_cli("flops", str(path))
    assert r.returncode == 2 and message in r.stderr and field in r.stderr, r.stderr


@pytest.mark.parametrize("protocol,costed", [("crypten", True), ("shaft", True), ("plaintext", True),
                                             ("picost-2pc", False), ("puma", False)])
def test_pooler_tanh_is_costed_or_refused_by_name(protocol, costed):
    r = run_cli("estimate", "bert-base-cls", "-p", protocol, "-n", "lan", "-T", "16", "-f", "json")
    if not costed:
        assert r.returncode == 2 and "head.pooler_act (kind tanh)" in r.stderr, r.stderr
        return
    assert r.returncode == 0, r.stderr
    rows = {row["name"]: row for row in json.loads(r.stdout)["rows"]}
    assert rows["head.pooler_act"]["kind"] == "tanh"
    if protocol != "plaintext":
        assert rows["head.pooler_act"]["comm_bytes"] > 0


def test_topk_is_k_argmaxes_where_derived_and_refused_by_picost_2pc():
    spec = load_spec("mixtral-8x7b")
    topk = next(op for op in lower(spec, 4).ops if op.kind == "topk")
    argmax_like = topk.__class__("x", "argmax", topk.block, None, {"rows": topk.dims["rows"], "cols": topk.dims["cols"]},
                                 topk.operands)
    for name in ("crypten", "spu-semi2k"):
        table = load_protocol(name)
        assert table.entries["topk"].source.startswith("derived:")
        one, two = table.cost(argmax_like)[0], table.cost(topk)[0]
        assert two.comm_bytes == topk.dims["k"] * one.comm_bytes and two.rounds == topk.dims["k"] * one.rounds
    r = run_cli("estimate", "mixtral-8x7b", "-p", "picost-2pc", "-n", "lan", "-T", "4")
    assert r.returncode == 2 and "L0.ffn.topk (kind topk)" in r.stderr


def test_routing_is_visible_and_costs_e_over_k_experts():
    rows = {}
    for name in ("mixtral-8x7b", "mixtral-8x7b-revealed"):
        r = run_cli("estimate", name, "-p", "crypten", "-n", "lan", "-T", "4", "-f", "json")
        assert r.returncode == 0, r.stderr
        rows[name] = {row["name"]: row for row in json.loads(r.stdout)["rows"]}
    assert "oblivious" in load_spec("mixtral-8x7b").description
    assert "revealed" in load_spec("mixtral-8x7b-revealed").description
    assert "revealed routing" in lower(load_spec("mixtral-8x7b-revealed"), 4).by_kind("topk")[0].notes[0]
    ob, rv = rows["mixtral-8x7b"]["L0.ffn.experts.down"], rows["mixtral-8x7b-revealed"]["L0.ffn.experts.down"]
    assert ob["flops"] == 4 * rv["flops"]  # 8 experts vs 2 per token

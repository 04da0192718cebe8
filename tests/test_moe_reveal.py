"""The opening of a mixture of experts' routing under ``routing: revealed``: one ``reveal`` row per
layer right after the topk, costed from each table's setting (each party sends the shares the others
lack, in one flight), absent under oblivious routing, refused by name where the setting says nothing
about opening, and transparent to a hybrid's conversions (the gate softmax still converts the topk's
shares)."""

from __future__ import annotations

import json

import pytest

from picost.analysis.estimate import estimate
from picost.cost.protocol_table import load_protocol
from picost.errors import UserError
from picost.model.load import load_spec
from picost.model.lower import lower
from tests.conftest import run_cli

REVEALED = load_spec("mixtral-8x7b-revealed")
K, E = REVEALED.moe.experts_per_token, REVEALED.moe.experts


def _rows(spec: str, protocol: str, T: int) -> list[dict]:
    r = run_cli("estimate", spec, "-p", protocol, "-n", "lan", "-T", str(T), "-f", "json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["rows"]


@pytest.mark.parametrize("protocol,senders", [("crypten", 2), ("puma", 3)])
@pytest.mark.parametrize("T", [4, 128])
def test_revealed_routing_opens_k_indices_per_token_after_each_topk(protocol, senders, T):
    """2PC additive (crypten): both parties send their share; 3PC replicated (puma): each of the
    three sends the share the next lacks. A share is one Z_2^64 element: 8 bytes."""
    table = load_protocol(protocol)
    assert (table.setting.parties, table.setting.ring_bits) == (senders, 64)
    rows = _rows("mixtral-8x7b-revealed", protocol, T)
    names = [r["name"] for r in rows]
    reveals = [r for r in rows if r["kind"] == "reveal"]
    assert len(reveals) == REVEALED.n_layers
    for r in reveals:
        assert names[names.index(r["name"]) - 1] == r["name"].replace(".reveal", ".topk")
        opened = T * K  # batch 1: every token's k expert indices
        assert r["dims"] == {"n": opened} and r["class"] == "activation" and r["flops"] == 0
        assert r["comm_bytes"] == senders * opened * 8 and r["rounds"] == 1
        assert r["source"].startswith("derived: ") and "ring_bits" in r["source"]
        assert "expert indices" in r["notes"][0] and "computing parties" in r["notes"][0]
    if senders == 2:  # one share each way
        assert all(r["bytes_client_to_server"] == r["bytes_server_to_client"] == T * K * 8 for r in reveals)


def test_oblivious_routing_opens_nothing():
    assert not lower(load_spec("mixtral-8x7b"), 16).by_kind("reveal")
    rows = _rows("mixtral-8x7b", "crypten", 4)
    assert not [r for r in rows if r["kind"] == "reveal"] and any(r["kind"] == "topk" for r in rows)


def test_the_text_output_says_what_is_opened():
    r = run_cli("estimate", "mixtral-8x7b-revealed", "-p", "puma", "-n", "lan", "-T", "4")
    assert r.returncode == 0, r.stderr
    text = " ".join(r.stdout.split())
    assert f"{REVEALED.n_layers} reveal rows (L0.ffn.reveal" in text and "expert indices" in text
    assert "opened" not in run_cli("estimate", "mixtral-8x7b", "-p", "puma", "-n", "lan", "-T", "4").stdout


def test_plaintext_opens_for_free():
    reveal = lower(REVEALED, 4).by_kind("reveal")[0]
    cost = load_protocol("plaintext").cost(reveal)[0]
    assert (cost.comm_bytes, cost.rounds) == (0, 0)


def test_picost_2pc_refuses_the_reveal_by_name():
    reveal = lower(REVEALED, 4).by_kind("reveal")[0]
    with pytest.raises(UserError) as err:
        load_protocol("picost-2pc").cost(reveal)
    assert "L0.ffn.reveal (kind reveal)" in err.value.message and "derived_entries: false" in err.value.message


def test_a_setting_without_an_opening_rule_refuses_with_exit_2(tmp_path):
    """HE-held activations: opening them is a decryption by the key holder, not derivable here."""
    path = tmp_path / "he-crypten.yaml"
    path.write_text("name: he-crypten\nextends: crypten\ndescription: crypten's entries, activations as HE "
                    "ciphertexts\nsetting: {parties: 2, threat_model: semi-honest, correlated_randomness: none, "
                    "ring_bits: 64, sharing: he}\nconfidence: a test table\nops: {}\n")
    assert "reveal" not in load_protocol(path).entries and "topk" in load_protocol(path).entries
    r = run_cli("estimate", "mixtral-8x7b-revealed", "-p", str(path), "-n", "lan", "-T", "4")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "L0.ffn.reveal (kind reveal)" in r.stderr and "opening" in r.stderr


def test_a_hybrid_converts_the_topk_shares_for_the_gate_softmax_not_the_opened_indices():
    """spu-semi2k (Z_2^64, f=18) with sigma's softmax (Z_2^50, f=12): the gate softmax reads the
    topk's rows x E logits, so that is what is converted; the opened indices are public. (sigma
    has no softmax entry, so the softmax rows stay uncosted; the conversions are costed.)"""
    T = 4
    est = estimate(REVEALED, "spu-semi2k,softmax=sigma", "lan", T, allow_uncosted=True)
    rows = {r.name: r for r in est.rows if r.layer == 0}
    names = list(rows)
    at = names.index("L0.ffn.reveal")
    assert names[at - 1] == "L0.ffn.topk" and rows["L0.ffn.reveal"].table == rows["L0.ffn.topk"].table
    converted = [rows[n] for n in names[at + 1:] if n.startswith("L0.ffn.gate_softmax.")]
    assert converted and all(r.op_class == "conversion" and r.dims["n"] == T * E for r in converted)
    assert any(r.costed and r.comm_bytes > 0 for r in converted)

"""The server's weights are masked once per model (``setup_bytes``), not at every inference."""

from __future__ import annotations

import pytest
import torch

from picost.analysis.estimate import estimate
from picost.analysis.generation import generation
from picost.model.load import load_spec
from picost.mpc import ring


def _weight_elements(name: str) -> int:
    """Elements of every server weight that enters a product (from the spec, not the table):
    embedding table, each layer's linears and norm gains, the final norm, the head."""
    s = load_spec(name)
    d, dff, V = s.d_model, s.ffn_width, s.vocab_size
    qkv = d * (s.n_heads + 2 * s.kv_heads) * s.dim_head
    layer = qkv + s.n_heads * s.dim_head * d + 2 * d * dff + 2 * d
    return V * d + s.n_layers * layer + d + d * V


def test_setup_bytes_are_every_masked_weight_once():
    est = estimate("tiny", "picost-2pc", "lan", 4)
    assert est.totals.setup_bytes == 8 * _weight_elements("tiny")
    # and nothing of it is online: the linears send nothing server -> client
    linears = [r for r in est.rows if r.kind in ("linear", "embedding")]
    assert linears and all(r.bytes_server_to_client == 0 and r.setup_bytes > 0 for r in linears)


def test_setup_does_not_depend_on_the_prompt_and_is_counted_once_in_generation():
    short, long = (estimate("tiny", "picost-2pc", "lan", t).totals.setup_bytes for t in (2, 12))
    assert short == long
    gen = generation("tiny", "picost-2pc", "lan", 4, 3)
    assert gen.totals()["setup_bytes"] == short
    assert gen.totals()["comm_bytes"] > gen.prefill.totals.comm_bytes  # the steps' online bytes do add up


def test_hashed_bits_are_words_read_as_packed_bytes_and_pairs_read_from_them():
    from picost.mpc.dealer import RowShares

    words = ring.hashed_words(9, 3, 6)  # bits 192 .. 575
    bits = ring.unpack_residues(words.view(torch.uint8), 2, 6 * 64)
    assert torch.equal(ring.pack_residues(bits, 2), words.view(torch.uint8))
    for p in (0, 1, 63, 64, 200, 383):
        assert int(bits[p]) == int((words[p // 64] >> (p % 64)) & 1)
    # a keyed bit table of 3 rows x 128: the client's share from its key, the server's as the dealer
    # packs it; as words, XOR shares of the table's bits (bit p mod 64 of word p // 64)
    table = ring.uniform_mod((3, 128), 2, torch.Generator().manual_seed(4))
    client = RowShares(128, 2, key=9)
    client_bits = ring.unpack_residues(ring.hashed_words(9, 0, 6).view(torch.uint8), 2, 384).view(3, 128)
    server = RowShares(128, 2, pieces=[ring.pack_residues(table ^ client_bits, 2)])
    words = client.words(3) ^ server.words(3)
    assert torch.equal((words.unsqueeze(-1) >> torch.arange(64)).view(3, 128) & 1, table.long())
    assert torch.equal(RowShares(128, 2).words(3), torch.zeros(3, 2, dtype=torch.int64))  # the dealer's


def test_parties_keep_freed_memory_on_glibc():
    """picost/mpc/heap.py: glibc takes the settings (in a fresh process: they change its malloc)."""
    import subprocess
    import sys

    if not sys.platform.startswith("linux"):
        pytest.skip("glibc only")
    out = subprocess.run([sys.executable, "-c", "from picost.mpc.heap import keep_freed_memory; print(keep_freed_memory())"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


def test_random_bits_are_balanced_and_reproducible():
    draw = lambda seed: ring.uniform_mod((1000, 37), 2, torch.Generator().manual_seed(seed))  # noqa: E731
    assert torch.equal(draw(1), draw(1)) and not torch.equal(draw(1), draw(2))
    assert abs(float(draw(3).double().mean()) - 0.5) < 0.01 and int(draw(3).max()) == 1


def test_tables_without_a_model_setup_say_none():
    assert estimate("tiny", "crypten", "lan", 4).totals.setup_bytes == 0
    assert estimate("tiny", "crypten", "lan", 4).totals.setup_rows == 0


def test_hashed_shares_are_random_access_and_balanced():
    idx = torch.arange(200_000)
    full = ring.hashed(12345, idx)
    assert torch.equal(full[1000:1010], ring.hashed(12345, idx[1000:1010]))  # any position, alone
    assert not torch.equal(full[:100], ring.hashed(12346, idx[:100]))  # another key, other values
    bits = torch.stack([(full >> b) & 1 for b in (0, 17, 40, 63)]).double().mean(1)
    assert ((bits - 0.5).abs() < 0.01).all()
    assert torch.equal(ring.hashed_range(12345, 40, 1000), full[40:1040])  # a whole range: the same values
    assert torch.equal(ring.hashed_range(7, 40, 1000, 3), ring.hashed(7, idx[40:1040], 3))
    trits = ring.hashed(7, idx, 3)
    assert trits.dtype == torch.uint8
    counts = torch.bincount(trits.long(), minlength=3).double() / len(idx)
    assert ((counts - 1 / 3).abs() < 0.01).all()


def test_memory_check_counts_the_widest_ops_material():
    from picost.mpc.memory import BYTES_PER_PARAM, needed_bytes, parameter_count, widest_op_dealer_bytes

    gpt2 = load_spec("gpt2")
    widest = widest_op_dealer_bytes(gpt2, 128)
    # GPT-2's widest op at T = 128 is the GELU over 128 x 3072 elements: digit tables 1024 B, 648 B per
    # threshold (J = 9), r^2 8 B and its closing truncation 16 B each (docs/mpc-engine.md)
    assert widest == 128 * 3072 * (1024 + 648 * 9 + 8 + 16)
    assert widest_op_dealer_bytes(gpt2, 16) < widest  # it grows with T, the weights do not
    need = needed_bytes(gpt2, 128)
    assert need > parameter_count(gpt2) * BYTES_PER_PARAM + 2 * widest
    # above what the three processes measured at their peaks (docs/mpc-engine.md: 2.21 + 5.27 + 1.20 GB)
    assert need > 2_207_903_744 + 5_266_178_048 + 1_199_783_936


def test_a_run_too_big_for_the_machine_is_refused_up_front(monkeypatch):
    import pytest

    from picost.errors import UserError
    from picost.mpc import memory
    from picost.mpc.launcher import model_job

    monkeypatch.setattr(memory, "available_bytes", lambda: 2 << 30)
    with pytest.raises(UserError) as err:
        model_job("gpt2", [1] * 128)
    assert "T = 128" in err.value.message and "--force" in err.value.message
    assert model_job("gpt2", [1] * 128, force=True)["context"] == 128

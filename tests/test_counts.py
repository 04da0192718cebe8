"""Counts and FLOPs computed by hand, with the arithmetic written out.

Conventions (picost/model/ops.py): a multiply-add is 2 FLOPs, so an (m x k)(k x n) product is
2*m*k*n FLOPs; only linears and the secret matmuls QK^T, AV carry FLOPs; the causal mask does
not shrink anything; GQA stacks the g = n_heads / n_kv_heads query heads sharing a KV head.

Sizes: GPT-2 small from HuggingFace ``gpt2/config.json`` (n_layer 12, n_embd 768, n_head 12,
n_inner 4*768 = 3072, vocab 50257, gelu_new); Llama-3-8B from ``meta-llama/Meta-Llama-3-8B/
config.json`` (32 layers, hidden 4096, 32 heads of 128, 8 KV heads, intermediate 14336,
vocab 128256). The GPT-2 counts at T=128 are those of issue 2, item 3 (144 softmaxes over
128x128, 24 LayerNorms over 128x768 plus the final one, 12 GELUs over 128x3072). With head
``last`` the final LayerNorm runs on the one row the head reads (1x768).
"""

from __future__ import annotations

from picost.model.flops import count_flops
from picost.model.lower import lower
from picost.model.load import load_spec
from tests.strategies import with_fields


def test_gpt2_at_128_nonlinear_counts() -> None:
    nl = count_flops(load_spec("gpt2"), 128).nonlinear()
    # Softmax: one op per layer (12), one instance per head (12) -> 12 * 12 = 144 over 128 x 128.
    assert (nl["softmax"]["ops"], nl["softmax"]["instances"], nl["softmax"]["shape"]) == (12, 144, "128x128")
    assert nl["softmax"]["elements"] == 144 * 128 * 128 == 2_359_296
    # LayerNorm: 2 per block (before attention, before FFN) * 12 = 24 over 128 x 768; final apart.
    assert (nl["layernorm"]["ops"], nl["layernorm"]["shape"]) == (24, "128x768")
    assert nl["layernorm"]["elements"] == 24 * 128 * 768 == 2_359_296
    assert (nl["layernorm (final)"]["ops"], nl["layernorm (final)"]["elements"]) == (1, 768)  # head: last
    # GELU (tanh form, gelu_new): one per block over T x d_ff = 128 * 3072 elements.
    assert nl["gelu_tanh"]["ops"] == 12
    assert nl["gelu_tanh"]["elements"] == 12 * 128 * 3072 == 4_718_592
    # Argmax of the last position over the vocabulary.
    assert (nl["argmax"]["ops"], nl["argmax"]["elements"]) == (1, 50257)
    assert set(nl) == {"softmax", "layernorm", "layernorm (final)", "gelu_tanh", "argmax"}


def test_gpt2_at_128_flops() -> None:
    T, d, dff, H, dh, V = 128, 768, 3072, 12, 64, 50257
    qkv = 2 * T * d * (3 * d)  # fused Q, K, V projection
    out = 2 * T * d * d
    qk = 2 * H * T * dh * T  # 12 heads of (128 x 64)(64 x 128)
    av = 2 * H * T * T * dh  # 12 heads of (128 x 128)(128 x 64)
    up = 2 * T * d * dff
    down = 2 * T * dff * d
    assert (qkv, out, qk, av, up, down) == (452_984_832, 150_994_944, 25_165_824, 25_165_824,
                                             603_979_776, 603_979_776)
    layer = qkv + out + qk + av + up + down
    assert layer == 1_862_270_976
    head = 2 * 1 * d * V  # head "last": one row
    assert head == 77_194_752
    report = count_flops(load_spec("gpt2"), T)
    assert report.total == 12 * layer + head == 22_424_446_464
    assert report.by_group() == {"embedding": 0, "attn_proj": 12 * (qkv + out),
                                 "attn_scores_values": 12 * (qk + av), "ffn": 12 * (up + down), "head": head}
    assert report.by_layer()["L5"] == layer


def test_llama3_8b_gqa_prefill_at_128() -> None:
    T, d, H, Hkv, dh, dff, V = 128, 4096, 32, 8, 128, 14336, 128256
    g = H // Hkv  # 4 query heads per KV head
    ops = {op.name: op for op in lower(load_spec("llama3-8b"), T).ops}
    # QK^T stacked: b = n_kv_heads = 8 products of (4*T x 128)(128 x T); AV: (4*T x T)(T x 128).
    assert dict(ops["L0.attn.qk"].dims) == {"b": 8, "m": 4 * 128, "k": 128, "n": 128}
    assert dict(ops["L0.attn.av"].dims) == {"b": 8, "m": 4 * 128, "k": 128, "n": 128}
    qk = 2 * Hkv * (g * T) * dh * T
    assert ops["L0.attn.qk"].flops == qk == 2 * H * T * dh * T == 134_217_728  # same as 32 unshared heads
    # QKV linear: n = (32 + 2*8) * 128 = 6144 output columns.
    assert dict(ops["L0.attn.qkv"].dims) == {"m": 128, "k": 4096, "n": (32 + 2 * 8) * 128, "bias": 0}
    qkv = 2 * T * d * (H + 2 * Hkv) * dh
    assert ops["L0.attn.qkv"].flops == qkv == 6_442_450_944
    out = 2 * T * (H * dh) * d  # 4_294_967_296
    gate_up = 2 * T * d * (2 * dff)  # fused gate and up projections: 30_064_771_072
    down = 2 * T * dff * d  # 15_032_385_536
    assert ops["L0.ffn.gate_up"].flops == gate_up == 30_064_771_072
    # SwiGLU: SiLU on the gate half and the gate * up product, T x d_ff elements each.
    assert ops["L0.ffn.act"].kind == "silu" and ops["L0.ffn.act"].elements == 128 * 14336 == 1_835_008
    assert ops["L0.ffn.gate_mul"].elements == 1_835_008
    # RoPE rotates every query and key dimension: T * (32 + 8) * 128 elements.
    assert ops["L0.attn.rope"].elements == 128 * 40 * 128 == 655_360
    layer = qkv + out + 2 * qk + gate_up + down
    assert layer == 56_103_010_304
    head = 2 * d * V  # last position only, untied
    report = count_flops(load_spec("llama3-8b"), T)
    assert report.total == 32 * layer + head == 1_796_347_002_880
    nl = report.nonlinear()
    assert (nl["rmsnorm"]["ops"], nl["rmsnorm (final)"]["ops"]) == (64, 1)  # 2 per block + final
    assert (nl["softmax"]["ops"], nl["softmax"]["instances"], nl["softmax"]["shape"]) == (32, 32 * 32, "128x128")


def test_llama3_8b_gqa_decode_at_8192() -> None:
    """Decode: one new token against a KV cache of T = 8192 tokens attends to T + 1 keys."""
    T = 8192
    spec = with_fields(load_spec("llama3-8b"), phase="decode")
    ops = {op.name: op for op in lower(spec, T).ops}
    # 8 KV heads, each shared by 4 query rows (one per query head): (4 x 128)(128 x 8193).
    assert dict(ops["L0.attn.qk"].dims) == {"b": 8, "m": 4, "k": 128, "n": 8193}
    assert ops["L0.attn.qk"].flops == 2 * 8 * 4 * 128 * 8193 == 67_117_056
    assert ops["L0.attn.qkv"].flops == 2 * 1 * 4096 * 6144 == 50_331_648
    sm = ops["L0.attn.softmax"]
    assert (sm.dims["rows"], sm.dims["cols"], sm.causal) == (32, 8193, False)

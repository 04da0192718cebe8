"""Properties of the lowering over hypothesis-generated valid specs (every option combination).

The expected counts here are written from the spec's meaning, independently of lower.py:
one softmax per layer over batch x n_heads instances; norms per layer by placement; no FFN ops in
pruned layers; total FLOPs as a closed sum of 2*m*k*n terms; symbolic forms equal the numbers.
"""

from __future__ import annotations

import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

from picost.model.flops import count_flops, symbolic_flops
from picost.model.lower import lower, lower_symbolic
from picost.model.ops import Block
from picost.model.spec import GATED_ACTIVATIONS, ModelSpec
from tests.strategies import valid_specs, with_fields

PROPS = settings(max_examples=50, deadline=None)
contexts = st.integers(1, 4096)


def expected_total_flops(spec: ModelSpec, T: int) -> int:
    """Total FLOPs from the spec's meaning: 2 per multiply-add of every linear and QK^T / AV."""
    B, d, H, Hkv, dh, dff = (spec.batch_size, spec.d_model, spec.n_heads, spec.kv_heads, spec.dim_head,
                             spec.ffn_width)
    decode = spec.phase == "decode"
    rows = B if decode else B * T  # tokens through the linears
    queries, keys = (1, T + 1) if decode else (T, T)
    attention = (2 * rows * d * (H + 2 * Hkv) * dh  # fused QKV
                 + 2 * rows * H * dh * d  # output projection
                 + 2 * (2 * B * H * queries * keys * dh))  # QK^T and AV, every head
    if spec.ffn.fused:
        ffn = 2 * rows * d * d
    elif spec.activation in GATED_ACTIVATIONS:
        ffn = 2 * rows * d * (2 * dff) + 2 * rows * dff * d
    else:
        ffn = 2 * (2 * rows * d * dff)
    head = {"none": 0, "last": 2 * B * d * spec.vocab_size, "full": 2 * rows * d * spec.vocab_size}[spec.head]
    n_ffn = spec.n_layers - len(spec.pruned_ffn_layers)
    return spec.n_layers * attention + n_ffn * ffn + head


@PROPS
@given(spec=valid_specs(max_layers=6), T=contexts)
def test_total_flops_is_the_sum_of_matrix_products(spec: ModelSpec, T: int) -> None:
    assert count_flops(spec, T).total == expected_total_flops(spec, T)


@PROPS
@given(spec=valid_specs(max_layers=6), T=contexts, extra=st.integers(1, 1000))
def test_flops_strictly_increase_with_context(spec: ModelSpec, T: int, extra: int) -> None:
    assert count_flops(spec, T).total < count_flops(spec, T + extra).total


@PROPS
@given(spec=valid_specs(max_layers=6), T=contexts)
def test_op_counts_scale_with_layers_heads_and_pruning(spec: ModelSpec, T: int) -> None:
    ops = lower(spec, T).ops
    L, B, H = spec.n_layers, spec.batch_size, spec.n_heads
    decode = spec.phase == "decode"
    queries, keys = (1, T + 1) if decode else (T, T)
    pruned = spec.pruned_ffn_layers

    softmaxes = [op for op in ops if op.kind == "softmax"]
    assert [op.layer for op in softmaxes] == list(range(L))
    for op in softmaxes:
        assert op.instances == B * H
        assert (op.dims["rows"], op.dims["cols"]) == (B * H * queries, keys)
        causal = spec.attention.causal and not decode
        assert op.causal == causal
        assert op.dims["valid"] == (B * H * T * (T + 1) // 2 if causal else B * H * queries * keys)

    matmuls = [op for op in ops if op.kind == "matmul"]
    assert len(matmuls) == 2 * L
    group = H // spec.kv_heads
    for op in matmuls:
        assert (op.dims["b"], op.dims["m"]) == (B * spec.kv_heads, group * queries)
        assert op.instances == B * H

    norms = [op for op in ops if op.block is Block.NORM]
    in_block = [op for op in norms if op.layer is not None]
    final = [op for op in norms if op.layer is None]
    if spec.norm.kind == "none":
        assert norms == []
    else:
        assert {op.kind for op in norms} == {spec.norm.kind}
        assert len(final) == int(spec.norm.final)
        with_ffn = L - len(pruned)
        if spec.parallel_residual and spec.norm.placement == "post":
            assert len(in_block) == L  # one norm after the joint residual
        elif spec.parallel_norm == "shared":
            assert len(in_block) == L  # one norm before both branches
        else:
            assert len(in_block) == L + with_ffn  # 2 * L when nothing is pruned
        rows = B if decode else B * T
        assert all((op.dims["rows"], op.dims["cols"]) == (rows, spec.d_model) for op in in_block)
        head_rows = B if spec.head == "last" else rows  # after the last layer: the rows the head reads
        assert all((op.dims["rows"], op.dims["cols"]) == (head_rows, spec.d_model) for op in final)

    ffn_layers = {op.layer for op in ops if op.block is Block.FFN and op.kind != "add"}
    assert ffn_layers == set(range(L)) - pruned
    activations = [op for op in ops if op.kind in ("gelu", "gelu_tanh", "relu", "silu")]
    if spec.activation == "identity":
        assert activations == []
    else:
        assert len(activations) == L - len(pruned)
        expected_kind = {"swiglu": "silu", "geglu": "gelu"}.get(spec.activation, spec.activation)
        assert all(op.kind == expected_kind for op in activations)
    assert len([op for op in ops if op.kind == "argmax"]) == int(spec.argmax)
    assert len([op for op in ops if op.kind == "rope"]) == (L if spec.positional == "rope" else 0)


@PROPS
@given(spec=valid_specs(max_layers=4), T=contexts)
def test_symbolic_flops_in_T_equal_the_count(spec: ModelSpec, T: int) -> None:
    form = symbolic_flops(spec, ["T"])["total"]
    assert form.subs(sympy.Symbol("T", positive=True, integer=True), T) == count_flops(spec, T).total


@PROPS
@given(spec=valid_specs(max_layers=4), T=contexts, scale=st.integers(1, 3), layers=st.integers(1, 6))
def test_symbolic_flops_in_T_L_d_equal_the_count(spec: ModelSpec, T: int, scale: int, layers: int) -> None:
    """The closed form in T, L, d evaluated at the spec's own L, d equals the count; evaluated at
    other L (specs without a pruned-layer list) and at d scaled by an integer (head_dim and d_ff
    scale with d), it equals the count of the spec changed accordingly."""
    form = symbolic_flops(spec, ["T", "L", "d"])["total"]
    T_, L_, d_ = (sympy.Symbol(s, positive=True, integer=True) for s in ("T", "L", "d"))
    at = {T_: T, L_: spec.n_layers, d_: spec.d_model}
    assert form.subs(at) == count_flops(spec, T).total

    if spec.ffn.pruned_layers or (spec.ffn.pruned_from_layer is not None and layers <= spec.ffn.pruned_from_layer):
        return
    scaled = with_fields(spec, n_layers=layers, d_model=scale * spec.d_model,
                         head_dim=scale * spec.head_dim if spec.head_dim is not None else None,
                         d_ff=scale * spec.ffn_width, d_ff_multiplier=None)
    assert form.subs({T_: T, L_: layers, d_: scaled.d_model}) == count_flops(scaled, T).total


@PROPS
@given(spec=valid_specs(max_layers=3), T=contexts)
def test_lower_symbolic_at_the_specs_own_sizes_is_the_lowering(spec: ModelSpec, T: int) -> None:
    T_, d_ = (sympy.Symbol(s, positive=True, integer=True) for s in ("T", "d"))
    symbolic, numeric = lower_symbolic(spec, T_, d_).ops, lower(spec, T).ops
    assert [(op.name, op.kind) for op in symbolic] == [(op.name, op.kind) for op in numeric]
    assert symbolic[0].name == "embed.tok" and symbolic[0].dims["width"] == d_
    for sym_op, op in zip(symbolic, numeric):
        at = {k: float(sympy.sympify(v).subs({T_: T, d_: spec.d_model})) for k, v in sym_op.dims.items()}
        assert at == pytest.approx({k: float(v) for k, v in op.dims.items()}, rel=1e-12)

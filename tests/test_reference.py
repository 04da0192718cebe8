"""Ground truth for the lowering: a plain torch model of the spec (picost.model.torch_reference) must do
exactly what the lowering says, op for op.

For every shipped spec and every HuggingFace config under tests/data/hf (shrunk to tiny sizes by ``tests.strategies.shrink``: same structure,
small d / L / vocab) and for hypothesis-generated specs, at small T, in prefill and decode:

* the ops the model executes (seen by forward hooks), in order, have the lowering's names, kinds
  and dims (dims read from the tensor shapes; softmax ``valid`` = unmasked scores);
* ``FlopCounterMode`` counts the lowering's total FLOPs, and the same FLOPs per op;
* forward hooks see the lowering's nonlinear element counts per kind (final norm apart).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from picost.model.flops import count_flops
from picost.model.lower import lower
from picost.model.torch_reference import (KVCache, build_reference, example_inputs, nonlinear_elements, torch_flops,
                              trace_ops)
from picost.model.load import load_spec, shipped_spec_names
from picost.errors import UserError
from picost.model.spec import ModelSpec
from tests.strategies import shrink, valid_specs, with_fields

T = 8
HF_CONFIGS = sorted((Path(__file__).parent / "data" / "hf").glob("*.json"))


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def assert_matches_lowering(spec: ModelSpec, context: int) -> None:
    model = build_reference(spec, seed=1)
    ids, cache = example_inputs(spec, context, seed=2)
    lowered = lower(spec, context)
    report = count_flops(spec, context)

    traced = [(op.name, op.kind, op.dims) for op in trace_ops(model, ids, cache)]
    assert traced == [(op.name, op.kind, dict(op.dims)) for op in lowered.ops]

    total, per_op = torch_flops(model, ids, cache)
    assert total == report.total
    assert per_op == {op.name: op.flops for op in lowered.ops if op.flops}

    expected = {kind: {"ops": row["ops"], "elements": row["elements"]}
                for kind, row in report.nonlinear().items()}
    assert nonlinear_elements(model, ids, cache) == expected


@pytest.mark.parametrize("phase", ["prefill", "decode"])
@pytest.mark.parametrize("name", shipped_spec_names())
def test_shipped_spec_matches_lowering(name: str, phase: str) -> None:
    _check_in_phase(shrink(load_spec(name)), phase)


def _check_in_phase(spec: ModelSpec, phase: str) -> None:
    if phase == "decode" and (spec.input.kind == "patches" or spec.head == "classifier"):
        with pytest.raises(UserError, match="phase 'decode'"):  # encoders of one prefill
            with_fields(spec, phase=phase)
        return
    assert_matches_lowering(with_fields(spec, phase=phase), T)


@pytest.mark.parametrize("phase", ["prefill", "decode"])
@pytest.mark.parametrize("path", HF_CONFIGS, ids=[p.stem for p in HF_CONFIGS])
def test_hf_config_matches_lowering(path: Path, phase: str) -> None:
    _check_in_phase(shrink(load_spec(path)), phase)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=valid_specs(), context=st.integers(1, 6))
def test_generated_spec_matches_lowering(spec: ModelSpec, context: int) -> None:
    assert_matches_lowering(spec, context)


def test_shrink_keeps_structure() -> None:
    big = load_spec("llama2-70b")
    small = shrink(big)
    assert (small.n_heads // small.kv_heads, small.activation, small.norm, small.positional) == \
        (big.n_heads // big.kv_heads, big.activation, big.norm, big.positional)
    assert small.d_model == 128 and small.vocab_size == 97 and small.n_layers == 4
    assert shrink(load_spec("tiny")) == load_spec("tiny")


@pytest.mark.parametrize("name", ["tiny", "pythia-70m", "llama3-8b", "gpt2-smonly-fused-pruned"])
def test_decode_with_prefilled_cache_equals_longer_prefill(name: str) -> None:
    """Prefill T tokens into a cache, then decode one more: the new token's logits equal those
    of the last position of a prefill over all T + 1 tokens (checks cache, positions, mask)."""
    spec = with_fields(shrink(load_spec(name)), head="full")
    model = build_reference(spec, seed=3, dtype=torch.float64)
    ids = torch.randint(spec.vocab_size, (spec.batch_size, T + 1), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        full = model(ids)
        cache = KVCache.empty(spec.n_layers)
        model(ids[:, :T], cache)
        assert cache.length == T
        step = model(ids[:, T:], cache)
    assert cache.length == T + 1
    assert step.shape == (spec.batch_size, 1, spec.vocab_size)
    torch.testing.assert_close(step[:, 0], full[:, T])


def test_causal_mask_hides_future_tokens() -> None:
    spec = with_fields(load_spec("tiny"), head="full")
    model = build_reference(spec, dtype=torch.float64)
    ids = torch.arange(T)[None, :]
    changed = ids.clone()
    changed[0, -1] = (changed[0, -1] + 1) % spec.vocab_size
    with torch.no_grad():
        a, b = model(ids), model(changed)
    torch.testing.assert_close(a[:, :-1], b[:, :-1])
    assert not torch.allclose(a[:, -1], b[:, -1])


def test_decode_against_random_cache_attends_to_all_keys() -> None:
    spec = with_fields(load_spec("tiny"), phase="decode")
    model = build_reference(spec)
    ids, cache = example_inputs(spec, T)
    softmax = [op for op in trace_ops(model, ids, cache) if op.kind == "softmax"]
    assert cache.length == T  # tracing leaves the caller's cache alone
    heads = spec.batch_size * spec.n_heads
    assert [op.dims for op in softmax] == [{"rows": heads, "cols": T + 1, "valid": heads * (T + 1)}] * 2
    prediction = model.predict(ids, cache)
    assert prediction.next_token.shape == (spec.batch_size,)
    assert torch.equal(prediction.next_token, prediction.logits[:, -1].argmax(-1))


def test_seeded_weights() -> None:
    spec = load_spec("tiny")
    state = torch.random.get_rng_state()
    a, b, c = build_reference(spec, seed=0), build_reference(spec, seed=0), build_reference(spec, seed=1)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is untouched
    assert torch.equal(a.blocks[0].attn.qkv.weight, b.blocks[0].attn.qkv.weight)
    assert not torch.equal(a.blocks[0].attn.qkv.weight, c.blocks[0].attn.qkv.weight)
    assert a.head_proj.weight is a.embed.weight  # tied embeddings


def test_positions_beyond_learned_table_are_an_error() -> None:
    spec = load_spec("tiny")
    model = build_reference(spec)
    with pytest.raises(ValueError, match="beyond the learned table"):
        model(torch.zeros((1, spec.context_length + 1), dtype=torch.long))


def _windowed(name: str, window: int, **fields) -> ModelSpec:
    spec = shrink(load_spec(name))
    return with_fields(spec, attention=spec.attention.model_copy(update={"sliding_window": window}), **fields)


@pytest.mark.parametrize("phase", ["prefill", "decode"])
@pytest.mark.parametrize("name,window", [("tiny-llama", 3), ("tiny", 1), ("llama3-8b", 5), ("tiny", 64)])
def test_sliding_window_matches_lowering(name: str, window: int, phase: str) -> None:
    """QK^T, the softmax and AV over min(keys, W) columns; valid = unmasked slots of each window."""
    spec = _windowed(name, window, phase=phase)
    assert_matches_lowering(spec, T)
    softmax = next(op for op in lower(spec, T).ops if op.kind == "softmax")
    keys = T + 1 if phase == "decode" else T
    assert softmax.dims["cols"] == min(keys, window)


def test_sliding_window_sees_only_its_window() -> None:
    """One layer, W = 3: the output at position p depends on tokens p - 2 .. p only; decoding
    after a windowed prefill equals the longer windowed prefill."""
    spec = _windowed("tiny-llama", 3, n_layers=1, head="full")
    model = build_reference(spec, seed=5, dtype=torch.float64)
    ids = torch.randint(spec.vocab_size, (1, T + 1), generator=torch.Generator().manual_seed(6))
    changed = ids.clone()
    changed[0, 0] = (changed[0, 0] + 1) % spec.vocab_size
    with torch.no_grad():
        a, b = model(ids), model(changed)
        cache = KVCache.empty(spec.n_layers)
        model(ids[:, :T], cache)
        step = model(ids[:, T:], cache)
    torch.testing.assert_close(a[:, 3:], b[:, 3:])
    assert not torch.allclose(a[:, 2], b[:, 2])
    torch.testing.assert_close(step[:, 0], a[:, T])


def test_engines_refuse_sliding_window() -> None:
    from picost.errors import UserError
    from picost.mpc.model import check_supported
    from picost.spu.bridge import model_request

    spec = _windowed("tiny-llama", 3)
    for refuse in (check_supported, model_request):
        with pytest.raises(UserError, match="full attention only") as exc:
            refuse(spec)
        assert exc.value.field == "attention.sliding_window"

"""Hypothesis strategies: valid model specs covering every option combination, and the rule
that shrinks a shipped spec to tiny sizes while keeping its structure."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from picost.model.spec import ModelSpec

ACTIVATIONS = ("gelu", "gelu_tanh", "relu", "silu", "swiglu", "geglu", "identity")


@st.composite
def valid_specs(draw: st.DrawFn, max_layers: int = 4) -> ModelSpec:
    """A random valid spec with small sizes (so a torch model of it runs in milliseconds)."""
    kv_heads = draw(st.integers(1, 3))
    n_heads = kv_heads * draw(st.integers(1, 3))
    head_dim = draw(st.sampled_from([2, 4, 6, 8]))
    data: dict[str, Any] = {"name": "generated", "n_heads": n_heads, "vocab_size": draw(st.integers(2, 40)),
                            "context_length": 16}
    if draw(st.booleans()):  # otherwise n_kv_heads defaults to n_heads
        data["n_kv_heads"] = kv_heads
    if draw(st.booleans()):  # explicit head_dim: d_model need not be n_heads * head_dim
        data["head_dim"] = head_dim
        data["d_model"] = draw(st.integers(1, 48))
    else:
        data["d_model"] = n_heads * head_dim
    d = data["d_model"]
    multiplier = draw(st.sampled_from([None, 1.0, 2.0, 4.0] + ([0.5] if d % 2 == 0 else [])))
    if multiplier is None:
        data["d_ff"] = draw(st.integers(1, 32))
    else:
        data["d_ff_multiplier"] = multiplier
    n_layers = data["n_layers"] = draw(st.integers(1, max_layers))
    activation = data["activation"] = draw(st.sampled_from(ACTIVATIONS))
    pruning = draw(st.sampled_from(["none", "list", "from"]))
    fused = activation == "identity" and draw(st.booleans())
    data["ffn"] = {"fused": fused, "learnable_output_scale": not fused and draw(st.booleans())}
    if pruning == "list":
        data["ffn"]["pruned_layers"] = draw(st.lists(st.integers(0, n_layers - 1), unique=True, max_size=n_layers))
    elif pruning == "from":
        data["ffn"]["pruned_from_layer"] = draw(st.integers(0, n_layers - 1))
    data["positional"] = draw(st.sampled_from(["learned", "rope", "none"]))
    if data["positional"] == "rope":
        data["rope_fraction"] = 2 * draw(st.integers(1, head_dim // 2)) / head_dim
    data["norm"] = {"kind": draw(st.sampled_from(["layernorm", "rmsnorm", "none"])),
                    "placement": draw(st.sampled_from(["pre", "post"])), "final": draw(st.booleans())}
    data["attention"] = {"causal": draw(st.booleans()), "learnable_temperature": draw(st.booleans())}
    data["head"] = draw(st.sampled_from(["full", "last", "none"]))
    data["argmax"] = data["head"] != "none" and draw(st.booleans())
    data["phase"] = draw(st.sampled_from(["prefill", "decode"]))
    data["batch_size"] = draw(st.integers(1, 3))
    for flag in ("tied_embeddings", "bias", "parallel_residual"):
        data[flag] = draw(st.booleans())
    if data["parallel_residual"] and data["norm"]["placement"] == "pre":
        data["parallel_norm"] = draw(st.sampled_from(["separate", "shared"]))
    return ModelSpec.model_validate(data)


def with_fields(spec: ModelSpec, **update: Any) -> ModelSpec:
    """``spec`` with some fields replaced, validated again (``model_copy`` validates: a located
    :class:`~picost.errors.UserError` on a broken rule)."""
    return spec.model_copy(update=update)


SHRUNK_HEAD_DIM = 8
SHRUNK_VOCAB = 97
SHRUNK_MAX_LAYERS = 12


def _shrunk_head_dim(spec: ModelSpec) -> int:
    """``SHRUNK_HEAD_DIM``, or with RoPE the smallest width from it up in which ``rope_fraction`` rotates
    an even whole number of dims (Phi-2's 0.4: 10, rotating 4; the spec's own head_dim always does)."""
    if spec.positional != "rope":
        return SHRUNK_HEAD_DIM
    return next(h for h in range(SHRUNK_HEAD_DIM, spec.dim_head + 1)
                if abs(spec.rope_fraction * h - round(spec.rope_fraction * h)) < 1e-9
                and round(spec.rope_fraction * h) % 2 == 0)


def shrink(spec: ModelSpec) -> ModelSpec:
    """``spec`` at tiny sizes with the same structure, for torch runs in milliseconds.

    Rule: specs with d_model <= 64 are kept as they are. Otherwise every option is kept (activation,
    norm kind/placement/final, positional and rope_fraction, parallel residual and norm, FFN options and
    pruned layers, head, argmax, biases, tying) and so is the GQA group size n_heads / n_kv_heads;
    n_kv_heads becomes min(n_kv_heads, 2), n_heads = group x n_kv_heads, head_dim = 8 (with RoPE: the
    smallest from 8 up that rope_fraction rotates evenly), d_model = n_heads x head_dim, d_ff keeps its ratio to d_model (rounded), vocab_size = min(V, 97),
    context_length = min(context_length, 64) (an image-patch input: a 6x6 image of 2x2 patches), and n_layers is kept when <= 12 or when FFNs are
    pruned (so pruned indices stay valid), else 4.
    """
    if spec.d_model <= 64:
        return spec
    if spec.input.kind == "patches":  # a 6x6 image of 2x2 patches: 9 patches (+ CLS), so T = 8 still fits
        small_image = spec.input.model_copy(update={"image_size": 6, "patch_size": 2})
        spec = with_fields(spec, input=small_image, context_length=small_image.image_tokens)
    group = spec.n_heads // spec.kv_heads
    kv_heads = min(spec.kv_heads, 2)
    n_heads = group * kv_heads
    head_dim = _shrunk_head_dim(spec)
    d = n_heads * head_dim
    keep_layers = spec.n_layers <= SHRUNK_MAX_LAYERS or bool(spec.pruned_ffn_layers)
    return with_fields(
        spec,
        n_heads=n_heads,
        n_kv_heads=kv_heads if spec.n_kv_heads is not None else None,
        head_dim=head_dim if spec.head_dim is not None else None,
        d_model=d,
        d_ff=max(1, round(spec.ffn_width * d / spec.d_model)),
        d_ff_multiplier=None,
        vocab_size=None if spec.vocab_size is None else min(spec.vocab_size, SHRUNK_VOCAB),
        context_length=min(spec.context_length, 64),
        n_layers=spec.n_layers if keep_layers else 4,
    )

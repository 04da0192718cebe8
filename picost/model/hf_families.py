"""More HuggingFace families for :mod:`picost.model.hf_config`: encoders (BERT, RoBERTa, ViT), OPT,
Qwen2, Phi-1/2, Phi-3, Gemma, Mixtral -- and the families picost cannot express, refused with what is missing.

Each reader maps a ``config.json`` to spec fields through the shared ``_Reader`` (errors name the
HF key and its line). What a family has that does not bear on FLOPs or on any op picost counts
(biases, embedding scalings by a public constant) is noted in the spec's description.
"""

from __future__ import annotations

from typing import Any, Callable

BERT_ACT = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "relu": "relu"}
_OPT_ACT = {"relu": "relu", "gelu": "gelu", "gelu_new": "gelu_tanh"}
_GATED_ACT = {"silu": "swiglu", "gelu": "geglu", "gelu_pytorch_tanh": "geglu", "gelu_new": "geglu"}

#: model_type -> what picost lacks to express it (the refusal message).
UNSUPPORTED: dict[str, str] = {
    "gemma2": ("Gemma 2 caps attention and final logits with tanh soft-capping (no tanh op kind), adds post-sublayer "
               "norms to the pre-norms and alternates sliding-window layers; none of these is modelled"),
    "qwen2_moe": ("a mixture of experts with shared experts and their own gate next to the routed ones; picost's "
                  "mixture of experts (mixtral) has routed experts only"),
}


def sizes(r: Any) -> dict[str, Any]:
    """The size keys most HF configs share (``r``: the config reader of :mod:`picost.model.hf_config`)."""
    return {
        "n_layers": r.take("n_layers", "num_hidden_layers"),
        "d_model": r.take("d_model", "hidden_size"),
        "n_heads": r.take("n_heads", "num_attention_heads"),
        "d_ff": r.take("d_ff", "intermediate_size"),
        "vocab_size": r.take("vocab_size", "vocab_size"),
        "context_length": r.take("context_length", "max_position_embeddings"),
    }


def bert(r: Any) -> dict[str, Any]:
    """BERT / RoBERTa encoders: post-LN, bidirectional, learned positions; the encoder's hidden
    states as output (``head: none``), or the pooler and a classifier for a
    ``*ForSequenceClassification`` architecture (:func:`classifier_head`). The embedding LayerNorm
    and the token-type embedding add are not ops here (no FLOPs; noted in the description)."""
    data = {
        **sizes(r),
        "activation": r.take("activation", "hidden_act", default="gelu", convert=BERT_ACT.__getitem__),
        "norm": {"kind": "layernorm", "placement": "post", "final": False},
        "attention": {"causal": False},
        "positional": "learned",
        "tied_embeddings": True,
        "bias": True,
        **classifier_head(r, pooler=True),
    }
    r.take("position_embedding_type", "position_embedding_type", default="absolute",
           convert={"absolute": "absolute"}.__getitem__)
    return data


def opt(r: Any) -> dict[str, Any]:
    """OPT: learned positions, LayerNorm before (``do_layer_norm_before``) or after each sublayer,
    ReLU FFN of ``ffn_dim``, tied head; a ``word_embed_proj_dim`` other than ``hidden_size`` (OPT-350m's
    extra projections) is refused."""
    d = r.take("d_model", "hidden_size")
    proj = r.take("word_embed_proj_dim", "word_embed_proj_dim", default=d)
    if proj != d:
        from picost.errors import UserError

        raise UserError(f"word_embed_proj_dim={proj} differs from hidden_size={d}: OPT's embedding projections in "
                        "and out are not modelled", file=r.file, line=r.lines.get(("word_embed_proj_dim",)),
                        field="word_embed_proj_dim")
    before = r.take("norm.placement", "do_layer_norm_before", default=True)
    return {
        "n_layers": r.take("n_layers", "num_hidden_layers"),
        "d_model": d,
        "n_heads": r.take("n_heads", "num_attention_heads"),
        "d_ff": r.take("d_ff", "ffn_dim"),
        "vocab_size": r.take("vocab_size", "vocab_size"),
        "context_length": r.take("context_length", "max_position_embeddings"),
        "activation": r.take("activation", "activation_function", default="relu", convert=_OPT_ACT.__getitem__),
        "norm": {"kind": "layernorm", "placement": "pre" if before else "post", "final": bool(before)},
        "positional": "learned",
        "tied_embeddings": r.take("tied_embeddings", "tie_word_embeddings", default=True),
        "bias": r.take("bias", "enable_bias", default=True),
    }


def _gated(r: Any, default_act: str, tied_default: bool) -> dict[str, Any]:
    data = {
        **sizes(r),
        "n_kv_heads": r.take("n_kv_heads", "num_key_value_heads", default=None),
        "activation": r.take("activation", "hidden_activation", "hidden_act", default=default_act,
                             convert=_GATED_ACT.__getitem__),
        "norm": {"kind": "rmsnorm", "placement": "pre", "final": True},
        "positional": "rope",
        "tied_embeddings": r.take("tied_embeddings", "tie_word_embeddings", default=tied_default),
        "bias": False,
    }
    head_dim = r.take("head_dim", "head_dim", default=None)
    if head_dim is not None:
        data["head_dim"] = head_dim
    rotated = r.take("rope_fraction", "partial_rotary_factor", default=None, convert=fraction)
    if rotated is not None:
        data["rope_fraction"] = rotated
    return data


def qwen2(r: Any) -> dict[str, Any]:
    """Qwen2 / Qwen2.5: Llama's structure with biases on Q, K and V (no FLOPs: a local add)."""
    data = _gated(r, "silu", tied_default=False)
    data["bias"] = True
    return data


def phi(r: Any) -> dict[str, Any]:
    """Phi-1/1.5/2: a parallel block on ONE shared input LayerNorm (``parallel_norm: shared``), partial
    RoPE (``partial_rotary_factor``, HF's default 0.5), separate q/k/v projections (fused here: the same
    products), biases on every linear, a GELU (``gelu_new``: tanh form) MLP ``fc1``/``fc2``, final
    LayerNorm, untied head. ``qk_layernorm`` (LayerNorms on queries and keys) is refused."""
    if r.raw.get("qk_layernorm"):
        from picost.errors import UserError

        raise UserError("qk_layernorm: true (a LayerNorm on the queries and one on the keys of every layer) is not "
                        "modelled", file=r.file, line=r.lines.get(("qk_layernorm",)), field="qk_layernorm")
    return {
        **sizes(r),
        "n_kv_heads": r.take("n_kv_heads", "num_key_value_heads", default=None),
        "activation": r.take("activation", "hidden_act", default="gelu_new", convert=BERT_ACT.__getitem__),
        "norm": {"kind": "layernorm", "placement": "pre", "final": True},
        "positional": "rope",
        "rope_fraction": r.take("rope_fraction", "partial_rotary_factor", default=0.5, convert=fraction),
        "tied_embeddings": r.take("tied_embeddings", "tie_word_embeddings", default=False),
        "bias": True,
        "parallel_residual": True,
        "parallel_norm": "shared",
    }


def fraction(value: Any) -> float:
    """A number as a float (``rotary_pct: 1`` is 1.0); anything else (a bool, a string) is a
    ``TypeError``, which the reader reports as an unsupported value at the key's line."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(value)
    return float(value)


def phi3(r: Any) -> dict[str, Any]:
    """Phi-3: fused QKV and fused gate/up (picost's convention for every family), SwiGLU, RMSNorm, RoPE."""
    return _gated(r, "silu", tied_default=False)


def gemma(r: Any) -> dict[str, Any]:
    """Gemma: GeGLU (tanh GELU on the gate), RMSNorm, RoPE, head_dim given, tied head. The embedding's
    scaling by sqrt(hidden_size) is a public constant (no FLOPs; noted)."""
    data = _gated(r, "gelu_pytorch_tanh", tied_default=True)
    return data


def roberta(r: Any) -> dict[str, Any]:
    """RoBERTa: BERT's structure; its position table keeps 2 rows for the padding offset."""
    data = bert(r)
    data["context_length"] = max(1, data["context_length"] - 2)
    return data


def classifier_head(r: Any, pooler: bool) -> dict[str, Any]:
    """The head an ``architectures`` entry ending in ``ForSequenceClassification`` or
    ``ForImageClassification`` asks for: a classifier over the first row on ``len(id2label)`` (else
    ``num_labels``, else HF's default 2) labels, after BERT's pooler (dense + tanh; RoBERTa's
    classification head is the same ops) when ``pooler``; other architectures: none."""
    arch = r.raw.get("architectures")
    names = arch if isinstance(arch, list) else []
    if not any(isinstance(a, str) and a.endswith(("ForSequenceClassification", "ForImageClassification"))
               for a in names):
        return {"head": "none", "argmax": False}
    labels = r.take("classifier.labels", "id2label", "num_labels", default=2,
                    convert=lambda v: len(v) if isinstance(v, dict) else count(v))
    return {"head": "classifier", "classifier": {"labels": labels, "pooler": pooler}, "argmax": False}


def count(value: Any) -> int:
    """A whole number (not a bool); anything else is a ``TypeError`` (an unsupported value)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(value)
    return value


def vit(r: Any) -> dict[str, Any]:
    """ViT: pre-LN encoder over image patches (the patch embedding is a linear; the CLS row is
    prepended), learned positions, bidirectional; a classifier on the CLS row for
    ``ViTForImageClassification``. T is fixed by the image: ``(image_size / patch_size)**2 + 1``."""
    image, patch = r.take("input.image_size", "image_size"), r.take("input.patch_size", "patch_size")
    tokens = (image // patch) ** 2 + 1 if all(isinstance(v, int) and v > 0 for v in (image, patch)) else 1
    return {
        "n_layers": r.take("n_layers", "num_hidden_layers"),
        "d_model": r.take("d_model", "hidden_size"),
        "n_heads": r.take("n_heads", "num_attention_heads"),
        "d_ff": r.take("d_ff", "intermediate_size"),
        "context_length": tokens,
        "input": {"kind": "patches", "image_size": image, "patch_size": patch,
                  "channels": r.take("input.channels", "num_channels", default=3), "cls_token": True},
        "activation": r.take("activation", "hidden_act", default="gelu", convert=BERT_ACT.__getitem__),
        "norm": {"kind": "layernorm", "placement": "pre", "final": True},
        "attention": {"causal": False},
        "positional": "learned",
        "tied_embeddings": False,
        "bias": r.take("bias", "qkv_bias", default=True),
        **classifier_head(r, pooler=False),
    }


def mixtral(r: Any) -> dict[str, Any]:
    """Mixtral: Mistral's attention with a mixture of SwiGLU experts in every layer; the router's
    top ``num_experts_per_tok`` of ``num_local_experts``. Routing is oblivious (every expert runs,
    nothing leaks); ``moe.routing: revealed`` in a spec that extends the import costs k experts."""
    data = _gated(r, "silu", tied_default=False)
    data["moe"] = {"experts": r.take("moe.experts", "num_local_experts"),
                   "experts_per_token": r.take("moe.experts_per_token", "num_experts_per_tok"),
                   "routing": "oblivious"}
    return data


WINDOWED = ("mistral", "qwen2", "mixtral")
"""Families whose ``sliding_window`` is read into ``attention.sliding_window``."""


def sliding_window(r: Any, model_type: str, n_layers: Any) -> int | None:
    """The window of a mistral config (``sliding_window``; null: none), or of a qwen2 config with
    ``use_sliding_window`` (HF windows the layers from ``max_window_layers`` on: all of them or
    none can be expressed; a mix is refused, naming the key)."""
    if model_type not in WINDOWED or r.raw.get("sliding_window") is None:
        return None
    if model_type == "qwen2":
        if not r.raw.get("use_sliding_window", False):
            return None
        full = r.raw.get("max_window_layers", 0)
        if isinstance(full, int) and not isinstance(full, bool) and isinstance(n_layers, int) and full >= n_layers:
            return None  # every layer keeps full attention
        if full != 0:
            from picost.errors import UserError

            raise UserError(f"max_window_layers={full!r}: the first layers attend fully and the others through a "
                            "sliding window; picost's spec has one attention for every layer (0 windows all, "
                            ">= num_hidden_layers none)", file=r.file, line=r.lines.get(("max_window_layers",)),
                            field="max_window_layers")
    return r.take("attention.sliding_window", "sliding_window")


READERS: dict[str, Callable[[Any], dict[str, Any]]] = {
    "bert": bert, "roberta": roberta, "opt": opt, "qwen2": qwen2, "phi": phi, "phi3": phi3, "gemma": gemma,
    "vit": vit, "mixtral": mixtral,
}

NOTES: dict[str, str] = {
    "bert": "the embedding LayerNorm and the token-type add are left out (no FLOPs)",
    "roberta": "the embedding LayerNorm is left out (no FLOPs)",
    "vit": ("T is the image's patches plus the CLS row; the final LayerNorm runs on the row the classifier "
            "reads (HF normalizes every row)"),
    "mixtral": "oblivious routing: every token runs through all experts (set moe.routing: revealed for k)",
    "gemma": "the embedding's scaling by sqrt(hidden_size) is left out (a public constant, no FLOPs)",
    "qwen2": "Q, K and V carry biases (local adds, no FLOPs)",
    "phi": "the head's bias is left out (a local add, no FLOPs)",
    "gptj": ("the head's bias is left out and the attention projections (which have none in GPT-J) are costed with "
             "biases, like the MLP's (local adds, no FLOPs)"),
}

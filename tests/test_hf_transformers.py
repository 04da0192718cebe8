"""Every supported HuggingFace family against the real modeling code: the `transformers` model
built from a reduced config (random weights, no hub access) runs under torch's FlopCounterMode,
and picost's FLOPs of the same config must equal its count exactly, per kind of product:

* linears (aten mm/addmm: QKV, output, FFN projections) == picost's attn_proj + ffn (+ head);
* attention products (aten bmm: QK^T and AV, eager attention) == picost's attn_scores_values.

Left out of the count: HF's ``rotary_emb`` module, which multiplies public frequencies by public
positions to make RoPE's cos/sin tables (both parties compute them in the clear; not an op).

The same run also counts the elements entering each nonlinearity, per op class, and these must
equal the lowering's (calls and elements of the activations, the softmaxes, the norms in the blocks
and the final norm): forward hooks on HF's norm modules (``*LayerNorm``, ``*RMSNorm``) and
activation modules (``ACT2FN``'s, torch's), and a ``TorchFunctionMode`` seeing every softmax call
(eager attention calls ``softmax`` as a function). Left out: BERT's and RoBERTa's embedding
LayerNorm (picost leaves it out: see docs/spec.md).

The base model (no LM head) is compared with the spec's head set to none; ViT's patch embedding (a
Conv2d, aten convolution) with picost's ``embed.patch`` linear. Mixtral is compared with revealed
routing (transformers runs only the routed tokens through each expert; picost's default, oblivious,
runs all E). The classifier heads (BERT/RoBERTa pooler + classifier, ViT's classifier) are compared
against the HF ``*For*Classification`` classes, and Mistral with a sliding window W < T against
transformers' masked full attention (see docs/spec.md). DistilBERT, which picost refuses, is compared
through the spec its refusal prints. `transformers` is a test dependency only."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from picost.model.flops import count_flops  # noqa: E402
from picost.model.load import load_spec  # noqa: E402
from picost.model.lower import lower  # noqa: E402

REDUCED = {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 96,
           "vocab_size": 101, "max_position_embeddings": 64}
FAMILIES = {
    # model_type: (config class, extra reduced keys)
    "gpt2": ("GPT2Config", {"n_layer": 2, "n_embd": 64, "n_head": 4, "n_inner": 96, "vocab_size": 101,
                            "n_positions": 64}),
    "gptj": ("GPTJConfig", {"n_layer": 2, "n_embd": 64, "n_head": 4, "n_inner": 96, "vocab_size": 101,
                            "n_positions": 64, "rotary_dim": 8}),  # parallel block, one shared LayerNorm
    "gpt_neox": ("GPTNeoXConfig", {**REDUCED, "rotary_pct": 0.25}),  # parallel block, a LayerNorm per branch
    "llama": ("LlamaConfig", {**REDUCED, "num_key_value_heads": 2}),
    "mistral": ("MistralConfig", {**REDUCED, "num_key_value_heads": 2, "sliding_window": None}),
    "bert": ("BertConfig", REDUCED),
    "roberta": ("RobertaConfig", {**REDUCED, "max_position_embeddings": 66}),
    "opt": ("OPTConfig", {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4, "ffn_dim": 96,
                          "vocab_size": 101, "max_position_embeddings": 64, "word_embed_proj_dim": 64}),
    "qwen2": ("Qwen2Config", {**REDUCED, "num_key_value_heads": 2}),
    "phi": ("PhiConfig", {**REDUCED, "partial_rotary_factor": 0.5}),  # parallel block, one shared LayerNorm
    "phi3": ("Phi3Config", {**REDUCED, "num_key_value_heads": 4, "pad_token_id": 0}),
    "gemma": ("GemmaConfig", {**REDUCED, "num_key_value_heads": 1, "head_dim": 32}),
    "vit": ("ViTConfig", {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 96,
                          "image_size": 12, "patch_size": 4, "num_channels": 3}),  # 9 patches + CLS
    "mixtral": ("MixtralConfig", {**REDUCED, "num_key_value_heads": 2, "num_local_experts": 4, "num_experts_per_tok": 2,
                                  "sliding_window": None}),
}
REFUSED = {  # model_type: (config class, reduced keys) of families refused with a working spec to use instead
    "distilbert": ("DistilBertConfig", {"n_layers": 2, "dim": 64, "n_heads": 4, "hidden_dim": 96, "vocab_size": 101,
                                        "max_position_embeddings": 64}),
}
T = 9
VIT_T = (12 // 4) ** 2 + 1
ACTIVATION_KINDS = ("gelu", "gelu_tanh", "relu", "silu", "tanh")
NONLINEAR_KEYS = {**{k: "activation" for k in ACTIVATION_KINDS}, "softmax": "softmax", "layernorm": "norm",
                  "rmsnorm": "norm", "topk": "topk"}


NORM_NAMES = ("LayerNorm", "RMSNorm")
ACTIVATION_MODULES = ("transformers.activations", "torch.nn.modules.activation")
IN_BLOCK = re.compile(r"\.\d+\.")  # a module inside layer i: 'layers.0.mlp.act_fn', 'h.1.ln_1'


def _nonlinear_recorder(model):
    """Hooks and a function mode counting (calls, elements) entering each nonlinearity, by class:
    ``activation``, ``softmax``, ``norm`` (in the blocks) and ``norm (final)``."""
    from torch.overrides import TorchFunctionMode

    seen: dict[str, dict[str, int]] = {}

    def add(key, tensor):
        row = seen.setdefault(key, {"ops": 0, "elements": 0})
        row["ops"] += 1
        row["elements"] += tensor.numel()

    def hook_for(key):
        return lambda module, args, output: add(key, args[0])

    handles = []
    for name, module in model.named_modules():
        cls = type(module)
        if any(n in cls.__name__ for n in NORM_NAMES):
            if "embeddings" in name:  # BERT/RoBERTa's embedding LayerNorm: not in picost's lowering
                continue
            handles.append(module.register_forward_hook(hook_for("norm" if IN_BLOCK.search(f".{name}.") else
                                                                 "norm (final)")))
        elif cls.__module__ in ACTIVATION_MODULES and "Softmax" not in cls.__name__:
            handles.append(module.register_forward_hook(hook_for("activation")))
        elif type(model).__name__.startswith("Roberta") and name == "classifier.dense":
            # RoBERTa's classification head calls torch.tanh (a function) on this linear's output
            handles.append(module.register_forward_hook(lambda module, args, output: add("activation", output)))

    class Softmaxes(TorchFunctionMode):  # softmax and (Mixtral's router) topk are called as functions
        def __torch_function__(self, func, types, args=(), kwargs=None):
            name = getattr(func, "__name__", "")
            if name in ("softmax", "_softmax"):
                add("softmax", args[0])
                seen.setdefault("softmax valid", {"ops": 0, "elements": 0})["elements"] += int(
                    (args[0] > torch.finfo(args[0].dtype).min / 2).sum())  # HF masks with the dtype's min
            elif name == "topk":
                add("topk", args[0])
            return func(*args, **(kwargs or {}))

    return seen, handles, Softmaxes()


def _lowered_nonlinear(spec, T):
    """The lowering's (calls, elements) per nonlinear class, keyed as :func:`_nonlinear_recorder`."""
    out: dict[str, dict[str, int]] = {}
    for op in lower(spec, T).ops:
        if op.kind not in NONLINEAR_KEYS:
            continue
        key = NONLINEAR_KEYS[op.kind] + (" (final)" if op.kind in ("layernorm", "rmsnorm") and op.layer is None else "")
        row = out.setdefault(key, {"ops": 0, "elements": 0})
        row["ops"] += 1
        row["elements"] += op.elements
        if op.kind == "softmax":
            out.setdefault("softmax valid", {"ops": 0, "elements": 0})["elements"] += op.dims["valid"]
    return out


def _hf_counts(model_type: str, tmp_path: Path, head: str | None = None, **extra):
    """Run the family's model from its reduced config (``extra`` keys added) under FlopCounterMode:
    the base model (no head, no pooler), or the ``head`` class (``ForSequenceClassification``...)."""
    from torch.utils.flop_counter import FlopCounterMode

    cls_name, keys = {**FAMILIES, **REFUSED}[model_type]
    config = getattr(transformers, cls_name)(**{**keys, **extra})
    config._attn_implementation = "eager"
    if head is not None:
        config.architectures = [cls_name.replace("Config", head)]
    path = tmp_path / "config.json"
    path.write_text(config.to_json_string())
    torch.manual_seed(0)
    base = getattr(transformers, cls_name.replace("Config", "Model"))
    if head is not None:
        model = getattr(transformers, cls_name.replace("Config", head))(config).eval()
    elif model_type in ("bert", "roberta", "vit"):  # the encoder's hidden states: no pooler (picost's head: none)
        model = base(config, add_pooling_layer=False).eval()
    else:
        model = transformers.AutoModel.from_config(config, attn_implementation="eager").eval()
    if model_type == "vit":
        inputs = {"pixel_values": torch.randn(1, config.num_channels, config.image_size, config.image_size)}
    else:
        inputs = {"input_ids": torch.randint(0, 101, (1, T))}
    counter = FlopCounterMode(display=False)
    nonlinear, handles, softmaxes = _nonlinear_recorder(model)
    try:
        with torch.no_grad(), counter, softmaxes:
            model(**inputs)
    finally:
        for h in handles:
            h.remove()
    counts = counter.get_flop_counts()
    by_op = dict(counts["Global"])
    for module, ops in counts.items():  # RoPE's cos/sin tables: public (positions x frequencies), not an op
        if module.endswith("rotary_emb"):
            for k, v in ops.items():
                by_op[k] -= v
    aten = torch.ops.aten
    linear = sum(v for k, v in by_op.items() if k in (aten.mm, aten.addmm))
    attention = sum(v for k, v in by_op.items() if k in (aten.bmm,))
    conv = sum(v for k, v in by_op.items() if k in (aten.convolution,))  # ViT's patch embedding
    other = {str(k): v for k, v in by_op.items() if k not in (aten.mm, aten.addmm, aten.bmm, aten.convolution)}
    return path, linear + conv, attention, other, nonlinear


def _tokens(spec) -> int:
    return spec.context_length if spec.input.kind == "patches" else T


def _routed(spec):
    """Mixtral as transformers computes it: only the routed tokens go through an expert, i.e.
    picost's revealed routing (k experts per token); picost's default (oblivious) runs all E."""
    if spec.moe is None:
        return spec
    return spec.model_copy(update={"moe": spec.moe.model_copy(update={"routing": "revealed"})})


@pytest.mark.parametrize("model_type", sorted(FAMILIES))
def test_flops_equal_transformers_flop_counter(model_type, tmp_path):
    path, linear, attention, other, nonlinear = _hf_counts(model_type, tmp_path)
    assert other == {}, other  # every product counted is a linear, a convolution or an attention product
    assert json.loads(path.read_text())["model_type"] == model_type
    spec = _routed(load_spec(path).model_copy(update={"head": "none", "argmax": False, "classifier": None}))
    T = _tokens(spec)
    groups = count_flops(spec, T).by_group()
    assert groups.get("embedding", 0) + groups.get("attn_proj", 0) + groups.get("ffn", 0) == linear
    assert groups.get("attn_scores_values", 0) == attention
    assert count_flops(spec, T).total == linear + attention
    # the elements entering each nonlinearity, in the same run
    lowered = _lowered_nonlinear(spec, T)
    if spec.moe is not None:  # HF calls the activation once per expert hit; picost has one op per layer
        for row in (nonlinear["activation"], lowered["activation"]):
            row.pop("ops")
        # HF softmaxes all E router logits, then renormalizes the top k; picost softmaxes the k kept (the
        # others masked): the same weights, with E - k masked scores per token
        lowered["softmax valid"]["elements"] += spec.n_layers * T * (spec.moe.experts - spec.moe.experts_per_token)
    assert nonlinear == lowered
    assert {"activation", "softmax"} <= set(nonlinear)


def test_mixtral_oblivious_routing_costs_all_experts(tmp_path):
    """The shipped convention: oblivious routing runs E experts per token, E / k times transformers'
    routed expert FLOPs; the router and attention are the same."""
    path, linear, attention, _, _ = _hf_counts("mixtral", tmp_path)
    oblivious = load_spec(path).model_copy(update={"head": "none", "argmax": False})
    assert oblivious.moe.routing == "oblivious"
    E, k = oblivious.moe.experts, oblivious.moe.experts_per_token
    ops = {op.name: op.flops for op in lower(oblivious, T).ops}
    revealed = {op.name: op.flops for op in lower(_routed(oblivious), T).ops}
    experts = [n for n in ops if ".experts." in n and ops[n]]
    assert experts and all(ops[n] * k == revealed[n] * E for n in experts)
    assert sum(revealed.values()) == linear + attention


@pytest.mark.parametrize("model_type,head", [("bert", "ForSequenceClassification"),
                                             ("roberta", "ForSequenceClassification"),
                                             ("vit", "ForImageClassification")])
def test_classifier_heads_equal_transformers(model_type, head, tmp_path):
    """BERT's pooler (dense + tanh) and classifier, RoBERTa's classification head (the same ops) and
    ViT's classifier, from the config's ``architectures`` and labels, against the HF head class.
    ViT normalizes every row before its classifier; picost only the CLS row it reads."""
    path, linear, attention, other, nonlinear = _hf_counts(model_type, tmp_path, head=head, num_labels=3)
    assert other == {}, other
    spec = load_spec(path)
    assert spec.head == "classifier" and spec.classifier.labels == 3
    assert spec.classifier.pooler == (model_type != "vit")
    T = _tokens(spec)
    report = count_flops(spec, T)
    assert report.total == linear + attention
    assert report.by_group()["head"] == 2 * spec.d_model * 3 + (2 * spec.d_model ** 2 if spec.classifier.pooler else 0)
    lowered = _lowered_nonlinear(spec, T)
    if "norm (final)" in lowered:
        lowered["norm (final)"]["elements"] *= T  # HF: every row
    assert nonlinear == lowered


def test_sliding_window_against_transformers(tmp_path):
    """Mistral with a window W < T. transformers' eager attention computes every QK^T and AV product
    and masks the scores outside the window; picost models each query meeting at most W keys. So the
    linears agree exactly, the attention products agree with the window removed (the computed-and-
    masked count), and the unmasked scores transformers' softmax sees equal picost's ``valid``."""
    W = 4
    path, linear, attention, other, nonlinear = _hf_counts("mistral", tmp_path, sliding_window=W)
    spec = load_spec(path).model_copy(update={"head": "none", "argmax": False})
    assert spec.attention.sliding_window == W < T
    groups = count_flops(spec, T).by_group()
    assert groups["attn_proj"] + groups["ffn"] == linear
    full = spec.model_copy(update={"attention": spec.attention.model_copy(update={"sliding_window": None})})
    assert count_flops(full, T).by_group()["attn_scores_values"] == attention
    assert groups["attn_scores_values"] < attention
    assert nonlinear["softmax valid"] == _lowered_nonlinear(spec, T)["softmax valid"]


def test_distilbert_refusal_names_a_spec_that_loads_and_equals_transformers(tmp_path):
    """DistilBERT is refused (picost does not read its keys) with a one-line spec extending bert-base; that
    spec, saved as it is printed, loads and has DistilBertModel's FLOPs and nonlinear counts."""
    path, linear, attention, other, nonlinear = _hf_counts("distilbert", tmp_path)
    assert other == {}, other
    from picost.errors import UserError

    with pytest.raises(UserError, match="distilbert") as refused:
        load_spec(path)
    assert refused.value.field == "model_type" and refused.value.line is not None
    suggested = re.search(r"\{extends: bert-base[^}]*\}", refused.value.message).group(0)
    assert "n_layers: 2" in suggested  # the config's 2 layers (bert-base has 12)
    spec_file = tmp_path / "distilbert.yaml"
    spec_file.write_text(suggested + "\n")
    spec = load_spec(spec_file)
    assert count_flops(spec, T).total == linear + attention
    assert nonlinear == _lowered_nonlinear(spec, T)

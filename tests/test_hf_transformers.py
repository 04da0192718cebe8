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

The base model (no LM head) is compared with the spec's head set to none. `transformers` is a
test dependency only."""

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
    "gpt_neox": ("GPTNeoXConfig", {**REDUCED, "rotary_pct": 0.25}),
    "llama": ("LlamaConfig", {**REDUCED, "num_key_value_heads": 2}),
    "mistral": ("MistralConfig", {**REDUCED, "num_key_value_heads": 2, "sliding_window": None}),
    "bert": ("BertConfig", REDUCED),
    "roberta": ("RobertaConfig", {**REDUCED, "max_position_embeddings": 66}),
    "opt": ("OPTConfig", {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4, "ffn_dim": 96,
                          "vocab_size": 101, "max_position_embeddings": 64, "word_embed_proj_dim": 64}),
    "qwen2": ("Qwen2Config", {**REDUCED, "num_key_value_heads": 2}),
    "phi3": ("Phi3Config", {**REDUCED, "num_key_value_heads": 4, "pad_token_id": 0}),
    "gemma": ("GemmaConfig", {**REDUCED, "num_key_value_heads": 1, "head_dim": 32}),
}
T = 9


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

    class Softmaxes(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            if getattr(func, "__name__", "") in ("softmax", "_softmax"):
                add("softmax", args[0])
            return func(*args, **(kwargs or {}))

    return seen, handles, Softmaxes()


def _lowered_nonlinear(spec, T):
    """The lowering's (calls, elements) per nonlinear class, keyed as :func:`_nonlinear_recorder`."""
    from picost.model.ops import op_class

    out: dict[str, dict[str, int]] = {}
    for op in lower(spec, T).ops:
        cls = op_class(op)
        if cls not in ("activation", "softmax", "norm") or op.kind == "mul":
            continue
        key = cls + (" (final)" if cls == "norm" and op.layer is None else "")
        row = out.setdefault(key, {"ops": 0, "elements": 0})
        row["ops"] += 1
        row["elements"] += op.elements
    return out


def _hf_counts(model_type: str, tmp_path: Path):
    from torch.utils.flop_counter import FlopCounterMode

    cls_name, keys = FAMILIES[model_type]
    config = getattr(transformers, cls_name)(**keys)
    config._attn_implementation = "eager"
    path = tmp_path / "config.json"
    path.write_text(config.to_json_string())
    torch.manual_seed(0)
    if model_type in ("bert", "roberta"):  # the encoder's hidden states: no pooler (picost's head: none)
        model = getattr(transformers, cls_name.replace("Config", "Model"))(config, add_pooling_layer=False).eval()
    else:
        model = transformers.AutoModel.from_config(config, attn_implementation="eager").eval()
    ids = torch.randint(0, 101, (1, T))
    counter = FlopCounterMode(display=False)
    nonlinear, handles, softmaxes = _nonlinear_recorder(model)
    try:
        with torch.no_grad(), counter, softmaxes:
            model(input_ids=ids)
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
    other = {str(k): v for k, v in by_op.items() if k not in (aten.mm, aten.addmm, aten.bmm)}
    return path, linear, attention, other, nonlinear


@pytest.mark.parametrize("model_type", sorted(FAMILIES))
def test_flops_equal_transformers_flop_counter(model_type, tmp_path):
    path, linear, attention, other, nonlinear = _hf_counts(model_type, tmp_path)
    assert other == {}, other  # every product counted is a linear or an attention product
    assert json.loads(path.read_text())["model_type"] == model_type
    spec = load_spec(path).model_copy(update={"head": "none", "argmax": False})
    groups = count_flops(spec, T).by_group()
    assert groups.get("attn_proj", 0) + groups.get("ffn", 0) == linear
    assert groups.get("attn_scores_values", 0) == attention
    assert count_flops(spec, T).total == linear + attention
    # the elements entering each nonlinearity, in the same run
    assert nonlinear == _lowered_nonlinear(spec, T)
    assert {"activation", "softmax"} <= set(nonlinear)

"""Every supported HuggingFace family against the real modeling code: the `transformers` model
built from a reduced config (random weights, no hub access) runs under torch's FlopCounterMode,
and picost's FLOPs of the same config must equal its count exactly, per kind of product:

* linears (aten mm/addmm: QKV, output, FFN projections) == picost's attn_proj + ffn (+ head);
* attention products (aten bmm: QK^T and AV, eager attention) == picost's attn_scores_values.

Left out of the count: HF's ``rotary_emb`` module, which multiplies public frequencies by public
positions to make RoPE's cos/sin tables (both parties compute them in the clear; not an op).

The base model (no LM head) is compared with the spec's head set to none. `transformers` is a
test dependency only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from picost.model.flops import count_flops  # noqa: E402
from picost.model.load import load_spec  # noqa: E402

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
    with torch.no_grad(), counter:
        model(input_ids=ids)
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
    return path, linear, attention, other


@pytest.mark.parametrize("model_type", sorted(FAMILIES))
def test_flops_equal_transformers_flop_counter(model_type, tmp_path):
    path, linear, attention, other = _hf_counts(model_type, tmp_path)
    assert other == {}, other  # every product counted is a linear or an attention product
    assert json.loads(path.read_text())["model_type"] == model_type
    spec = load_spec(path).model_copy(update={"head": "none", "argmax": False})
    groups = count_flops(spec, T).by_group()
    assert groups.get("attn_proj", 0) + groups.get("ffn", 0) == linear
    assert groups.get("attn_scores_values", 0) == attention
    assert count_flops(spec, T).total == linear + attention

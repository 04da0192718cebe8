"""HF config.json import of the newer families (tests/data/hf: the public model cards' numbers),
the shipped encoder specs they match, and the families refused with what is missing."""

from __future__ import annotations

import json

import pytest

from picost.errors import UserError
from picost.model.flops import count_flops
from picost.model.load import load_spec
from tests.conftest import run_cli
from tests.test_hf_config import DATA


@pytest.mark.parametrize("config,shipped", [("bert-base-uncased", "bert-base"), ("roberta-base", "roberta-base")])
def test_encoder_configs_match_shipped_specs(config, shipped):
    spec, ref = load_spec(DATA / f"{config}-config.json"), load_spec(shipped)
    for field in ("n_layers", "d_model", "n_heads", "ffn_width", "vocab_size", "context_length", "activation",
                  "positional", "head", "argmax"):
        assert getattr(spec, field) == getattr(ref, field), field
    assert (spec.norm.placement, spec.attention.causal) == ("post", False)
    assert count_flops(spec, 128).total == count_flops(ref, 128).total


@pytest.mark.parametrize("config,want", [
    ("qwen2.5-0.5b", {"n_kv_heads": 2, "bias": True, "activation": "swiglu", "tied_embeddings": True}),
    ("opt-125m", {"activation": "relu", "positional": "learned", "d_model": 768}),
    ("phi3-mini-4k", {"activation": "swiglu", "norm": "rmsnorm", "n_layers": 32}),
    ("gemma-2b", {"activation": "geglu", "dim_head": 256, "kv_heads": 1, "tied_embeddings": True}),
])
def test_decoder_families_load(config, want):
    spec = load_spec(DATA / f"{config}-config.json")
    for field, value in want.items():
        got = spec.norm.kind if field == "norm" else getattr(spec, field)
        assert got == value, field


def test_flops_cli_on_each_new_config():
    for config in ("bert-base-uncased", "roberta-base", "qwen2.5-0.5b", "opt-125m", "phi3-mini-4k", "gemma-2b",
                   "mixtral-8x7b", "vit-base-patch16-224"):
        r = run_cli("flops", str(DATA / f"{config}-config.json"), "-T", "64", "-f", "json")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["total_flops"] == count_flops(load_spec(DATA / f"{config}-config.json"), 64).total


@pytest.mark.parametrize("model_type,missing", [("qwen2_moe", "shared experts"), ("gemma2", "soft-capping")])
def test_unexpressible_families_are_refused_saying_what_is_missing(model_type, missing, tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": model_type, "hidden_size": 64}, indent=1))
    with pytest.raises(UserError, match=missing) as info:
        load_spec(path)
    assert info.value.line == 2 and "cannot be expressed" in str(info.value)


# distilbert-base-uncased/config.json's cost-bearing keys (DistilBertConfig's defaults are the same)
DISTILBERT = {"activation": "gelu", "architectures": ["DistilBertForMaskedLM"], "dim": 768, "hidden_dim": 3072,
              "max_position_embeddings": 512, "model_type": "distilbert", "n_heads": 12, "n_layers": 6,
              "sinusoidal_pos_embds": False, "vocab_size": 30522}


def test_distilbert_refusal_suggests_extending_bert_base(tmp_path):
    """Exit 2 naming the file, line and key, and the spec to use instead: bert-base with 6 layers (the
    sizes that differ from bert-base's and nothing else); saved as printed, it is bert-base's first 6 layers
    (checked against DistilBertModel in tests/test_hf_transformers.py)."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps(DISTILBERT, indent=1))
    r = run_cli("flops", str(path))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"{path}:" in r.stderr and "field 'model_type'" in r.stderr
    assert "{extends: bert-base, n_layers: 6}" in r.stderr
    (tmp_path / "distilbert.yaml").write_text("{extends: bert-base, n_layers: 6}\n")
    spec, base = load_spec(tmp_path / "distilbert.yaml"), load_spec("bert-base")
    assert spec.n_layers == 6
    assert count_flops(spec, 128).by_layer() == {k: v for k, v in count_flops(base, 128).by_layer().items()
                                                 if not k.startswith("L") or int(k[1:]) < 6}


@pytest.mark.parametrize("config,edit,words", [
    ("phi-2", {"qk_layernorm": True}, "queries"),
    ("gpt-j-6b", {"rotary_dim": "64"}, "unsupported value"),
    ("distilbert", {"dim": 76.8}, "unsupported value"),
])
def test_new_family_keys_are_located(config, edit, words, tmp_path):
    raw = dict(DISTILBERT) if config == "distilbert" else json.loads((DATA / f"{config}-config.json").read_text())
    raw.update(edit)
    (key,) = edit
    path = tmp_path / "config.json"
    text = json.dumps(raw, indent=1)
    path.write_text(text)
    with pytest.raises(UserError, match=words) as info:
        load_spec(path)
    line = next(i for i, row in enumerate(text.splitlines(), 1) if row.strip().startswith(f'"{key}"'))
    assert (info.value.field, info.value.line) == (key, line)


def test_opt_embedding_projection_refused(tmp_path):
    raw = json.loads((DATA / "opt-125m-config.json").read_text())
    raw["word_embed_proj_dim"] = 512
    path = tmp_path / "config.json"
    path.write_text(json.dumps(raw, indent=1))
    with pytest.raises(UserError, match="word_embed_proj_dim"):
        load_spec(path)


@pytest.mark.parametrize("config,shipped", [("vit-base-patch16-224", "vit-base"), ("mixtral-8x7b", "mixtral-8x7b")])
def test_vit_and_mixtral_configs_match_shipped_specs(config, shipped):
    spec, ref = load_spec(DATA / f"{config}-config.json"), load_spec(shipped)
    for field in ("n_layers", "d_model", "n_heads", "kv_heads", "ffn_width", "vocab_size", "context_length",
                  "activation", "positional", "input", "head", "classifier", "moe", "norm"):
        assert getattr(spec, field) == getattr(ref, field), field
    assert count_flops(spec).total == count_flops(ref).total


def test_sequence_classification_architecture_gives_the_head(tmp_path):
    raw = json.loads((DATA / "bert-base-uncased-config.json").read_text())
    raw.update(architectures=["BertForSequenceClassification"], id2label={"0": "neg", "1": "neu", "2": "pos"})
    path = tmp_path / "config.json"
    path.write_text(json.dumps(raw, indent=1))
    spec = load_spec(path)
    assert (spec.head, spec.classifier.labels, spec.classifier.pooler) == ("classifier", 3, True)
    assert count_flops(spec, 128).total == count_flops(load_spec("bert-base"), 128).total + 2 * 768 * 768 + 2 * 768 * 3
    raw["id2label"] = "three"
    path.write_text(json.dumps(raw, indent=1))
    with pytest.raises(UserError, match="unsupported value") as info:
        load_spec(path)
    assert info.value.field == "id2label"


def test_mixtral_experts_per_token_beyond_experts_is_refused_on_the_cli(tmp_path):
    raw = json.loads((DATA / "mixtral-8x7b-config.json").read_text())
    raw["num_experts_per_tok"] = 9
    path = tmp_path / "config.json"
    path.write_text(json.dumps(raw, indent=1))
    r = run_cli("flops", str(path))
    assert r.returncode == 2 and "experts_per_token=9 exceeds experts=8" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr

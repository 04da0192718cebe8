"""HuggingFace config.json import for each supported family."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from picost.errors import UserError
from picost.model.flops import count_flops
from picost.model.load import load_spec

DATA = Path(__file__).parent / "data" / "hf"


def test_gpt2_config_matches_shipped_spec():
    spec = load_spec(DATA / "gpt2-config.json")
    shipped = load_spec("gpt2")
    assert spec.name == "gpt2"
    for field in ("n_layers", "d_model", "n_heads", "vocab_size", "context_length", "activation",
                  "positional", "tied_embeddings"):
        assert getattr(spec, field) == getattr(shipped, field), field
    assert spec.ffn_width == 3072  # n_inner null -> 4 * n_embd
    assert count_flops(spec, 128).total == count_flops(shipped, 128).total


def test_pythia_config():
    spec = load_spec(DATA / "pythia-70m-config.json")
    shipped = load_spec("pythia-70m")
    assert (spec.positional, spec.rope_fraction, spec.parallel_residual) == ("rope", 0.25, True)
    assert not spec.tied_embeddings
    assert count_flops(spec, 64).total == count_flops(shipped, 64).total


def test_llama3_config_gqa():
    spec = load_spec(DATA / "llama3-8b-config.json")
    shipped = load_spec("llama3-8b")
    assert (spec.n_kv_heads, spec.activation, spec.norm.kind, spec.bias) == (8, "swiglu", "rmsnorm", False)
    assert count_flops(spec, 128).total == count_flops(shipped, 128).total


def test_mistral_config_notes_sliding_window():
    spec = load_spec(DATA / "mistral-7b-config.json")
    assert spec.n_kv_heads == 8 and spec.context_length == 32768
    assert "sliding_window" in spec.description


def test_unsupported_model_type_is_located(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{\n  "hidden_size": 8,\n  "model_type": "t5"\n}\n')
    with pytest.raises(UserError) as info:
        load_spec(path)
    assert info.value.line == 3 and info.value.field == "model_type"


def test_missing_required_key(tmp_path):
    data = json.loads((DATA / "llama3-8b-config.json").read_text())
    del data["hidden_size"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data, indent=1))
    with pytest.raises(UserError, match="hidden_size"):
        load_spec(path)


def test_bad_value_points_at_hf_key(tmp_path):
    text = (DATA / "gpt2-config.json").read_text().replace('"n_head": 12', '"n_head": 7')
    path = tmp_path / "config.json"
    path.write_text(text)
    with pytest.raises(UserError) as info:
        load_spec(path)
    assert info.value.line == text.splitlines().index('  "n_head": 7,') + 1
    assert "not divisible" in str(info.value)


def test_unsupported_activation(tmp_path):
    text = (DATA / "gpt2-config.json").read_text().replace('"gelu_new"', '"swish"')
    path = tmp_path / "config.json"
    path.write_text(text)
    with pytest.raises(UserError, match="unsupported value 'swish'") as info:
        load_spec(path)
    assert info.value.line == 3

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


def test_mistral_config_reads_sliding_window():
    spec = load_spec(DATA / "mistral-7b-config.json")
    assert spec.n_kv_heads == 8 and spec.context_length == 32768
    assert spec.attention.sliding_window == 4096 and "sliding window of 4096" in spec.description
    # each query meets at most 4096 keys: QK^T and AV FLOPs grow linearly in T beyond the window
    at = {T: count_flops(spec, T).by_group()["attn_scores_values"] for T in (4096, 8192, 16384)}
    assert at[16384] - at[8192] == 2 * (at[8192] - at[4096])


def _edited(tmp_path, name, **changes):
    raw = json.loads((DATA / name).read_text())
    raw.update(changes)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(raw, indent=1))
    return path


def test_sliding_window_null_and_qwen2_layers(tmp_path):
    assert load_spec(_edited(tmp_path, "mistral-7b-config.json", sliding_window=None)).attention.sliding_window is None
    qwen = "qwen2.5-0.5b-config.json"
    assert load_spec(DATA / qwen).attention.sliding_window is None  # use_sliding_window: false
    every = load_spec(_edited(tmp_path, qwen, use_sliding_window=True, max_window_layers=0, sliding_window=512))
    assert every.attention.sliding_window == 512
    none = load_spec(_edited(tmp_path, qwen, use_sliding_window=True, max_window_layers=24))
    assert none.attention.sliding_window is None  # all 24 layers keep full attention
    with pytest.raises(UserError) as exc:
        load_spec(_edited(tmp_path, qwen, use_sliding_window=True, max_window_layers=21))
    assert exc.value.field == "max_window_layers" and exc.value.line is not None
    with pytest.raises(UserError) as exc:
        load_spec(_edited(tmp_path, "mistral-7b-config.json", sliding_window=0))
    assert exc.value.field == "attention.sliding_window" and exc.value.line is not None


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

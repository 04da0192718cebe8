"""The spec schema: every rule, located errors, overlays, shipped specs."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from picost.errors import UserError
from picost.model.load import load_spec, shipped_spec_names
from picost.model.spec import ModelSpec

BASE = """\
name: m
n_layers: 2
d_model: 64
n_heads: 4
d_ff: 256
vocab_size: 100
context_length: 16
"""


def write(tmp_path: Path, text: str, name: str = "m.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def error_of(path: Path) -> UserError:
    with pytest.raises(UserError) as info:
        load_spec(path)
    return info.value


def test_minimal_spec_defaults(tmp_path):
    spec = load_spec(write(tmp_path, BASE))
    assert spec.kv_heads == 4 and spec.dim_head == 16 and spec.ffn_width == 256
    assert spec.norm.kind == "layernorm" and spec.norm.placement == "pre" and spec.norm.final
    assert spec.phase == "prefill" and spec.batch_size == 1 and spec.head == "last"


def test_d_ff_multiplier(tmp_path):
    spec = load_spec(write(tmp_path, BASE.replace("d_ff: 256", "d_ff_multiplier: 2.5")))
    assert spec.ffn_width == 160


@pytest.mark.parametrize(
    "edit, field, line, words",
    [
        (("n_heads: 4", "n_heads: 5"), "n_heads", 4, "not divisible"),
        (("n_layers: 2", "n_layers: 0"), "n_layers", 2, "greater than 0"),
        (("n_layers: 2", "n_layers: -3"), "n_layers", 2, "greater than 0"),
        (("n_layers: 2", "n_layers: twelve"), "n_layers", 2, "valid integer"),
        (("n_layers: 2", "n_layers: 2.5"), "n_layers", 2, "valid integer"),
        (("n_layers: 2", "n_layers: true"), "n_layers", 2, "valid integer"),
        (("vocab_size: 100", "vocab_size: [1]"), "vocab_size", 6, "valid integer"),
        (("d_ff: 256", "d_ff: 256\nd_ff_multiplier: 4.0"), "d_ff_multiplier", 6, "not both"),
        (("d_ff: 256", "d_ff_multiplier: 1.01"), "d_ff_multiplier", 5, "whole number"),
        (("d_ff: 256\n", ""), "d_ff", None, "missing"),
        (("name: m", "name: m\nactivation: swish"), "activation", 2, "gelu"),
        (("name: m", "name: m\nfoo: 1"), "foo", 2, "unknown key 'foo'"),
        (("name: m", "name: m\nnorm:\n  knd: rmsnorm"), "norm.knd", 3, "did you mean 'kind'"),
        (("name: m", "name: m\nnorm:\n  kind: batchnorm"), "norm.kind", 3, "layernorm"),
        (("name: m", "name: m\nn_kv_heads: 3"), "n_kv_heads", 2, "multiple of n_kv_heads"),
        (("name: m", "name: m\nn_kv_heads: 8"), "n_kv_heads", 2, "multiple of n_kv_heads"),
        (("name: m", "name: m\nffn:\n  fused: true"), "ffn.fused", 3, "identity"),
        (("name: m", "name: m\nffn:\n  pruned_layers: [0, 2]"), "ffn.pruned_layers.1", 3, "out of range"),
        (("name: m", "name: m\nffn:\n  pruned_layers: [1, 1]"), "ffn.pruned_layers.1", 3, "twice"),
        (("name: m", "name: m\nffn:\n  pruned_from_layer: 2"), "ffn.pruned_from_layer", 3, "out of range"),
        (("name: m", "name: m\nffn:\n  pruned_layers: [1]\n  pruned_from_layer: 1"), "ffn.pruned_from_layer", 4,
         "not both"),
        (("name: m", "name: m\npositional: rope\nrope_fraction: 0.1"), "rope_fraction", 3, "even"),
        (("name: m", "name: m\nhead: none"), "argmax", None, "argmax needs a head"),
        (("name: m", "name: m\nphase: generate"), "phase", 2, "prefill"),
        (("name: m", "name: m\nattention:\n  sliding_window: 0"), "attention.sliding_window", 3, "greater than 0"),
        (("name: m", "name: m\nattention:\n  causal: false\n  sliding_window: 4"), "attention.sliding_window", 4,
         "causal attention only"),
        (("name: m", "name: m\nbatch_size: 0"), "batch_size", 2, "greater than 0"),
    ],
)
def test_rules_are_located(tmp_path, edit, field, line, words):
    path = write(tmp_path, BASE.replace(*edit))
    err = error_of(path)
    assert err.field == field
    assert err.file == str(path)
    assert err.line == line
    assert words in str(err)
    assert str(path) in str(err)


def test_head_dim_lifts_divisibility(tmp_path):
    spec = load_spec(write(tmp_path, BASE.replace("n_heads: 4", "n_heads: 5\nhead_dim: 16")))
    assert spec.dim_head == 16


def test_yaml_syntax_error_has_line(tmp_path):
    path = write(tmp_path, BASE + "norm: {kind: layernorm\nbias: true\n")
    err = error_of(path)
    assert err.line is not None and err.line >= 8
    assert "malformed YAML" in str(err)


def test_duplicate_key_is_an_error(tmp_path):
    err = error_of(write(tmp_path, BASE + "n_layers: 3\n"))
    assert err.field == "n_layers" and err.line == 8 and "duplicate" in str(err)


@pytest.mark.parametrize("text", ["", "- 1\n- 2\n", "just a string\n"])
def test_not_a_mapping(tmp_path, text):
    err = error_of(write(tmp_path, text))
    assert err.line == 1


def test_missing_file():
    with pytest.raises(UserError, match="no such spec"):
        load_spec("/nonexistent/dir/x.yaml")


def test_unknown_shipped_name_suggests():
    with pytest.raises(UserError, match="did you mean gpt2"):
        load_spec("gtp2")


def test_overlay_merges_and_replaces(tmp_path):
    write(tmp_path, BASE, "base.yaml")
    path = write(tmp_path, "extends: base.yaml\nname: v\nactivation: relu\nnorm:\n  placement: post\n", "v.yaml")
    spec = load_spec(path)
    assert spec.name == "v" and spec.activation == "relu"
    assert spec.norm.placement == "post" and spec.norm.kind == "layernorm"  # merged, not replaced
    assert spec.n_layers == 2


def test_overlay_error_points_to_the_file_that_set_the_field(tmp_path):
    base = write(tmp_path, BASE, "base.yaml")
    over = write(tmp_path, "extends: base.yaml\nname: v\nffn:\n  fused: true\n", "v.yaml")
    err = error_of(over)
    assert err.file == str(over) and err.line == 4 and err.field == "ffn.fused"
    over2 = write(tmp_path, "extends: base.yaml\nname: v\nn_heads: 3\n", "v2.yaml")
    err = error_of(over2)
    assert err.file == str(over2) and err.line == 3
    # a rule broken by the base's own value is reported in the base
    bad_base = write(tmp_path, BASE.replace("n_heads: 4", "n_heads: 3"), "badbase.yaml")
    err = error_of(write(tmp_path, "extends: badbase.yaml\nname: v\n", "v3.yaml"))
    assert err.file == str(bad_base) and err.line == 4
    assert base.exists()


def test_overlay_name_defaults_to_file_stem(tmp_path):
    write(tmp_path, BASE, "base.yaml")
    spec = load_spec(write(tmp_path, "extends: base.yaml\nactivation: relu\n", "my-variant.yaml"))
    assert spec.name == "my-variant"


def test_overlay_cycle_and_missing_base(tmp_path):
    write(tmp_path, "extends: b.yaml\n", "a.yaml")
    write(tmp_path, "extends: a.yaml\n", "b.yaml")
    err = error_of(tmp_path / "a.yaml")
    assert "cycle" in str(err) and err.field == "extends"
    err = error_of(write(tmp_path, "extends: nothere.yaml\n", "c.yaml"))
    assert err.field == "extends" and err.line == 1


def test_overlay_of_shipped_spec_by_name(tmp_path):
    spec = load_spec(write(tmp_path, "extends: gpt2\nname: g\nn_layers: 3\n"))
    assert spec.n_layers == 3 and spec.d_model == 768


def test_every_shipped_spec_loads():
    names = shipped_spec_names()
    assert {"gpt2", "gpt2-relu", "gpt2-lnfree-gelu", "gpt2-lnfree-relu", "gpt2-smonly", "gpt2-smonly-fused",
            "gpt2-smonly-fused-pruned", "gpt2-l18", "gpt2-medium", "pythia-70m", "pythia-160m",
            "llama2-7b", "llama3-8b", "tiny"} <= set(names)
    for name in names:
        spec = load_spec(name)
        assert spec.name == name  # each file's name matches its stem


def test_aero_variants_differ_from_gpt2_as_documented():
    gpt2 = load_spec("gpt2")
    assert load_spec("gpt2-relu").activation == "relu"
    assert load_spec("gpt2-lnfree-gelu").norm.kind == "none"
    lnfree_relu = load_spec("gpt2-lnfree-relu")
    assert (lnfree_relu.norm.kind, lnfree_relu.activation) == ("none", "relu")
    smonly = load_spec("gpt2-smonly")
    assert smonly.activation == "identity" and smonly.ffn.learnable_output_scale
    assert load_spec("gpt2-smonly-fused").ffn.fused
    assert load_spec("gpt2-smonly-fused-pruned").pruned_ffn_layers == frozenset(range(6, 12))
    assert load_spec("gpt2-l18").n_layers == 18 and load_spec("gpt2-l18").d_model == gpt2.d_model


def test_python_api_validates_too():
    with pytest.raises(Exception):
        ModelSpec(name="x", n_layers=1, d_model=10, n_heads=3, d_ff=4, vocab_size=5, context_length=4)

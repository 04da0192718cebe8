"""A spec loaded twice from unchanged files is parsed once (issue 24: spec by name), and any
change to any file of its ``extends:`` chain -- even one of the same size within the same clock
tick -- is seen at the next load; lowerings are shared only for the very same spec object."""

from __future__ import annotations

import os

import pytest

from picost.errors import UserError
from picost.model.load import load_spec
from picost.model.lower import lower


def _write(path, text):
    path.write_text(text)
    os.utime(path, ns=(1, 1))  # same mtime every time: only the bytes can tell the versions apart


def test_an_unchanged_spec_is_the_same_object_and_a_changed_one_is_reloaded(tmp_path):
    base, variant = tmp_path / "base.yaml", tmp_path / "variant.yaml"
    _write(base, "extends: gpt2\nn_layers: 2\n")
    _write(variant, "extends: base.yaml\nd_ff: 3072\n")
    first = load_spec(variant)
    assert load_spec(variant) is first and first.n_layers == 2
    _write(base, "extends: gpt2\nn_layers: 3\n")  # same size, same mtime, other bytes: the base of the chain
    second = load_spec(variant)
    assert second is not first and second.n_layers == 3
    _write(variant, "extends: base.yaml\nd_ff: 1536\n")
    assert load_spec(variant).ffn_width == 1536


def test_a_spec_file_replaced_by_a_bad_one_is_an_error_not_the_cached_spec(tmp_path):
    path = tmp_path / "s.yaml"
    _write(path, "extends: gpt2\nn_layers: 2\n")
    load_spec(path)
    _write(path, "extends: gpt2\nn_layers: -2\n")
    with pytest.raises(UserError):
        load_spec(path)
    path.unlink()
    with pytest.raises(UserError):
        load_spec(path)


def test_a_fifo_in_place_of_a_loaded_spec_is_refused_without_blocking(tmp_path):
    path = tmp_path / "s.yaml"
    _write(path, "extends: gpt2\nn_layers: 2\n")
    load_spec(path)
    path.unlink()
    os.mkfifo(path)
    with pytest.raises(UserError):
        load_spec(path)


def test_lowerings_are_shared_only_by_the_same_spec():
    spec = load_spec("gpt2")
    assert lower(spec, 64) is lower(spec, 64)
    other = spec.model_copy(update={"n_layers": 2})
    assert lower(other, 64) is not lower(spec, 64)
    assert len(lower(other, 64).ops) < len(lower(spec, 64).ops)
    assert lower(spec, 65).context == 65

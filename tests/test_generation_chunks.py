"""A long generation is costed a chunk of cache lengths at a time and written out in pieces, so
memory stays bounded at the documented maximum of new tokens (issue 21, issue 24): the chunks give
exactly the one-piece figures, and the streamed JSON and CSV are the ones built in one go."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from picost.analysis import generation as gen_module
from picost.analysis.generation import MAX_NEW_TOKENS, decode_costs
from picost.cost.hybrid import load_costing
from picost.model.load import load_spec
from picost.report import render
from picost.report.render import csv_pieces, dump_csv, dump_json, json_pieces


@pytest.mark.parametrize("protocol", ["bumblebee", "crypten", "spu-semi2k", "picost-2pc"])
@pytest.mark.parametrize("spec_name", ["tiny", "gpt2"])
def test_chunked_decode_costs_are_exactly_the_one_piece_costs(monkeypatch, protocol, spec_name):
    spec = load_spec(spec_name)
    table = load_costing(protocol)
    cache = np.arange(60, 160, dtype=np.int64)
    whole = decode_costs(spec, table, cache)
    monkeypatch.setattr(gen_module, "DECODE_CHUNK", 7)  # 15 chunks, the last one short
    chunked = decode_costs(spec, table, cache)
    assert whole.by_class.keys() == chunked.by_class.keys()
    for cls, fields in whole.by_class.items():
        for f, arr in fields.items():
            other = chunked.by_class[cls][f]
            if arr is None:
                assert other is None, (cls, f)
                continue
            assert other.shape == cache.shape and other.dtype == arr.dtype, (cls, f)
            assert np.array_equal(arr, other), (cls, f)


def test_a_field_no_cache_length_changes_takes_no_memory_per_step():
    costs = decode_costs(load_spec("gpt2"), load_costing("crypten"), np.arange(1, 100_001, dtype=np.int64))
    linear = costs.by_class["linear"]
    assert linear["comm_bytes"].strides == (0,) and linear["comm_bytes"].dtype == np.int64
    assert costs.by_class["attention_matmul"]["comm_bytes"][-1] > costs.by_class["attention_matmul"]["comm_bytes"][0]


arrays = st.one_of(
    st.lists(st.integers(-2**62, 2**62), max_size=40).map(lambda v: np.array(v, dtype=np.int64)),
    st.lists(st.floats(allow_nan=False, allow_infinity=False, width=64), max_size=40).map(np.array),
    st.lists(st.integers(0, 10**6), max_size=40).map(lambda v: np.array(v, dtype=np.float64)))
leaves = st.one_of(st.none(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8), arrays)
trees = st.recursive(leaves, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                      st.dictionaries(st.text(max_size=6), inner, max_size=4)),
                     max_leaves=12)


@given(trees)
@settings(max_examples=150, deadline=None)
def test_json_in_pieces_is_the_json_of_lists(tree):
    def listed(v):
        if isinstance(v, dict):
            return {k: listed(x) for k, x in v.items()}
        if isinstance(v, list):
            return [listed(x) for x in v]
        return v.tolist() if isinstance(v, np.ndarray) else v

    old_piece = render.PIECE
    render.PIECE = 3  # many pieces per array
    try:
        text = "".join(json_pieces(tree))
    finally:
        render.PIECE = old_piece
    assert json.loads(text) == json.loads(dump_json(listed(tree)))


def test_csv_in_pieces_is_the_csv_in_one_go(monkeypatch):
    rows = [(i, f"r{i}", i * 0.5, None) for i in range(50)]
    monkeypatch.setattr(render, "PIECE", 7)
    pieces = list(csv_pieces(("a", "b", "c", "d"), iter(rows)))
    assert len(pieces) > 5
    assert "".join(pieces) == dump_csv(("a", "b", "c", "d"), rows)
    assert len(list(csv.reader(io.StringIO("".join(pieces))))) == 51


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_the_documented_maximum_of_new_tokens_stays_within_a_few_hundred_mb(fmt):
    """docs/limits.md: a generation at MAX_NEW_TOKENS holds a few hundred MB (measured about 390 MB
    for tiny under crypten, any format); 2.4 GB before the chunks and the streamed output."""
    # the peak of this process's own memory (VmHWM): ru_maxrss would count the pytest process the
    # child was forked from (Linux keeps the pre-exec high-water mark)
    code = ("import sys\n"
            "from picost.cli.main import app\n"
            f"sys.argv = ['picost', 'estimate', 'tiny', '-p', 'crypten', '-n', 'wan', '-N', '{MAX_NEW_TOKENS}', "
            f"'-f', '{fmt}']\n"
            "try:\n    app()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]\n"
            "sys.stderr.write(hwm.split()[1])\n")
    res = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    lines = res.stdout.count(b"\n")
    assert lines >= MAX_NEW_TOKENS if fmt == "csv" else res.stdout.rstrip().endswith(b"}")
    peak_mb = int(res.stderr.decode().strip().splitlines()[-1]) / 1024
    assert peak_mb < 800, f"{peak_mb:.0f} MB"

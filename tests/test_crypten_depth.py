"""CrypTen's measured depth (benchmarks/crypten_depth.py: the slope of wall time over an injected
one-way delay, parties in netlab namespaces) equals the crypten table's rounds times its
delays_per_round, for every op kind measured."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from picost.cost.protocol_table import load_protocol
from picost.model.ops import Block, Holder, Op

REPO = Path(__file__).resolve().parent.parent
RECORDS = REPO / "benchmarks" / "results" / "crypten_depth.jsonl"
REQUIRED = {"relu", "gelu", "softmax", "layernorm", "linear", "matmul"}  # issue 10's op list


def _kinds() -> dict[str, tuple[str, object]]:
    """BENCH op -> (op kind, its dims from ROWS x COLS), as benchmarks/crypten_compute.py maps them."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    spec = importlib.util.spec_from_file_location("crypten_compute", REPO / "benchmarks" / "crypten_compute.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {op: (kind, dims) for kind, (op, dims) in module.KINDS.items()}


def _points() -> list[tuple[str, dict, float]]:
    kinds = _kinds()
    out = []
    for line in RECORDS.read_text().splitlines():
        r = json.loads(line)
        if r["op"] in kinds:
            kind, dims = kinds[r["op"]]
            out.append((kind, dims(r["rows"], r["cols"]), r["depth_delays_min"]))
    return out


def test_the_issue_s_ops_are_measured():
    assert REQUIRED <= {kind for kind, _, _ in _points()}


@pytest.mark.parametrize("kind, dims, measured", _points(), ids=lambda v: str(v) if isinstance(v, str) else None)
def test_table_depth_equals_the_measured_slope(kind, dims, measured):
    table = load_protocol("crypten")
    dims = {**dims, **({"valid": dims["rows"] * dims["cols"]} if kind == "softmax" else {})}
    holders = (Holder.SHARED, Holder.SERVER) if kind in ("linear", "embedding") else (Holder.SHARED,)
    op = Op(kind, kind, Block.FFN, 0, dims, holders)
    rounds = sum(c.rounds for c in table.cost(op) if not c.is_truncation)
    expected = rounds * table.setting.delays_per_round
    assert measured == pytest.approx(expected, rel=0.1, abs=1.5), (kind, dims, rounds)

"""The crypten table's compute_s comes from benchmarks/crypten_compute.py's runs, and cannot drift."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from picost.cost.protocol_table import load_protocol

REPO = Path(__file__).resolve().parent.parent


def _script():
    sys.path.insert(0, str(REPO / "benchmarks"))
    spec = importlib.util.spec_from_file_location("crypten_compute", REPO / "benchmarks" / "crypten_compute.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_tables_carry_the_fitted_compute():
    script = _script()
    for path, own in script.TABLES.items():
        text = path.read_text()
        assert script.write_table(text, script.fits(), own) == text, \
            f"{path.name} stale: python benchmarks/crypten_compute.py --write-only"


def test_every_measured_kind_has_compute_and_says_where_it_comes_from():
    script = _script()
    table = load_protocol("crypten")
    for kind in script.KINDS:
        entry = table.entries[kind]
        assert "compute_s" in entry.formulas, kind
        assert entry.compute_source.startswith("measured: benchmarks/crypten_compute.py"), kind
    assert table.entries["truncation"].compute_source.startswith("derived:")


def test_rewriting_replaces_compute_lines_instead_of_adding_more():
    script = _script()
    text = (REPO / "protocols" / "crypten.yaml").read_text()
    fits = script.fits()
    once = script.write_table(text, fits)
    assert script.write_table(once, fits) == once
    assert once.count("compute_s:") == len(fits) + 1  # every measured kind and the truncation


def _at_scale_runs() -> list[dict]:
    import json

    path = REPO / "benchmarks" / "results" / "crypten" / "compute.jsonl"
    return [r for r in map(json.loads, path.read_text().splitlines()) if r.get("at_scale")]


def test_at_scale_runs_committed():
    """The op classes of GPT-2 small / BERT-base at T = 128 were timed at those sizes (issue 20)."""
    kinds = {r["kind"] for r in _at_scale_runs()}
    assert {"linear", "matmul", "gelu", "gelu_tanh", "softmax", "layernorm", "embedding", "mul"} <= kinds


def test_table_compute_at_scale_within_25_percent_of_the_runs():
    """Every at-scale run (benchmarks/crypten_compute.py --at-scale) against the committed table's
    compute_s at its size: within 25% (needs no CrypTen)."""
    table = load_protocol("crypten")
    misses = []
    for run in _at_scale_runs():
        entry = table.entries[run["kind"]]
        table_s = float(entry.formulas["compute_s"].value({**table.param_values, **run["dims"]}))
        if abs(table_s / run["min_wall_s"] - 1) > 0.25:
            misses.append(f"{run['kind']} {run['dims']}: table {table_s:.3g} s, run {run['min_wall_s']:.3g} s")
    assert not misses, misses

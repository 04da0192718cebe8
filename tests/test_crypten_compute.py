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

"""Loading protocol tables: every shipped table is valid and sourced, the docs are generated from
the data, and each kind of mistake is one located UserError."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from picost.errors import UserError
from picost.model.ops import KINDS, Block, Holder, Op
from picost.report.protocol_docs import expected_docs
from picost.cost.protocol_table import (ENTRY_SYMBOLS, TRUNCATION, load_protocol, resolve_protocol_path,
                              shipped_protocol_names)

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "data" / "protocols"

GOOD = """\
name: {name}
description: a test table
citations:
  fx: "a fixture"
setting:
  parties: 2
  threat_model: semi-honest
  correlated_randomness: none
confidence: invented
params:
  ell: {{value: 64, unit: bits, source: "fx §1"}}
ops:
  relu:
    comm_bytes: "ell * n"
    rounds: 3
    source: "fx Table 2"
"""


def write(tmp_path: Path, text: str, name: str = "t") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize("name", shipped_protocol_names())
def test_shipped_tables_load_and_every_entry_is_sourced(name):
    table = load_protocol(name)
    assert table.name == name and table.entries
    for kind, entry in table.entries.items():
        assert kind in ENTRY_SYMBOLS
        assert entry.source.strip()
        assert {"comm_bytes", "rounds"} <= set(entry.formulas)
    for param in table.params.values():
        assert param.source.strip()


def test_shipped_docs_are_generated_from_the_data():
    docs = REPO / "docs" / "protocols"
    expected = expected_docs()
    committed = {p.name: p.read_text(encoding="utf-8") for p in docs.glob("*.md")}
    stale = sorted(n for n in expected if committed.get(n) != expected[n])
    extra = sorted(set(committed) - set(expected))
    assert not stale and not extra, (
        f"docs/protocols is stale ({stale}) or has pages without a table ({extra}); "
        f"run scripts/gen_protocol_docs.py")


def test_good_table_loads(tmp_path):
    table = load_protocol(write(tmp_path, GOOD.format(name="t")))
    assert table.params["ell"].value == 64
    op = Op("x", "relu", Block.FFN, 0, {"n": 10}, (Holder.SHARED,))
    (cost,) = table.cost(op)
    assert (cost.comm_bytes, cost.rounds, cost.compute_s) == (640, 3, None)


def _error(tmp_path: Path, text: str, name: str = "t") -> UserError:
    with pytest.raises(UserError) as err:
        load_protocol(write(tmp_path, text, name))
    return err.value


@pytest.mark.parametrize("old, new, line, field, needle", [
    ("  relu:\n", "  relu:\n    flavour: x\n", 14, "ops.relu.flavour", "unknown key 'flavour'"),
    ("  relu:\n", "  reluu:\n", 13, "ops.reluu", "unknown op kind 'reluu'; did you mean 'relu'"),
    ('    source: "fx Table 2"\n', "", 13, "ops.relu", "missing source"),
    ('    source: "fx Table 2"\n', '    source: ""\n', 16, "ops.relu.source", "missing source"),
    ('    source: "fx Table 2"\n', '    source: "paper 3"\n', 16, "ops.relu.source", "citation key"),
    ('    source: "fx Table 2"\n', '    source: "fx"\n', 16, "ops.relu.source", "must name the table"),
    ('    source: "fx Table 2"\n', '    source: "derived:"\n', 16, "ops.relu.source", "followed by"),
    ('"ell * n"', '"lam * n"', 14, "ops.relu.comm_bytes", "unknown symbol 'lam'"),
    ('"ell * n"', '"exp(n)"', 14, "ops.relu.comm_bytes", "unknown function 'exp'"),
    ('"ell * n"', '"rows * n"', 14, "ops.relu.comm_bytes", "unknown symbol 'rows'"),
    ("    rounds: 3\n", "", 13, "ops.relu", "missing required formula 'rounds'"),
    ('unit: bits, source: "fx §1"', "unit: bits", 11, "params.ell", "missing required key 'source'"),
    ("  ell:", "  n:", 11, "params.n", "clashes"),
    ("name: t", "name: other", 1, "name", "must equal the file stem"),
    ("  parties: 2", "  parties: 4", 6, "setting.parties", "parties must be"),
    ("correlated_randomness: none", "correlated_randomness: tee", 8, "setting.correlated_randomness", "dealer"),
    ("confidence: invented\n", "", None, None, "missing required key 'confidence'"),
    ("    rounds: 3\n", "    rounds: 3\n    includes_truncation: true\n", 16, "ops.relu.includes_truncation",
     "fixed-point"),
    ("    rounds: 3\n", "    rounds: 3\n    bytes_client_to_server: n\n", 16, "ops.relu.bytes_client_to_server",
     "both"),
    ("    rounds: 3\n", "    rounds: 3\n    bytes_client_to_server: n\n    bytes_server_to_client: n\n", 16,
     "ops.relu.bytes_client_to_server", "add up"),
    ("ops:\n", "ops:\n  relu: {comm_bytes: 1, rounds: 1, source: 'fx §2'}\n", 14, "ops.relu", "duplicate key"),
    ("    rounds: 3\n", "    rounds: 3\n    compute_source: 'measured: run x'\n", 16, "ops.relu.compute_source",
     "has no compute_s"),
    ("    rounds: 3\n", "    rounds: 3\n    compute_s: 1e-6 * n\n    compute_source: 'a run'\n", 17,
     "ops.relu.compute_source", "citation key"),
])
def test_malformed_tables_are_located(tmp_path, old, new, line, field, needle):
    text = GOOD.format(name="t")
    assert old in text
    err = _error(tmp_path, text.replace(old, new, 1))
    assert needle in err.message, err.message
    assert err.file is not None and err.file.endswith("t.yaml")
    assert err.line == line, str(err)
    assert err.field == field, str(err)


def test_compute_source_is_kept_and_shown(tmp_path):
    from picost.report.protocol_docs import entry_rows

    text = GOOD.format(name="t").replace("    rounds: 3\n", "    rounds: 3\n    compute_s: 2e-6 * n\n"
                                          "    compute_source: 'measured: a run on host X'\n")
    table = load_protocol(write(tmp_path, text))
    entry = table.entries["relu"]
    assert entry.compute_source == "measured: a run on host X"
    assert "compute_s: measured: a run on host X" in entry_rows(table)[0][-1]


def test_per_direction_bytes_that_add_up_are_accepted(tmp_path):
    text = GOOD.format(name="t").replace(
        "    rounds: 3\n", "    rounds: 3\n    bytes_client_to_server: ell * n / 4\n"
                          "    bytes_server_to_client: 3 * ell * n / 4\n")
    table = load_protocol(write(tmp_path, text))
    op = Op("x", "relu", Block.FFN, 0, {"n": 10}, (Holder.SHARED,))
    (cost,) = table.cost(op)
    assert (cost.bytes_client_to_server, cost.bytes_server_to_client, cost.comm_bytes) == (160, 480, 640)


def test_negative_cost_is_a_located_error_at_estimate_time(tmp_path):
    table = load_protocol(write(tmp_path, GOOD.format(name="t").replace('"ell * n"', '"ell - n"')))
    op = Op("L0.ffn.act", "relu", Block.FFN, 0, {"n": 100}, (Holder.SHARED,))
    with pytest.raises(UserError) as err:
        table.cost(op)
    assert "L0.ffn.act" in err.value.message and err.value.field == "ops.relu.comm_bytes" and err.value.line == 14


def test_malformed_yaml_is_located(tmp_path):
    err = _error(tmp_path, GOOD.format(name="t").replace("    rounds: 3\n", "    rounds: [3\n"))
    assert "malformed YAML" in err.message and err.line is not None


def test_unknown_protocol_names_close_matches():
    with pytest.raises(UserError) as err:
        resolve_protocol_path("plaintxt")
    assert "no such protocol" in err.value.message and "plaintext" in err.value.message


def test_fixture_tables_cover_their_kinds():
    table = load_protocol(FIXTURES / "fixture2pc.yaml")
    assert set(table.entries) == set(KINDS) | {TRUNCATION}


@pytest.mark.parametrize("name", shipped_protocol_names())
def test_shipped_tables_cost_the_truncation_of_the_kinds_they_cost(name):
    """A fixed-point kind with an entry but neither includes_truncation nor a truncation entry
    would be uncosted at every use: almost surely a mistake in a shipped table."""
    table = load_protocol(name)
    if TRUNCATION in table.entries:
        return
    missing = [k for k, e in table.entries.items()
               if k != TRUNCATION and KINDS[k].fixed_point_product and not e.includes_truncation]
    assert not missing, f"{name}: {missing} need includes_truncation: true or a truncation entry"


@pytest.mark.parametrize("formula_text, needle", [("log2(n - 10)", "math domain error"),
                                                  ("n / (n - 10)", "division by zero"),
                                                  ("sqrt(n - 11)", "math domain error")])
def test_formula_domain_errors_are_located_not_tracebacks(tmp_path, formula_text, needle):
    table = load_protocol(write(tmp_path, GOOD.format(name="t").replace('"ell * n"', f'"{formula_text}"')))
    op = Op("L2.ffn.act", "relu", Block.FFN, 2, {"n": 10}, (Holder.SHARED,))
    with pytest.raises(UserError) as err:
        table.cost(op)
    assert "L2.ffn.act" in err.value.message and "n=10" in err.value.message and needle in err.value.message
    assert err.value.line == 14 and err.value.field == "ops.relu.comm_bytes"

"""Content of the shipped protocol tables: schema, sources, and figures against their sources.

The schema checks read the YAML directly (independently of the loader) and then load every table
with the real loader. The spot checks evaluate the tables' formulas with the loader's evaluator at
the shapes of the cited or measured figures: CrypTen's own counters (benchmarks/crypten_ops.py,
recorded in benchmarks/results/crypten_ops.jsonl), SPU's profile (benchmarks/spu_ops.py, recorded
in benchmarks/results/spu_*.jsonl, and the raw numbers of Appendix A of the reference data), and
closed forms from the papers.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from picost.model.ops import KINDS
from picost.cost.protocol_table import TRUNCATION, load_protocol

REPO = Path(__file__).resolve().parent.parent
PROTOCOLS = REPO / "protocols"
RESULTS = REPO / "benchmarks" / "results"
TABLES = sorted(p.stem for p in PROTOCOLS.glob("*.yaml"))
OWN_TABLES = ["bumblebee", "crypten", "cryptflow2", "plaintext", "puma", "shaft", "sigma"]
SOURCE_PREFIXES = ("derived:", "measured:")


def _raw(name: str) -> dict:
    return yaml.safe_load((PROTOCOLS / f"{name}.yaml").read_text())


def _source_ok(source: object, citations: dict) -> bool:
    if not isinstance(source, str) or not source.strip():
        return False
    text = source.strip()
    if text.startswith(SOURCE_PREFIXES):
        return len(text.split(":", 1)[1].strip()) > 10
    key, _, where = text.partition(" ")
    return key in citations and bool(where.strip())


def _cost(table, kind: str, field: str, **dims):
    """Evaluate one formula of a loaded table at ``dims`` (params default to the table's)."""
    env = dict(table.param_values)
    env.update(dims)
    return table.entries[kind].formulas[field].value(env)


def _jsonl(name: str) -> list[dict]:
    return [json.loads(line) for line in (RESULTS / name).read_text().splitlines() if line.strip()]


def test_all_own_tables_are_shipped():
    assert set(OWN_TABLES) <= set(TABLES)


@pytest.mark.parametrize("name", TABLES)
def test_table_schema_and_sources(name):
    raw = _raw(name)
    base = _raw(raw["extends"]) if raw.get("extends") else {}  # a table that extends another inherits
    for key in ("name", "description", "setting", "confidence", "ops"):
        assert raw.get(key) or (key in ("setting", "ops") and base.get(key)), f"{name}: missing {key}"
    assert raw["name"] == name
    citations = {**(base.get("citations") or {}), **(raw.get("citations") or {})}
    for key, text in citations.items():
        assert isinstance(text, str) and text.strip(), f"{name}: empty citation {key}"
    setting = raw.get("setting") or base["setting"]
    assert setting["parties"] in (1, 2, 3)
    assert setting["correlated_randomness"] in ("none", "dealer", "third_party")
    for pname, param in (raw.get("params") or {}).items():
        assert isinstance(param["value"], (int, float)) and not isinstance(param["value"], bool), pname
        assert _source_ok(param.get("source"), citations), f"{name}: param {pname} has a bad source"
    allowed = set(KINDS) | {TRUNCATION}
    ops = {**(base.get("ops") or {}), **(raw.get("ops") or {})}
    for kind, entry in ops.items():
        assert kind in allowed, f"{name}: unknown op kind {kind}"
        assert "comm_bytes" in entry and "rounds" in entry, f"{name}.{kind}"
        assert _source_ok(entry.get("source"), citations), f"{name}.{kind} has a bad source"
    # the real loader accepts it (symbols, grammar, per-direction sums)
    table = load_protocol(name)
    assert set(table.base_entries) == set(ops)
    # only topk (from the table's argmax) and reveal (from its setting), where it opts in
    derived = set(table.entries) - set(ops)
    assert derived <= {"topk", "reveal"} and all(table.entries[k].source.startswith("derived: ") for k in derived)
    assert ("topk" in derived) == (table.derive and "argmax" in ops and "topk" not in ops)
    s = table.setting
    openable = s.shares == "plaintext" or (s.ring_bits is not None and (s.parties, s.shares) in
                                           ((2, "additive"), (3, "replicated")))
    assert ("reveal" in derived) == (table.derive and openable and "reveal" not in ops)


@pytest.mark.parametrize("name", TABLES)
def test_fixed_point_products_have_a_rescale(name):
    """A costed op whose outputs need rescaling has a truncation entry or pays it itself."""
    table = load_protocol(name)
    for kind, entry in table.entries.items():
        if kind != TRUNCATION and KINDS[kind].fixed_point_product and not entry.includes_truncation:
            assert TRUNCATION in table.entries, f"{name}.{kind} needs a truncation entry"


@pytest.mark.parametrize("name", TABLES)
def test_costs_are_non_negative_and_grow_with_size(name):
    table = load_protocol(name)
    for kind, entry in table.entries.items():
        dims = KINDS[kind].dims if kind != TRUNCATION else ("n",)
        small = {d: 64 for d in dims}
        large = {d: 256 for d in dims}
        for field in entry.formulas:
            a, b = _cost(table, kind, field, **small), _cost(table, kind, field, **large)
            assert 0 <= a <= b, f"{name}.{kind}.{field}: {a} at 64, {b} at 256"


# -- crypten: derived from the code, checked against CrypTen's own counters ---------------------

CRYPTEN_SHAPES = {
    "mul": ("mul", lambda r, c: {"n": r * c}),
    "matmul": ("matmul", lambda r, c: {"b": 1, "m": r, "k": c, "n": r}),
    "linear": ("linear", lambda r, c: {"m": r, "k": c, "n": c}),
    "embedding": ("embedding", lambda r, c: {"tokens": r, "vocab": c, "width": 16}),
    "relu": ("relu", lambda r, c: {"n": r * c}),
    "gelu": ("gelu", lambda r, c: {"n": r * c}),
    "gelu_tanh": ("gelu_tanh", lambda r, c: {"n": r * c}),
    "silu": ("silu", lambda r, c: {"n": r * c}),
    "softmax_row": ("softmax", lambda r, c: {"rows": r, "cols": c, "valid": r * c}),
    "argmax_row": ("argmax", lambda r, c: {"rows": r, "cols": c}),
    "layernorm_row": ("layernorm", lambda r, c: {"rows": r, "cols": c}),
    "rmsnorm_row": ("rmsnorm", lambda r, c: {"rows": r, "cols": c}),
}


CRYPTEN_PUBLIC = {"weights": "public", "norm_gain": "public"}


@pytest.mark.parametrize("weights", ["shared", "public"])
def test_crypten_matches_its_counters_exactly(weights):
    """Every CrypTen run (secret-shared weights; or public weights and gains, with the options that
    say so) equals the table exactly: bytes on the wire, bytes per party, rounds."""
    table = load_protocol("crypten", CRYPTEN_PUBLIC if weights == "public" else None)
    shapes = {**CRYPTEN_SHAPES, "weight_mul": ("weight_mul", lambda r, c: {"n": r * c})} if weights == "public" \
        else CRYPTEN_SHAPES
    runs = [r for r in _jsonl("crypten_ops.jsonl") if r["op"] in shapes and r.get("weights", "shared") == weights]
    expected_ops = set(shapes) if weights == "shared" else {"linear", "embedding", "weight_mul", "layernorm_row",
                                                             "rmsnorm_row"}
    assert {r["op"] for r in runs} == expected_ops
    for run in runs:
        kind, dims = shapes[run["op"]]
        d = dims(run["rows"], run["cols"])
        # CrypTen's per-party count is sent + received = all bytes on the wire in 2PC
        assert _cost(table, kind, "comm_bytes", **d) == run["bytes"], run
        assert _cost(table, kind, "bytes_client_to_server", **d) == run["sent_bytes"], run
        assert _cost(table, kind, "rounds", **d) == run["rounds"], run


def test_crypten_issue_cross_check_figures():
    """ReLU 232 B/element in 9 rounds; softmax rows of 128: ~745 B/element in 116 rounds (per party)."""
    t = load_protocol("crypten")
    n = 1000
    assert _cost(t, "relu", "bytes_client_to_server", n=n) == 232 * n
    assert _cost(t, "relu", "rounds", n=n) == 9
    per_party = _cost(t, "softmax", "bytes_server_to_client", rows=10, cols=128, valid=1280)
    assert per_party / 1280 == pytest.approx(744.1875)  # the issue's "745", rounded up
    assert _cost(t, "softmax", "rounds", rows=10, cols=128, valid=1280) == 116


def test_crypten_exp_costs_one_element_and_one_round_per_squaring():
    """exp = exp_iters squarings: 64 B per element per party in 8 rounds at the default 8.

    exp is not an op kind; it shows in the softmax entry (exp of every score and, inside the
    reciprocal, of every row sum), so one more iteration adds 8 B per score and per row per party
    and two rounds.
    """
    t = load_protocol("crypten")
    rows, cols = 3, 128
    env = dict(t.param_values, rows=rows, cols=cols, valid=rows * cols)
    f = t.entries["softmax"].formulas
    more = dict(env, exp_iters=env["exp_iters"] + 1)
    assert f["bytes_client_to_server"].value(more) - f["bytes_client_to_server"].value(env) == 8 * rows * (cols + 1)
    assert f["rounds"].value(more) - f["rounds"].value(env) == 2
    assert env["exp_iters"] * 8 == 64
    exp_runs = [r for r in _jsonl("crypten_ops.jsonl") if r["op"] == "exp"]
    assert exp_runs and all(r["sent_bytes"] == 64 * r["rows"] * r["cols"] and r["rounds"] == 8 for r in exp_runs)


# -- cryptflow2: closed forms from SIRNN ---------------------------------------------------------

def test_cryptflow2_relu_matches_the_derived_reference_figures():
    t = load_protocol("cryptflow2")
    for ell, expected in ((32, 598), (37, 690), (64, 1182)):
        assert _cost(t, "relu", "comm_bytes", n=1, ell=ell) == pytest.approx(expected, abs=0.8)
    assert _cost(t, "relu", "rounds", n=1, ell=32) == 7  # log2(32) + 2


def test_cryptflow2_truncation_is_the_printed_closed_form():
    t = load_protocol("cryptflow2")
    lam, ell, s = 128, 37, 12
    bits = lam * (ell + s + 2) + 19 * ell + 14 * s
    assert _cost(t, "truncation", "comm_bytes", n=10) == 10 * bits / 8
    assert _cost(t, "truncation", "rounds", n=10) == math.ceil(math.log2(ell)) + 2


# -- sigma: third-party per-element figures --------------------------------------------------------

def test_sigma_gelu_reproduces_the_measured_tensor_total():
    t = load_protocol("sigma")
    n = 128 * 3072
    assert _cost(t, "gelu", "comm_bytes", n=n) == pytest.approx(13_664_260, rel=1e-6)
    assert _cost(t, "gelu", "offline_bytes", n=n) == 575 * n
    assert _cost(t, "gelu", "rounds", n=n) == 7


# -- plaintext -------------------------------------------------------------------------------------

def test_plaintext_has_no_communication_and_compute_from_flops():
    t = load_protocol("plaintext")
    for kind, entry in t.entries.items():
        dims = {d: 100 for d in KINDS[kind].dims}
        assert _cost(t, kind, "comm_bytes", **dims) == 0
        assert _cost(t, kind, "rounds", **dims) == 0
    rate = t.param_values["flops_per_s"]
    assert _cost(t, "linear", "compute_s", m=128, k=768, n=768) == pytest.approx(2 * 128 * 768 * 768 / rate)


# -- SPU measurements (benchmarks/spu_ops.py): bumblebee = CHEETAH, puma = ABY3 ---------------------

#: spu_ops.py op -> (table kind, dims from the measured shape)
SPU_OPS = {
    "relu": ("relu", lambda r, c, o: {"n": r * c}),
    "mul": ("mul", lambda r, c, o: {"n": r * c}),
    "scale": ("truncation", lambda r, c, o: {"n": r * c}),
    "add": ("add", lambda r, c, o: {"n": r * c}),
    "puma_gelu": ("gelu", lambda r, c, o: {"n": r * c}),
    "silu": ("silu", lambda r, c, o: {"n": r * c}),
    "puma_softmax_row": ("softmax", lambda r, c, o: {"rows": r, "cols": c, "valid": r * c}),
    "layernorm_row": ("layernorm", lambda r, c, o: {"rows": r, "cols": c}),
    "rmsnorm_row": ("rmsnorm", lambda r, c, o: {"rows": r, "cols": c}),
    "argmax_row": ("argmax", lambda r, c, o: {"rows": r, "cols": c}),
    "matmul_sxs": ("linear", lambda r, c, o: {"m": r, "k": c, "n": o}),
    "embedding": ("embedding", lambda r, c, o: {"tokens": r, "vocab": c, "width": o}),
    "bmatmul4_sxs": ("matmul", lambda r, c, o: {"b": 4, "m": r, "k": c, "n": o}),
}


def _spu_runs(protocol: str) -> list[dict]:
    runs = []
    for path in sorted(RESULTS.glob("spu_*.jsonl")):
        runs += [r for r in _jsonl(path.name) if r["protocol"] == protocol and r["op"] in SPU_OPS]
    return runs


def test_puma_reproduces_every_aby3_measurement():
    """ABY3 is linear in elements/rows: the formulas hit every measured point (all parties' bytes)."""
    t = load_protocol("puma")
    runs = _spu_runs("ABY3")
    assert {r["op"] for r in runs} >= set(SPU_OPS)
    for run in runs:
        kind, dims = SPU_OPS[run["op"]]
        d = dims(run["rows"], run["cols"], run["out_cols"])
        assert _cost(t, kind, "comm_bytes", **d) == pytest.approx(run["total_bytes"], abs=1), run
        assert _cost(t, kind, "messages", **d) >= run["max_send_actions"] - 1, run  # rounds are depth now


def test_bumblebee_is_spu_cheetah_with_aero_style_defaults():
    """bumblebee extends spu-cheetah (fitted over many sizes, not lines through two points) with
    shared weights and ids and PUMA's constructions; every entry equals the base table's with those
    options."""
    bb = load_protocol("bumblebee")
    base = load_protocol("spu-cheetah", {"weights": "shared", "input": "shared", "gelu": "puma", "softmax": "puma"})
    assert bb.chosen == base.chosen
    for kind, entry in bb.entries.items():
        dims = {d: 37 + 5 * i for i, d in enumerate(KINDS[kind].dims if kind != TRUNCATION else ("n",))}
        assert _cost(bb, kind, "comm_bytes", **dims) == _cost(base, kind, "comm_bytes", **dims), kind


def test_bumblebee_he_matmul_reproduces_the_independent_spu_ops_runs():
    """The six secret x secret matmuls and the batched attention product measured with the older
    benchmarks/spu_ops.py harness: the derived HE formula (+ the truncation it includes) within 0.01%."""
    t = load_protocol("bumblebee")
    runs = [r for r in _spu_runs("CHEETAH") if r["op"] in ("matmul_sxs", "bmatmul4_sxs")]
    assert len(runs) >= 7
    for run in runs:
        kind, dims = SPU_OPS[run["op"]]
        d = dims(run["rows"], run["cols"], run["out_cols"])
        if kind == "linear":
            d["bias"] = 0
        assert _cost(t, kind, "comm_bytes", **d) == pytest.approx(run["total_bytes"], rel=1e-4), run

def test_bumblebee_he_matmul_ciphertext_counts():
    """The smaller operand is encrypted: 128x128 @ 128x64 sends 1 query and 1 response ciphertext
    per cross product (plus the truncation the entry includes); a seeded query ciphertext is about
    poly_n coefficients of three 60-bit moduli (SPU's "3@2")."""
    t = load_protocol("bumblebee")
    assert t.entries["linear"].includes_truncation
    one_each = 2 * (t.param_values["ct_in_bytes"] + t.param_values["ct_out_bytes"])
    assert _cost(t, "linear", "comm_bytes", m=128, k=128, n=64, bias=0) == one_each + 3.125 * 128 * 64
    assert _cost(t, "matmul", "comm_bytes", b=3, m=128, k=128, n=64) == 3 * (one_each + 3.125 * 128 * 64)
    assert t.param_values["ct_in_bytes"] == pytest.approx(t.param_values["poly_n"] * 180 / 8, rel=0.005)


@pytest.mark.parametrize("name", TABLES)
def test_rounds_are_integers_at_any_shape(name):
    """Rounds count messages: whole numbers even at row lengths that are not powers of two."""
    table = load_protocol(name)
    for kind, entry in table.entries.items():
        dims = KINDS[kind].dims if kind != TRUNCATION else ("n",)
        for size in (1, 3, 100, 50257):
            rounds = _cost(table, kind, "rounds", **{d: size for d in dims})
            assert float(rounds).is_integer(), f"{name}.{kind}: {rounds} rounds at {size}"


# -- shaft: SHAFT's own ops from third-party runs, CrypTen's primitives otherwise -------------------

def test_shaft_shares_crypten_primitives_exactly():
    shaft, crypten = load_protocol("shaft"), load_protocol("crypten")
    own = {"softmax", "gelu", "gelu_tanh"}
    assert shaft.param_values == crypten.param_values
    for kind, entry in shaft.entries.items():
        if kind in own:
            continue
        theirs = crypten.entries[kind]
        assert {f: x.text for f, x in entry.formulas.items()} == {f: x.text for f, x in theirs.formulas.items()}, kind
        assert entry.includes_truncation == theirs.includes_truncation


def test_shaft_softmax_and_gelu_reproduce_the_reported_runs():
    t = load_protocol("shaft")
    for length, mib in ((32, 0.0596), (64, 0.1191), (128, 0.2383), (256, 0.4766)):
        got = _cost(t, "softmax", "comm_bytes", rows=1, cols=length, valid=length)
        assert got == pytest.approx(mib * 2**20, rel=1e-3)
        assert _cost(t, "softmax", "rounds", rows=1, cols=length, valid=length) == 41
    assert _cost(t, "gelu", "comm_bytes", n=128 * 4096) == pytest.approx(472 * 2**20, rel=1e-6)
    assert _cost(t, "gelu", "rounds", n=1) == 19

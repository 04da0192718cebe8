"""The estimate: hand-computed rows and totals, sums, group-bys, uncosted ops, monotonicity in T,
and the symbolic totals used by sweeps."""

from __future__ import annotations

from pathlib import Path

import pytest
import sympy

import picost
from picost.errors import UserError
from picost.analysis.estimate import ROW_CLASSES, cost_expressions, estimate, total_expressions
from picost.cost.formula import lambdify_numpy
from picost.cost.network import Network
from picost.cost.protocol_table import load_protocol, shipped_protocol_names
from picost.model.load import shipped_spec_names
from picost.model.spec import ModelSpec

FIXTURES = Path(__file__).parent / "data" / "protocols"
FX = FIXTURES / "fixture2pc.yaml"
PARTIAL = FIXTURES / "fixture_partial.yaml"
NET = Network("test", bandwidth_bps=8e6, rtt_s=0.002)  # 1e6 bytes/s, 1 ms per round

MICRO = ModelSpec(name="micro", n_layers=1, d_model=4, n_heads=1, d_ff=8, vocab_size=10, context_length=2,
                  activation="relu", norm={"kind": "none"}, positional="none", head="last", argmax=False)

# Worked by hand from tests/data/protocols/fixture2pc.yaml at T = 2 (d=4, d_ff=8, V=10, 1 head):
# (row, bytes, rounds, offline bytes or None)
MICRO_ROWS = [
    ("embed.tok", 2 * 10, 1, None),                           # tokens * vocab
    ("L0.attn.qkv", (2 * 4 + 4 * 12) * 8, 2, 2 * 12),         # (m k + k n) ell/8, offline m n
    ("L0.attn.qkv.trunc", 2 * 24, 1, None),                   # 2 n, n = 2 x 12 outputs
    ("L0.attn.qk", 2 * (2 * 4 + 4 * 2) * 8, 1, None),         # includes truncation
    ("L0.attn.scale", 0, 0, None),
    ("L0.attn.scale.trunc", 2 * 4, 1, None),
    ("L0.attn.softmax", 200 * 2 * 2, 3 * 1 + 4, None),        # 3 ceil(log2 2) + 4
    ("L0.attn.av", 2 * (2 * 2 + 2 * 4) * 8, 1, None),
    ("L0.attn.out", (2 * 4 + 4 * 4) * 8, 2, 8),
    ("L0.attn.out.trunc", 2 * 8, 1, None),
    ("L0.attn.residual", 0, 0, None),
    ("L0.ffn.up", (2 * 4 + 4 * 8) * 8, 2, 16),
    ("L0.ffn.up.trunc", 2 * 16, 1, None),
    ("L0.ffn.act", 50 * 16, 5, None),
    ("L0.ffn.down", (2 * 8 + 8 * 4) * 8, 2, 8),
    ("L0.ffn.down.trunc", 2 * 8, 1, None),
    ("L0.ffn.residual", 0, 0, None),
    ("head.proj", (1 * 4 + 4 * 10) * 8, 2, 10),
    ("head.proj.trunc", 2 * 10, 1, None),
]


def test_hand_computed_rows_and_totals():
    est = estimate(MICRO, FX, NET)
    assert [(r.name, r.comm_bytes, r.rounds, r.offline_bytes) for r in est.rows] == MICRO_ROWS
    assert est.totals.comm_bytes == 3904 and est.totals.rounds == 31 and est.totals.offline_bytes == 66
    # 3904 bytes at 1e6 B/s + 31 rounds x 1 ms
    assert est.totals.latency_s == pytest.approx(3904 / 1e6 + 31 * 1e-3, rel=1e-12)
    assert est.bytes_bound_s == pytest.approx(3904 / 1e6, rel=1e-12)
    qkv = est.rows[1]
    assert (qkv.bytes_client_to_server, qkv.bytes_server_to_client) == (2 * 4 * 8, 4 * 12 * 8)
    assert qkv.latency_s == pytest.approx(448 / 1e6 + 2e-3, rel=1e-12)
    assert est.totals.bytes_client_to_server is None  # not every row knows its directions
    assert est.rows[2].op_class == "truncation" and est.rows[2].flops == 0 and qkv.flops == 2 * 2 * 4 * 12


def test_compute_time_is_added_where_the_table_gives_it():
    est = estimate(MICRO.model_copy(update={"activation": "gelu"}), FX, NET)
    act = next(r for r in est.rows if r.name == "L0.ffn.act")
    assert act.compute_s == pytest.approx(16 * 1e-6)
    assert act.latency_s == pytest.approx(16e-6 + 100 * 16 / 1e6 + 10 * 1e-3, rel=1e-12)
    assert est.totals.compute_rows == 1


@pytest.mark.parametrize("spec", ["tiny", "gpt2", "llama3-8b", "pythia-70m"])
def test_totals_are_the_sums_of_rows_and_groups(spec):
    est = estimate(spec, FX, "wan", context=32)
    rows = est.rows
    for field in ("comm_bytes", "rounds", "latency_s", "comm_s", "flops", "offline_bytes"):
        assert getattr(est.totals, field) == sum(getattr(r, field) or 0 for r in rows)
        for key in ("layer", "block", "class"):
            groups = est.by(key)
            assert sum(getattr(t, field) for t in groups.values()) == pytest.approx(getattr(est.totals, field),
                                                                                    rel=1e-12)
    assert set(est.by("class")) <= set(ROW_CLASSES)
    assert sum(est.share(r.latency_s) for r in rows) == pytest.approx(1.0)
    assert est.totals.flops == picost.count_flops(picost.load_spec(spec), 32).total


def test_uncosted_op_is_an_error_naming_op_and_table():
    with pytest.raises(UserError) as err:
        estimate("tiny", PARTIAL, "lan")
    msg = str(err.value)
    assert "fixture_partial" in msg and "L0.attn.qk.trunc" in msg and "no 'truncation' entry" in msg
    assert "--allow-uncosted" in msg and err.value.file.endswith("fixture_partial.yaml")
    micro = MICRO.model_copy(update={"activation": "gelu_tanh"})
    table = load_protocol(PARTIAL)
    act = next(op for op in picost.lower(micro).ops if op.name == "L0.ffn.act")
    with pytest.raises(UserError, match=r"cannot cost op L0.ffn.act \(kind gelu_tanh\): the table has no entry"):
        table.cost(act)


def test_allow_uncosted_makes_explicit_rows_never_zeros():
    est = estimate("tiny", PARTIAL, "lan", allow_uncosted=True)
    uncosted = [r for r in est.rows if not r.costed]
    assert {"L0.ffn.act", "L1.ffn.act", "head.argmax", "L0.attn.qk.trunc"} <= {r.name for r in uncosted}
    assert all(r.comm_bytes is None and r.latency_s is None and r.uncosted_reason for r in uncosted)
    assert est.totals.uncosted == len(uncosted) and est.totals.costed == len(est.rows) - len(uncosted)
    by_class = est.by("class")
    assert by_class["activation"].costed == 0 and by_class["activation"].comm_bytes is None  # not a zero
    assert by_class["activation"].latency_s is None and by_class["truncation"].rounds is None
    assert by_class["head"].uncosted == 1 and by_class["head"].comm_bytes == 1 * 256  # head.proj: m n
    frame = est.to_frame()
    assert list(frame.loc[~frame.costed, "name"]) == [r.name for r in uncosted]
    assert frame.loc[~frame.costed, "comm_bytes"].isna().all()


def test_python_api_accepts_objects_and_names():
    table = load_protocol(FX)
    a = picost.estimate("tiny", protocol=table, network=NET, context=8)
    b = picost.estimate(picost.load_spec("tiny"), protocol=str(FX), network="wan", context=8,
                        bandwidth="8Mbps", rtt="2ms")
    assert a.totals.latency_s == pytest.approx(b.totals.latency_s, rel=1e-12)
    assert a.context == 8 and len(a.to_frame()) == len(a.rows)


def _pairs():
    for table in shipped_protocol_names():
        for spec in shipped_spec_names():
            yield spec, table


@pytest.mark.parametrize("spec, table", list(_pairs()))
def test_shipped_estimates_strictly_increase_with_T(spec, table):
    """Over the rows the table can cost (the same rows at every T), latency strictly grows with T."""
    totals = [estimate(spec, table, "wan", context=T, allow_uncosted=True).totals for T in (8, 9, 64, 256)]
    if not totals[0].costed or all(not t.latency_s for t in totals):
        pytest.skip(f"{table} costs nothing of {spec} that takes time")
    assert len({(t.costed, t.uncosted) for t in totals}) == 1
    latency = [t.latency_s for t in totals]
    assert all(b > a for a, b in zip(latency, latency[1:])), f"latency does not grow with T: {latency}"
    comm = [t.comm_bytes for t in totals]
    assert all(b >= a for a, b in zip(comm, comm[1:])), f"bytes shrink as T grows: {comm}"


@pytest.mark.parametrize("spec", ["tiny", "gpt2"])
def test_fixture_estimate_strictly_increases_with_T(spec):
    lat = [estimate(spec, FX, "wan", context=T).totals.latency_s for T in (1, 2, 3, 16, 128)]
    assert all(b > a for a, b in zip(lat, lat[1:]))


def test_symbolic_totals_match_numeric_estimates():
    T = sympy.Symbol("T", positive=True, integer=True)
    totals = total_expressions("tiny", FX, "wan", T)
    latency = lambdify_numpy(totals["latency_s"], [T])
    import numpy as np

    ts = np.array([1, 5, 16, 100])
    numeric = [estimate("tiny", FX, "wan", context=int(t)).totals for t in ts]
    assert np.allclose(latency(ts), [n.latency_s for n in numeric], rtol=1e-12)
    assert [int(totals["comm_bytes"].subs(T, int(t))) for t in ts] == [n.comm_bytes for n in numeric]
    assert [int(totals["rounds"].subs(T, int(t))) for t in ts] == [n.rounds for n in numeric]


@pytest.mark.parametrize("table", [FX, PARTIAL])
def test_symbolic_rows_are_the_estimate_rows(table):
    from picost.model.lower import lower

    T = sympy.Symbol("T", positive=True, integer=True)
    rows = cost_expressions(lower(picost.load_spec("tiny"), T).ops, table, allow_uncosted=True)
    numeric = estimate("tiny", table, "wan", context=7, allow_uncosted=True).rows
    assert [(r.name, r.op_class, r.exprs is not None) for r in rows] == [(n.name, n.op_class, n.costed) for n in numeric]
    assert any(r.op_class == "truncation" for r in rows)
    for r, n in zip(rows, numeric):
        if n.costed:
            at_7 = [sympy.sympify(r.exprs[f]).subs(T, 7) for f in ("comm_bytes", "rounds")]
            assert at_7 == [n.comm_bytes, n.rounds], r.name


def test_symbolic_totals_refuse_uncosted_ops():
    with pytest.raises(UserError, match="cannot cost"):
        total_expressions("tiny", PARTIAL, "wan", sympy.Symbol("T", positive=True))


def test_import_picost_stays_light():
    import subprocess
    import sys

    code = "import picost, sys; print(sorted(m for m in ('sympy', 'pandas', 'torch', 'numpy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent)
    assert out.stdout.strip() == "[]"

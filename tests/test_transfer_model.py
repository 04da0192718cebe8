"""``setting.transfer: parallel``: an op's bytes spread over the parties' incoming links at once,
so the transfer term divides by the party count, the same in every path (estimate, symbolic
totals, sweeps, closed forms, generation)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sympy

from picost.analysis.closed_forms import class_forms
from picost.analysis.estimate import estimate_lowered, total_expressions
from picost.analysis.generation import generation
from picost.analysis.sweep import sweep
from picost.cost.network import get_network
from picost.cost.protocol_table import load_protocol
from picost.errors import UserError
from picost.model.load import load_spec
from picost.model.lower import lower

FIXTURE = Path(__file__).parent / "data" / "protocols" / "fixture2pc.yaml"


def _tables(tmp_path: Path):
    text = FIXTURE.read_text()
    assert "  parties: 2\n" in text
    parallel = tmp_path / "fixture2pc.yaml"
    parallel.write_text(text.replace("  parties: 2\n", "  parties: 2\n  transfer: parallel\n", 1))
    return load_protocol(FIXTURE), load_protocol(parallel)


def test_parallel_transfer_halves_each_rows_transfer_for_two_parties(tmp_path):
    serial, parallel = _tables(tmp_path)
    assert (serial.setting.transfer_links, parallel.setting.transfer_links) == (1, 2)
    net = get_network("wan")
    a = estimate_lowered(lower(load_spec("gpt2"), 128), serial, net)
    b = estimate_lowered(lower(load_spec("gpt2"), 128), parallel, net)
    assert b.totals.comm_bytes == a.totals.comm_bytes and b.totals.rounds == a.totals.rounds
    for x, y in zip(a.rows, b.rows):
        assert y.comm_s == pytest.approx(y.comm_bytes * 8 / (2 * net.bandwidth_bps))
        assert y.latency_s == pytest.approx(x.latency_s - x.comm_s / 2)
    assert b.bytes_bound_s == pytest.approx(a.bytes_bound_s / 2)


def test_every_path_uses_the_same_transfer(tmp_path):
    _, parallel = _tables(tmp_path)
    spec, net = load_spec("gpt2"), get_network("wan")
    points = {T: estimate_lowered(lower(spec, T), parallel, net).totals.latency_s for T in (16, 128)}
    T = sympy.Symbol("T", positive=True, integer=True)
    symbolic = total_expressions(spec, parallel, net, T)["latency_s"]
    forms = class_forms(spec, parallel)
    swept = sweep(spec, list(points), [parallel], [net])
    for i, (context, expected) in enumerate(points.items()):
        assert float(symbolic.subs(T, context)) == pytest.approx(expected, rel=1e-9)
        assert float(forms.latency(net).subs(forms.T, context)) == pytest.approx(expected, rel=1e-9)
        assert swept.total["latency_s"][i] == pytest.approx(expected, rel=1e-9)


def test_decode_steps_use_the_same_transfer(tmp_path):
    serial, parallel = _tables(tmp_path)
    spec, net = load_spec("gpt2"), get_network("wan")
    a = generation(spec, serial, net, context=16, new_tokens=3).steps
    b = generation(spec, parallel, net, context=16, new_tokens=3).steps
    for i in (1, 2, 3):
        x, y = a.step(i), b.step(i)
        assert y["comm_bytes"] == x["comm_bytes"] > 0
        assert y["latency_s"] == pytest.approx(x["latency_s"] - x["comm_bytes"] * 8 / net.bandwidth_bps / 2)


def test_unknown_transfer_is_a_located_error(tmp_path):
    bad = tmp_path / "fixture2pc.yaml"
    bad.write_text(FIXTURE.read_text().replace("  parties: 2\n", "  parties: 2\n  transfer: both\n", 1))
    with pytest.raises(UserError) as err:
        load_protocol(bad)
    assert err.value.field == "setting.transfer" and "serial, parallel" in err.value.message


def test_a_hybrid_is_parallel_only_if_every_table_is():
    from picost.cost.hybrid import load_costing

    assert load_costing("linear=spu-aby3,nonlinear=puma").setting.transfer == "parallel"
    mixed = load_costing("linear=spu-semi2k,nonlinear=sigma")
    assert (load_protocol("sigma").setting.transfer, mixed.setting.transfer) == ("serial", "serial")

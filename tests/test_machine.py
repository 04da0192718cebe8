"""The machine model (picost/cost/machine.py): compute scaled from the tables' reference machine to
the user's (cores per party, placement, per-core speed), --compute none, machine profiles, and the
extrapolation flags of rows whose compute is evaluated beyond the sizes it was measured at."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from picost.analysis.estimate import estimate
from picost.cost.machine import (NO_SCALING, REFERENCE, Machine, Scaling, get_machine, load_machine_file,
                                 table_scalings)
from picost.cost.protocol_table import load_protocol
from picost.errors import UserError
from tests.conftest import run_cli

FIXTURE = Path(__file__).parent / "data" / "protocols" / "fixture2pc.yaml"
GELU_S, GELU_C = 0.2, 0.4


def _table(tmp_path: Path, gelu_extra: str = f", compute_scaling: {{serial: {GELU_S}, concurrent: {GELU_C}}}",
           ln_extra: str = "") -> Path:
    """fixture2pc with measured compute for gelu_tanh (its scaling and range) and for layernorm (none)."""
    text = FIXTURE.read_text().replace("name: fixture2pc", "name: fxmachine")
    gelu = '  gelu_tanh: {comm_bytes: "100*n", rounds: 10, source: "fx §5"}'  # tiny's activation
    assert gelu in text
    text = text.replace(gelu, '  gelu_tanh: {comm_bytes: "100*n", rounds: 10, compute_s: "n * 1e-6", source: "fx §5", '
                              f'compute_range: {{size: n, max: 1000}}{gelu_extra}}}')
    ln = '  layernorm: {comm_bytes: "300*rows*cols", rounds: 20, source: "fx §7"}'
    text = text.replace(ln, '  layernorm: {comm_bytes: "300*rows*cols", rounds: 20, source: "fx §7", '
                            f'compute_s: "0.001 + rows*cols*1e-7"{ln_extra}}}')
    path = tmp_path / "fxmachine.yaml"
    path.write_text(text)
    return path


# -- the model itself ---------------------------------------------------------------------------

fractions = st.floats(0, 1, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(fractions, fractions, st.integers(2, 3))
def test_the_reference_machine_changes_nothing(s, c, parties):
    assert REFERENCE.factor(Scaling(s, c), parties) == pytest.approx(1.0, rel=1e-12)


@settings(max_examples=200, deadline=None)
@given(fractions, fractions)
def test_the_three_measured_placements_are_reproduced(s, c):
    """With P = 2, relative to each party on its own core (X): all parties on one core (Z) take
    1 + c, unpinned on the 2-core reference (Y) c + (1 - c)(s + (1 - s)/2): the formulas the
    scaling runs are solved with (benchmarks/spu_fit.py)."""
    scaling = Scaling(s, c)
    x = Machine("x", "", 1, False, 1.0, "t")
    z = Machine("z", "", 1, True, 1.0, "t")
    y_over_x = c + (1 - c) * (s + (1 - s) / 2)
    assert x.unit(scaling, 2) == pytest.approx(1.0)
    assert z.unit(scaling, 2) == pytest.approx(1 + c)
    assert REFERENCE.unit(scaling, 2) == pytest.approx(y_over_x)
    assert x.factor(scaling, 2) == pytest.approx(1 / y_over_x)


@settings(max_examples=200, deadline=None)
@given(fractions, fractions, st.floats(1, 10))
def test_an_oversubscribed_reference_is_reproduced_and_spares_the_other_placements(s, c, rho):
    """CrypTen's parties unpinned on the 2-core reference run 2 threads each: Y measured rho times
    the model's. The reference still maps to itself, X and Z keep their model values, so each
    party on its own core is t_X = t_Y / (model Y * rho)."""
    plain, crowded = Scaling(s, c), Scaling(s, c, oversubscribed=rho)
    x = Machine("x", "", 1, False, 1.0, "t")
    z = Machine("z", "", 1, True, 1.0, "t")
    y_over_x = c + (1 - c) * (s + (1 - s) / 2)
    assert REFERENCE.factor(crowded, 2) == pytest.approx(1.0, rel=1e-12)
    assert REFERENCE.unit(crowded, 2) == pytest.approx(y_over_x * rho)
    assert x.unit(crowded, 2) == pytest.approx(1.0) and z.unit(crowded, 2) == pytest.approx(1 + c)
    assert x.factor(crowded, 2) == pytest.approx(1 / (y_over_x * rho))
    own_32 = Machine("own", "", 32, False, 1.0, "t")  # own machines: no crowding
    assert own_32.factor(crowded, 2) == pytest.approx(own_32.factor(plain, 2) / rho)


def test_crypten_tables_carry_the_measured_oversubscription():
    """benchmarks/crypten_compute.py's X/Y/Z runs: softmax unpinned (Y) was about 3x each party
    on its own core (X); the table says so, and one core per party gets X's time back."""
    from picost.cost.machine import get_machine

    table = load_protocol("crypten")
    softmax = table.entries["softmax"].compute_scaling
    assert softmax.oversubscribed > 2
    factor = get_machine("one-core-per-party").factor(softmax, 2)
    assert factor == pytest.approx(1 / (softmax.oversubscribed * (softmax.concurrent + (1 - softmax.concurrent)
                                                                  * (softmax.serial + (1 - softmax.serial) / 2))))
    assert factor < 0.5


def test_cores_speed_and_placement_by_hand():
    scaling = Scaling(0.25, 0.5)
    ref = 0.5 + 0.5 * (0.25 + 0.75 / 2)  # c*1 + (1-c)*(s + (1-s)/2) = 0.8125
    own32 = Machine("m", "", 32, False, 1.0, "t")
    assert own32.factor(scaling, 2) == pytest.approx((0.25 + 0.75 / 32) / ref)
    fast = Machine("m", "", 32, False, 2.0, "t")
    assert fast.factor(scaling, 2) == pytest.approx(own32.factor(scaling, 2) / 2)
    shared32 = Machine("m", "", 32, True, 1.0, "t")  # the concurrent half shares 32 cores between 2 parties
    assert shared32.factor(scaling, 2) == pytest.approx((0.5 * (0.25 + 0.75 * 2 / 32) + 0.5 * (0.25 + 0.75 / 32)) / ref)
    assert own32.factor(NO_SCALING, 2) == pytest.approx(1.0)  # nothing measured: cores do not help
    assert Machine("m", "", 4, False, None, "t").speed == 1.0


@settings(max_examples=100, deadline=None)
@given(fractions, fractions, st.integers(1, 64), st.integers(1, 64))
def test_more_cores_never_slow_an_op_down(s, c, n1, n2):
    lo, hi = sorted((n1, n2))
    for share in (False, True):
        assert (Machine("a", "", hi, share, 1.0, "t").unit(Scaling(s, c), 2)
                <= Machine("a", "", lo, share, 1.0, "t").unit(Scaling(s, c), 2) + 1e-12)


def test_table_fallback_is_the_median_of_measured_entries(tmp_path):
    table = load_protocol(_table(tmp_path))
    assert table.entries["gelu_tanh"].compute_scaling == Scaling(GELU_S, GELU_C)
    fallback, note = table_scalings(table.entries)
    assert (fallback.serial, fallback.concurrent, fallback.basis) == (GELU_S, GELU_C, "derived") and "median" in note
    assert table.scaling_of(table.entries["layernorm"]) == fallback
    bare = load_protocol(_table(tmp_path, gelu_extra=""))
    assert table_scalings(bare.entries)[0] == NO_SCALING


# -- the estimate on a machine --------------------------------------------------------------------

def test_estimate_scales_each_row_by_its_entry(tmp_path):
    path = _table(tmp_path)
    base = estimate("tiny", path, "lan", 8)
    machine = Machine("big", "", 16, False, 1.5, "test")
    est = estimate("tiny", path, "lan", 8, machine=machine)
    factor = machine.factor(Scaling(GELU_S, GELU_C), 2)
    pairs = list(zip(base.rows, est.rows))
    gelu = [(a, b) for a, b in pairs if a.kind == "gelu_tanh"]
    assert gelu and all(b.compute_s == pytest.approx(a.compute_s * factor) for a, b in gelu)
    ln = [(a, b) for a, b in pairs if a.kind == "layernorm"]
    assert ln and all(b.compute_s == pytest.approx(a.compute_s * factor) for a, b in ln)  # fallback = gelu's
    for a, b in pairs:  # bytes and rounds never change with the machine
        assert (a.comm_bytes, a.rounds) == (b.comm_bytes, b.rounds)
        if b.costed:
            assert b.latency_s == pytest.approx((b.compute_s or 0) + b.comm_s
                                                + b.rounds * est.network.round_s * est.protocol.setting.delays_per_round)
    assert est.machine is machine and base.machine is REFERENCE
    assert est.totals.compute_s == pytest.approx(base.totals.compute_s * factor)


def test_threads_alone_means_one_machine_per_party():
    m = get_machine(threads=8)
    assert (m.threads_per_party, m.parties_share_host, m.speed) == (8, False, 1.0)
    preset = get_machine("one-core-per-party", threads=4)
    assert preset.threads_per_party == 4 and not preset.parties_share_host and "one-core-per-party" in preset.name


def test_compute_none_leaves_compute_out(tmp_path):
    path = _table(tmp_path)
    base = estimate("tiny", path, "lan", 8)
    est = estimate("tiny", path, "lan", 8, compute="none")
    assert all(r.compute_s is None for r in est.rows)
    assert est.totals.latency_s == pytest.approx(base.totals.latency_s - base.totals.compute_s)
    with pytest.raises(UserError, match="takes no --machine"):
        get_machine("one-core-per-party", compute="none")
    with pytest.raises(UserError, match="--compute"):
        get_machine(compute="fast")


def test_sweeps_and_closed_forms_scale_like_the_estimate(tmp_path):
    from picost.analysis.sweep import sweep
    from picost.analysis.estimate import with_machine
    from picost.cost.hybrid import load_costing
    from picost.cost.network import get_network
    from picost.model.load import load_spec

    path = _table(tmp_path)
    table = with_machine(load_costing(str(path)), threads=8)
    spec = load_spec("tiny")
    result = sweep(spec, [8, 16, 32], [table], [get_network("lan")])
    assert list(result.context) == [8, 16, 32]
    for i, t in enumerate([8, 16, 32]):
        est = estimate(spec, table, "lan", t)
        assert result.total["latency_s"][i] == pytest.approx(est.totals.latency_s, rel=1e-9)
        assert result.total["compute_s"][i] == pytest.approx(est.totals.compute_s, rel=1e-9)
    reference = sweep(spec, [8, 16, 32], [load_costing(str(path))], [get_network("lan")])
    assert (result.total["compute_s"] < reference.total["compute_s"]).all()


def test_a_hybrid_scales_every_part(tmp_path):
    est_ref = estimate("gpt2", "linear=bumblebee,nonlinear=spu-semi2k", "lan", 32)
    est = estimate("gpt2", "linear=bumblebee,nonlinear=spu-semi2k", "lan", 32, machine=Machine("s", "", 2, True, 2.0, "t"))
    assert est.totals.compute_s == pytest.approx(est_ref.totals.compute_s / 2)


# -- extrapolation flags --------------------------------------------------------------------------

def test_rows_beyond_the_measured_range_say_how_far(tmp_path):
    path = _table(tmp_path)
    est = estimate("tiny", path, "lan", 8)
    gelu = [r for r in est.rows if r.kind == "gelu_tanh"]
    n = gelu[0].dims["n"]
    assert gelu[0].compute_beyond == pytest.approx(max(1.0, n / 1000))
    assert all(r.compute_beyond is None for r in est.rows if r.kind == "layernorm")  # no range stated
    if n > 1000:
        assert [r.name for r in est.extrapolated_rows] == [r.name for r in gelu]
        assert est.extrapolated_share == pytest.approx(sum(r.latency_s for r in gelu) / est.totals.latency_s)


def test_extrapolation_is_shown_in_json_table_and_summary(tmp_path):
    path = _table(tmp_path)
    res = run_cli("estimate", "tiny", "-p", str(path), "-n", "lan", "-T", "64", "-f", "json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    gelu = [r for r in data["rows"] if r["kind"] == "gelu_tanh"]
    assert gelu and all(r["compute_beyond"] == pytest.approx(r["dims"]["n"] / 1000) for r in gelu)
    assert data["totals"]["extrapolated_rows"] == len(gelu)
    assert 0 < data["totals"]["extrapolated_share"] < 1
    text = run_cli("estimate", "tiny", "-p", str(path), "-n", "lan", "-T", "64", "--by", "class")
    assert text.returncode == 0, text.stderr
    assert "compute extrapolated beyond the measured sizes in" in text.stdout
    activation_line = next(line for line in text.stdout.splitlines() if "activation" in line)
    assert "*" in activation_line
    assert "compute is for machine reference" in text.stdout


# -- CLI and bad input ----------------------------------------------------------------------------

@pytest.mark.parametrize("command", [
    ["estimate", "tiny", "-p", "{t}", "-n", "lan", "-T", "16", "-f", "json"],
    ["sweep", "tiny", "-p", "{t}", "-n", "lan", "-T", "16,32", "-f", "json"],
    ["compare", "tiny", "tiny-relu", "-p", "{t}", "-n", "lan", "-T", "16", "-f", "json"],
])
def test_every_costing_command_takes_the_machine(tmp_path, command):
    path = str(_table(tmp_path))
    argv = [a.format(t=path) for a in command]
    slow = run_cli(*argv)
    fast = run_cli(*argv, "--threads", "8", "--machine", "one-core-per-party")
    none = run_cli(*argv, "--compute", "none")
    assert slow.returncode == fast.returncode == none.returncode == 0, (slow.stderr, fast.stderr, none.stderr)
    assert slow.stdout != fast.stdout and slow.stdout != none.stdout


def test_symbolic_and_aero_take_the_machine(tmp_path):
    path = str(_table(tmp_path))
    for argv in (["symbolic", "tiny", "-p", path, "-n", "lan", "-f", "json"],
                 ["aero", "tiny", "-p", path, "-n", "lan", "-f", "json"]):
        a = run_cli(*argv)
        b = run_cli(*argv, "--threads", "32")
        assert a.returncode == b.returncode == 0, (a.stderr, b.stderr)
        assert a.stdout != b.stdout


GOOD_PROFILE = """schema: picost.machine/1
name: lab-box
description: two 16-core machines
threads_per_party: 16
parties_share_host: false
per_core_speed: 0.8
source: "measured: picost calibrate on lab-box"
"""


def test_a_profile_file_is_read_and_named(tmp_path):
    f = tmp_path / "m.yaml"
    f.write_text(GOOD_PROFILE)
    m = load_machine_file(f)
    assert (m.name, m.threads_per_party, m.per_core_speed, m.parties_share_host) == ("lab-box", 16, 0.8, False)
    res = run_cli("estimate", "gpt2", "-p", "spu-semi2k", "-n", "lan", "-T", "16", "--machine", str(f), "-f", "json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["machine"]["name"] == "lab-box"


@pytest.mark.parametrize("change, field", [
    (("threads_per_party: 16", "threads_per_party: 0"), "threads_per_party"),
    (("threads_per_party: 16", "threads_per_party: sixteen"), "threads_per_party"),
    (("per_core_speed: 0.8", "per_core_speed: -1"), "per_core_speed"),
    (("per_core_speed: 0.8", "per_core_speed: yes"), "per_core_speed"),
    (("parties_share_host: false", "parties_share_host: 3"), "parties_share_host"),
    (("description: two", "descripton: two"), "descripton"),
    (("schema: picost.machine/1", "schema: picost.machine/9"), "schema"),
    (('source: "measured: picost calibrate on lab-box"', ""), None),
])
def test_a_bad_profile_is_one_located_message_and_exit_2(tmp_path, change, field):
    f = tmp_path / "m.yaml"
    f.write_text(GOOD_PROFILE.replace(*change))
    res = run_cli("estimate", "tiny", "-p", "crypten", "--machine", str(f))
    assert res.returncode == 2
    assert "Traceback" not in res.stderr and str(f) in res.stderr
    if field:
        assert f"field '{field}'" in res.stderr
    else:
        assert "missing 'source'" in res.stderr


def test_unknown_machine_threads_and_compute_exit_2():
    for extra, needle in ((["--machine", "cray"], "unknown machine 'cray'"), (["--threads", "0"], "--threads"),
                          (["--compute", "fast"], "--compute")):
        res = run_cli("estimate", "tiny", "-p", "crypten", *extra)
        assert res.returncode == 2 and needle in res.stderr and "Traceback" not in res.stderr


@pytest.mark.parametrize("extra, message", [
    (", compute_scaling: {serial: 1.5, concurrent: 0}", "compute_scaling.serial must be a fraction"),
    (", compute_scaling: {serial: 0.5}", "missing required key 'concurrent'"),
    (", compute_range: {size: rows*cols, max: 0}", "compute_range.max must be a positive number"),
    (", compute_scaling: {serial: 1, concurrent: 0.5, oversubscribed: 0.5}", "oversubscribed must be a number from 1"),
    (", compute_scaling: {serial: 1, concurrent: 0.5, oversubscribed: yes}", "oversubscribed must be a number from 1"),
    (", compute_scaling: {serial: 1, concurrent: 0.5, crowded: 2}", "unknown key 'crowded'"),
    (", compute_range: {size: rows*cols*zz, max: 10}", "zz"),
])
def test_bad_scaling_or_range_in_a_table_is_located(tmp_path, extra, message):
    path = _table(tmp_path, ln_extra=extra)
    with pytest.raises(UserError) as exc:
        load_protocol(path)
    assert message in exc.value.message and exc.value.line is not None


def test_machines_command_lists_the_presets():
    res = run_cli("machines")
    assert res.returncode == 0, res.stderr
    for name in ("reference", "one-core-per-party"):
        assert name in res.stdout


# -- picost calibrate --engine: the fit, without the engines --------------------------------------

@pytest.mark.parametrize("engine", ["spu", "crypten"])
def test_calibration_recovers_the_speed_of_a_machine_the_tables_describe(engine, tmp_path, monkeypatch):
    """A host timing every op at its table's compute / 2 on the reference's 2 cores is a machine
    twice as fast per core; the profile it writes round-trips and halves estimated compute."""
    import os

    from picost.netlab import calibrate_machine as cm

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    table = load_protocol("spu-semi2k" if engine == "spu" else "crypten")
    cases = ([(k, c["dims"]) for k, c in cm.SPU_CASES] if engine == "spu"
             else [(k, d) for k, _, d in cm.CRYPTEN_CASES])

    def runner(name, repeats):
        assert name == engine and repeats == 2
        return [(k, d, table.values(table.entries[k], d, k)["compute_s"] / 2) for k, d in cases]

    machine = cm.calibrate_machine(engine, 2, runner=runner)
    assert machine.per_core_speed == pytest.approx(2.0) and machine.threads_per_party == 2
    assert machine.parties_share_host and machine.source.startswith("measured: picost calibrate --engine")
    f = tmp_path / "me.yaml"
    f.write_text(machine.to_yaml())
    loaded = load_machine_file(f)
    assert (loaded.per_core_speed, loaded.threads_per_party, loaded.parties_share_host) == (2.0, 2, True)
    base = estimate("gpt2", table.name, "lan", 32)
    fast = estimate("gpt2", table.name, "lan", 32, machine=str(f))
    assert fast.totals.compute_s == pytest.approx(base.totals.compute_s / 2)


def test_calibration_refuses_an_unknown_engine_and_kinds(tmp_path):
    from picost.netlab.calibrate_machine import calibrate_machine

    with pytest.raises(UserError, match="unknown engine"):
        calibrate_machine("aby3", runner=lambda e, r: [])
    res = run_cli("calibrate", "--engine", "spu", "--kinds", "relu", "-o", str(tmp_path / "x.yaml"))
    assert res.returncode == 2 and "--kinds" in res.stderr


@pytest.mark.parametrize("by", ["class", "op"])
def test_the_80_column_default_shows_compute_and_names_the_machine(by):
    import os
    import subprocess
    import sys

    env = {**os.environ, "COLUMNS": "80", "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    res = subprocess.run([sys.executable, "-m", "picost", "estimate", "gpt2", "-p", "bumblebee", "-n", "wan", "-T",
                          "128", "--by", by], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    header = next(line for line in res.stdout.splitlines() if "latency" in line and "┃" in line)
    assert "compute" in header
    assert max(len(line) for line in res.stdout.splitlines()) <= 80
    assert "compute is for machine reference" in " ".join(res.stdout.split())

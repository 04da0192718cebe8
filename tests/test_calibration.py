"""Calibration profiles: loading with located errors, and the compute term they give the estimate."""

from __future__ import annotations

import json

import pytest

from picost.cost.calibration import KindTime, apply_calibration, load_profile
from picost.errors import UserError
from picost.analysis.estimate import estimate
from picost.mpc.measure_compute import fit_kind_time
from picost.cost.network import Network
from picost.cost.protocol_table import load_protocol
from tests.conftest import run_cli

PROFILE = """\
schema: picost.calibration/1
protocol: picost-2pc
measured: test fixture, not a measurement
kinds:
  relu: {fixed_s: 0.002, per_element_s: 1.0e-6}
  truncation: {fixed_s: 0.001, per_element_s: 0.0}
"""


def write(tmp_path, text, name="profile.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_profile_round_trips_through_yaml(tmp_path):
    profile = load_profile(write(tmp_path, PROFILE))
    assert profile.kinds["relu"] == KindTime(0.002, 1e-6)
    again = load_profile(write(tmp_path, profile.to_yaml(), "again.yaml"))
    assert again == profile


@pytest.mark.parametrize("bad, line, field", [
    (PROFILE.replace("relu:", "relux:"), 5, "kinds.relux"),
    (PROFILE.replace("per_element_s: 1.0e-6", "per_element_s: -1"), 5, "kinds.relu.per_element_s"),
    (PROFILE.replace("schema: picost.calibration/1", "schema: other"), 1, "schema"),
    (PROFILE + "extra: 1\n", 7, "extra"),
])
def test_bad_profiles_name_file_line_and_field(tmp_path, bad, line, field):
    path = write(tmp_path, bad)
    with pytest.raises(UserError) as err:
        load_profile(path)
    assert err.value.file == str(path) and err.value.line == line and err.value.field == field


def test_calibrated_compute_enters_the_latency(tmp_path):
    net = Network("t", 1e8, 0.02)
    plain = estimate("tiny-relu", "picost-2pc", net)
    table = apply_calibration(load_protocol("picost-2pc"), load_profile(write(tmp_path, PROFILE)))
    timed = estimate("tiny-relu", table, net)
    relus = [r for r in timed.rows if r.kind == "relu"]
    assert relus and all(r.compute_s == pytest.approx(0.002 + 1e-6 * r.dims["n"]) for r in relus)
    truncs = [r for r in timed.rows if r.kind == "truncation"]
    assert all(r.compute_s == pytest.approx(0.001) for r in truncs)
    expected = sum(r.compute_s for r in relus + truncs)
    assert timed.totals.latency_s - plain.totals.latency_s == pytest.approx(expected)
    assert timed.totals.compute_rows == len(relus) + len(truncs) < timed.totals.costed  # partial: visible


def test_profile_for_another_protocol_is_refused(tmp_path):
    profile = load_profile(write(tmp_path, PROFILE.replace("protocol: picost-2pc", "protocol: crypten")))
    with pytest.raises(UserError, match="for protocol 'crypten'"):
        apply_calibration(load_protocol("picost-2pc"), profile)


def test_a_round_of_picost_2pc_costs_one_one_way_delay():
    """The engine posts an op's receives before its online run (docs/latency-model-check.md)."""
    net = Network("t", 1e12, 0.1)
    est = estimate("tiny", "picost-2pc", net)
    assert est.totals.latency_s == pytest.approx(est.totals.rounds * 0.05 + est.totals.comm_s)


def test_fit_recovers_a_line_and_stays_non_negative():
    fit = fit_kind_time([(100, 0.003), (1000, 0.012), (4000, 0.042)])
    assert fit.fixed_s == pytest.approx(0.002, rel=1e-6) and fit.per_element_s == pytest.approx(1e-5, rel=1e-6)
    falling = fit_kind_time([(100, 0.01), (1000, 0.008)])
    assert falling.per_element_s == 0 and falling.fixed_s > 0


def test_estimate_cli_with_calibration(tmp_path):
    path = write(tmp_path, PROFILE)
    done = run_cli("estimate", "tiny-relu", "-p", "picost-2pc", "--bandwidth", "100Mbps", "--rtt", "20ms",
                   "--calibration", str(path), "-f", "json")
    assert done.returncode == 0, done.stderr
    totals = json.loads(done.stdout)["totals"]
    assert totals["compute_s"] > 0 and totals["compute_rows"] > 0
    bad = run_cli("estimate", "tiny-relu", "-p", "picost-2pc", "-n", "wan", "--calibration", str(tmp_path / "none.yaml"))
    assert bad.returncode == 2 and "none.yaml" in bad.stderr and "Traceback" not in bad.stderr


def test_calibrate_cli_rejects_unknown_kinds_without_running(tmp_path):
    out = tmp_path / "p.yaml"
    done = run_cli("calibrate", "--out", str(out), "--kinds", "relu,frobnicate")
    assert done.returncode == 2 and "frobnicate" in done.stderr and not out.exists()
    missing_dir = run_cli("calibrate", "--out", str(tmp_path / "nodir" / "p.yaml"), "--kinds", "relu")
    assert missing_dir.returncode == 2 and "directory" in missing_dir.stderr

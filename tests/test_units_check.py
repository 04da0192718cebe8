"""Unit parsing and the published-figure consistency check."""

from __future__ import annotations

import pytest

from picost.analysis.published_check import check_published
from picost.errors import UserError
from picost.cost.network import parse_bytes, parse_duration


@pytest.mark.parametrize("text,expected", [
    ("25.3GB", 25.3e9), ("1.5GiB", 1.5 * 2**30), ("800Mb", 1e8), ("512", 512.0), ("2 kB", 2000.0),
    ("1e3MB", 1e9), ("3TB", 3e12), ("4KiB", 4096.0)])
def test_parse_bytes(text, expected):
    assert parse_bytes(text) == pytest.approx(expected)


@pytest.mark.parametrize("text,expected", [
    ("8.2min", 492.0), ("80ms", 0.08), ("3s", 3.0), ("1.5h", 5400.0), ("12", 12.0), ("250us", 250e-6)])
def test_parse_latency(text, expected):  # as `picost check --latency` reads it: no unit means seconds
    assert parse_duration(text, "--latency", default_unit="s") == pytest.approx(expected)


@pytest.mark.parametrize("fn,text", [(parse_bytes, "25.3GX"), (parse_bytes, "-1GB"), (parse_bytes, "GB"),
                                     (parse_bytes, "0GB"), (parse_duration, "8 fortnights")])
def test_bad_units_are_user_errors(fn, text):
    with pytest.raises(UserError):
        fn(text)


def test_check_arithmetic_and_verdicts():
    # 25.3 GB in 8.2 min over 100 Mbps: the bytes alone need 2024 s > 492 s -> impossible
    r = check_published(25.3e9, 492.0, 12.5e6, round_delay_s=0.08)
    assert r.implied_bandwidth_bytes_per_s == pytest.approx(25.3e9 / 492)
    assert r.transfer_floor_s == pytest.approx(2024.0)
    assert r.verdict == "impossible" and r.round_budget == 0
    # 1 GB in 100 s over 1 GB/s: 1 s of transfer, 99 s left = 1237.5 rounds of 80 ms
    r = check_published(1e9, 100.0, 1e9, round_delay_s=0.08)
    assert r.verdict == "consistent" and r.round_budget == pytest.approx(99 / 0.08)
    assert r.transfer_share == pytest.approx(0.01)
    # 1.5 s for 2 GB at 1 GB/s: only balanced full duplex (1 s) makes it
    assert check_published(2e9, 1.5, 1e9).verdict == "needs-duplex"
    # rounds add to the floor: 1 GB/s, 1 GB, 2000 rounds x 80 ms = 161 s floor
    r = check_published(1e9, 100.0, 1e9, round_delay_s=0.08, rounds=2000)
    assert r.latency_floor_s == pytest.approx(161.0) and r.verdict == "impossible"
    with pytest.raises(UserError):
        check_published(0, 1, 1)


def test_check_cli(cli):
    import json

    r = cli("check", "--comm", "25.3GB", "--latency", "8.2min", "--network", "wan", "--format", "json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["verdict"] == "impossible"
    assert data["implied_bandwidth_bps"] == pytest.approx(25.3e9 * 8 / 492)
    assert data["transfer_floor_s"] == pytest.approx(25.3e9 * 8 / 100e6)
    ok = cli("check", "--comm", "25.3GB", "--latency", "8.2min", "--bandwidth", "1Gbps", "--rtt", "1ms")
    assert ok.returncode == 0 and "verdict: consistent" in ok.stdout
    for args in (("--comm", "25.3GQ", "--latency", "1s"), ("--comm", "1GB", "--latency", "soon"),
                 ("--comm", "1GB", "--latency", "1s", "-n", "moon"), ("--comm", "1GB"),
                 ("--comm", "1GB", "--latency", "1s", "--rounds", "-3"), ("--comm", "1GB", "--latency", "0s")):
        bad = cli("check", *args)
        assert bad.returncode == 2 and "Traceback" not in bad.stderr, (args, bad.stderr)

"""Bandwidth and time units, presets, and the network's part of the latency model."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from picost.errors import UserError
from picost.cost.network import Network, get_network, parse_bandwidth, parse_duration, presets


@pytest.mark.parametrize("text, bits_per_s", [
    ("100Mbps", 1e8), ("1Gbps", 1e9), ("3Gbit/s", 3e9), ("400MB/s", 3.2e9), ("377 MBps", 3.016e9),
    ("10kbps", 1e4), ("2.5 Gb/s", 2.5e9), ("1GiB/s", 8 * 2**30), ("1e3Mbps", 1e9), (".5Gbps", 5e8),
])
def test_bandwidth_units(text, bits_per_s):
    assert parse_bandwidth(text) == pytest.approx(bits_per_s, rel=1e-12)


@pytest.mark.parametrize("text, seconds", [
    ("80ms", 0.08), ("0.5ms", 5e-4), ("1s", 1.0), ("250us", 2.5e-4), ("250µs", 2.5e-4), ("0ms", 0.0),
    ("40 ms", 0.04), ("100ns", 1e-7), ("1h", 3600.0), ("8.2min", 492.0), ("2sec", 2.0),
])
def test_time_units(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds, rel=1e-12)


@pytest.mark.parametrize("text, needle", [
    ("100", "no unit"), ("100mbps", "unknown bandwidth unit"), ("fast", "cannot read"), ("-5Mbps", "cannot read"),
    ("0Gbps", "must be positive"), ("100 Mbps extra", "cannot read"), ("1e999Gbps", "not finite"),
])
def test_bad_bandwidth(text, needle):
    with pytest.raises(UserError) as err:
        parse_bandwidth(text)
    assert needle in err.value.message and err.value.field == "--bandwidth"


@pytest.mark.parametrize("text", ["80", "80 msec", "1d", "-1ms", "ms"])
def test_bad_duration(text):
    with pytest.raises(UserError) as err:
        parse_duration(text)
    assert err.value.field == "--rtt"


_PREFIX = {"": 1, "k": 1e3, "M": 1e6, "G": 1e9}


@given(st.floats(min_value=1e-3, max_value=1e6, allow_nan=False), st.sampled_from(sorted(_PREFIX)),
       st.sampled_from(["bps", "bit/s", "Bps", "B/s"]))
def test_bandwidth_parsing_round_trips(value, prefix, suffix):
    text = f"{value!r}{prefix}{suffix}"
    per_unit = _PREFIX[prefix] * (8 if suffix.startswith("B") else 1)
    assert parse_bandwidth(text) == pytest.approx(value * per_unit, rel=1e-12)


def test_presets_have_sources_and_the_briefed_values():
    nets = presets()
    assert (nets["lan"].bandwidth_bps, nets["lan"].rtt_s) == (pytest.approx(3e9), pytest.approx(3e-4))
    assert (nets["wan"].bandwidth_bps, nets["wan"].rtt_s) == (pytest.approx(1e8), pytest.approx(0.08))
    assert (nets["wan400"].bandwidth_bps, nets["wan400"].rtt_s) == (pytest.approx(4e8), pytest.approx(0.04))
    assert all(n.source for n in nets.values())


def test_a_round_costs_half_the_rtt_and_bytes_cost_bits_over_bandwidth():
    net = Network("x", 8e6, 0.002)
    assert net.round_s == pytest.approx(0.001)
    assert net.transfer_s(1_000_000) == pytest.approx(1.0)


def test_overrides_and_custom_networks():
    wan = get_network("wan", rtt="10ms")
    assert wan.bandwidth_bps == pytest.approx(1e8) and wan.rtt_s == pytest.approx(0.01)
    custom = get_network(None, bandwidth="1Gbps", rtt="1ms")
    assert custom.name == "custom" and custom.bandwidth_bps == pytest.approx(1e9)
    with pytest.raises(UserError, match="both --bandwidth and --rtt"):
        get_network(None, bandwidth="1Gbps")
    with pytest.raises(UserError, match="unknown network 'wam'; did you mean wan"):
        get_network("wam")

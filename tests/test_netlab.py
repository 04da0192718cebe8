"""The netlab harness: links have the bandwidth and delay they were given, and nothing is left
behind (also after a failure, a SIGTERM or a crashed run). Needs root and iproute2; skips
otherwise with the reason."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from picost.netlab import lab as lab_module
from picost.netlab.lab import (
    LinkShape, Netlab, NetlabError, cleanup_stale, lab_namespaces, netlab_unavailable_reason,
    run_cmd,
)
from picost.netlab.verify import base_rtt_s, check_link, payload_fraction

UNAVAILABLE = netlab_unavailable_reason()
needs_netlab = pytest.mark.skipif(UNAVAILABLE is not None, reason=f"netlab: {UNAVAILABLE}")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def host_network_state() -> list[str]:
    """Everything of the host's own namespace the harness must not change."""
    return [run_cmd(argv) for argv in (
        ["ip", "-o", "link", "show"], ["ip", "-o", "addr", "show"], ["ip", "route", "show", "table", "all"],
        ["ip", "rule", "show"], ["tc", "qdisc", "show"])]


def namespaces_of(run_id: str) -> list[str]:
    return [name for name in lab_namespaces() if f"-{run_id}-" in name]


def test_unavailable_reason_names_root(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert "root" in netlab_unavailable_reason()


def test_payload_fraction_of_a_1500_byte_mtu():
    assert payload_fraction(1500) == pytest.approx(1448 / 1514)


def test_party_names_are_checked():
    with pytest.raises(ValueError, match="party name"):
        Netlab({"Client-1": LinkShape(None)})


@pytest.fixture(scope="module")
def floor_rtt_s():
    if UNAVAILABLE is not None:
        pytest.skip(f"netlab: {UNAVAILABLE}")
    return base_rtt_s()


@needs_netlab
@pytest.mark.parametrize("client, server", [
    (LinkShape(100e6, 0.005), LinkShape(100e6, 0.005)),
    # different delay and rate per direction: the delay line keys delays by destination
    (LinkShape(20e6, 0.004), LinkShape(50e6, 0.016)),
], ids=["100Mbit-5ms", "asymmetric-20/50Mbit-4/16ms"])
def test_measured_rtt_and_goodput_match_the_configuration(client, server, floor_rtt_s):
    with Netlab({"client": client, "server": server}) as lab:
        check = check_link(lab, "client", "server", floor_rtt_s)
    assert check.rtt_expected_s == pytest.approx(client.one_way_delay_s + server.one_way_delay_s + floor_rtt_s)
    assert check.rtt_ok, check
    assert check.goodput_ok, check
    # the delay line really carried the traffic, on time
    assert lab.delay_line_stats["packets"] > 100
    assert lab.delay_line_stats["write_errors"] == 0


@needs_netlab
def test_close_leaves_no_namespace_qdisc_or_host_change():
    before = host_network_state()
    lab = Netlab.uniform(LinkShape(50e6, 0.002), parties=("client", "server", "dealer"))
    with lab:
        assert len(namespaces_of(lab.run_id)) == 4
        qdiscs = run_cmd(["ip", "netns", "exec", lab.namespace("mid"), "tc", "qdisc", "show"])
        assert qdiscs.count("qdisc tbf") == 3
    assert namespaces_of(lab.run_id) == []
    assert host_network_state() == before


@needs_netlab
def test_failure_inside_the_lab_still_cleans_up():
    lab = Netlab.uniform(LinkShape(50e6, 0.001), parties=("client", "server"))
    with pytest.raises(RuntimeError, match="simulated"):
        with lab:
            assert namespaces_of(lab.run_id)
            raise RuntimeError("simulated failure")
    assert namespaces_of(lab.run_id) == []


@needs_netlab
def test_failure_while_building_cleans_up(monkeypatch):
    monkeypatch.setattr(lab_module, "tbf_args", lambda rate_bps: ["tbf", "rate", "nonsense"])
    lab = Netlab.uniform(LinkShape(50e6, 0.001), parties=("client", "server"))
    with pytest.raises(NetlabError, match="tc"):
        lab.start()
    assert namespaces_of(lab.run_id) == []


def start_lab_in_child() -> tuple[subprocess.Popen, str]:
    """A child process that builds a lab and waits; returns it and its lab's run id."""
    code = ("import time; from picost.netlab.lab import Netlab, LinkShape\n"
            "lab = Netlab.uniform(LinkShape(10e6, 0.001), ('client', 'server')); lab.start()\n"
            "print(lab.run_id, flush=True); time.sleep(60)\n")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                             cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT})
    return child, child.stdout.readline().strip()


@needs_netlab
def test_sigterm_cleans_up():
    child, run_id = start_lab_in_child()
    assert len(namespaces_of(run_id)) == 3
    child.send_signal(signal.SIGTERM)
    child.wait(timeout=20)
    assert namespaces_of(run_id) == []


@needs_netlab
def test_cleanup_stale_removes_a_crashed_run_and_spares_a_live_one():
    with Netlab.uniform(LinkShape(None), parties=("client",)) as live:
        child, crashed_id = start_lab_in_child()  # its own start() must spare our live lab
        child.kill()  # SIGKILL: no handler runs, the namespaces and the delay line stay behind
        child.wait()
        assert len(namespaces_of(crashed_id)) == 3
        removed = cleanup_stale()
        assert sorted(removed) == sorted(f"pcnl-{crashed_id}-{role}" for role in ("mid", "client", "server"))
        assert namespaces_of(crashed_id) == []
        assert len(namespaces_of(live.run_id)) == 2


@needs_netlab
def test_direct_link_bypasses_delay_and_shaping():
    from picost.netlab.verify import probe

    shape = LinkShape(20e6, 0.010)
    with Netlab({"client": shape, "server": shape, "dealer": shape}, direct=[("dealer", "server")]) as lab:
        direct_rtt_s = min(probe(lab, "dealer", "server", 10, 0)["rtt_s"])
        delayed_rtt_s = min(probe(lab, "client", "server", 10, 0)["rtt_s"])
    assert direct_rtt_s < 0.003
    assert delayed_rtt_s == pytest.approx(0.020, abs=0.003)


def test_direct_link_needs_two_parties_of_the_lab():
    with pytest.raises(ValueError, match="direct link"):
        Netlab({"client": LinkShape(None)}, direct=[("client", "nobody")])

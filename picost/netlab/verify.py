"""Check that a netlab link really has the delay and bandwidth it was given.

The expectations, and why:

* Round-trip time of a 1-byte TCP ping-pong between A and B = delay(A->B) + delay(B->A) + the
  unshaped base RTT of the path (Python sockets, veth, routing, the delay line's own handling;
  measured here on every run with the same probe) + serialization of two small frames.
* Bulk goodput (payload bits/s) = rate x payload fraction of a full frame: tbf counts Ethernet
  frames (TCP payload + 32 B TCP header with timestamps + 20 B IPv4 header + 14 B Ethernet
  header), so an MSS of 1448 B carries 1448/1514 = 95.6 % of the wire rate.

Tolerances: RTT median within 0.5 ms + 5 %; goodput within 7 % (tbf's burst, the delay line's
scheduling on a shared CPU and TCP's ACK clocking all cost a little).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from dataclasses import dataclass

from picost.netlab.lab import (
    ETHERNET_HEADER_BYTES, MTU_BYTES, LinkShape, Netlab, NetlabError, read_line,
)

TCP_IP_HEADER_BYTES = 52
RTT_TOLERANCE_ABS_S = 0.0005
RTT_TOLERANCE_REL = 0.05
GOODPUT_TOLERANCE_REL = 0.07
BULK_SECONDS = 0.5
PROBE_TIMEOUT_S = 60.0


def payload_fraction(mtu_bytes: int = MTU_BYTES) -> float:
    """TCP payload bytes per wire byte of a full Ethernet frame (timestamps on)."""
    mss = mtu_bytes - TCP_IP_HEADER_BYTES
    return mss / (mtu_bytes + ETHERNET_HEADER_BYTES)


@dataclass(frozen=True)
class LinkCheck:
    """Measured vs expected for the path ``src`` -> ``dst`` (times in s, rates in bit/s)."""

    src: str
    dst: str
    rtt_expected_s: float
    rtt_measured_s: float
    goodput_expected_bps: float | None
    goodput_measured_bps: float | None

    @property
    def rtt_ok(self) -> bool:
        allowed = RTT_TOLERANCE_ABS_S + RTT_TOLERANCE_REL * self.rtt_expected_s
        return abs(self.rtt_measured_s - self.rtt_expected_s) <= allowed

    @property
    def goodput_ok(self) -> bool:
        if self.goodput_expected_bps is None:
            return True
        error = abs(self.goodput_measured_bps - self.goodput_expected_bps)
        return error <= GOODPUT_TOLERANCE_REL * self.goodput_expected_bps

    @property
    def ok(self) -> bool:
        return self.rtt_ok and self.goodput_ok


def probe(lab: Netlab, src: str, dst: str, pings: int, bulk_bytes: int) -> dict:
    """Run the probe server in ``dst`` and the measuring client in ``src``; return its JSON."""
    server = lab.popen(dst, [sys.executable, "-m", "picost.netlab.probe", "serve"],
                       stdout=subprocess.PIPE, text=True)
    try:
        port = int(read_line(server, 10.0).split()[1])
        done = subprocess.run(
            ["ip", "netns", "exec", lab.namespace(src), sys.executable, "-m", "picost.netlab.probe",
             "measure", lab.address(dst), str(port), "--pings", str(pings),
             "--bulk-bytes", str(bulk_bytes)],
            capture_output=True, text=True, timeout=PROBE_TIMEOUT_S,
            env=lab.party_env(src))
        if done.returncode != 0:
            raise NetlabError(f"probe {src}->{dst} failed: {done.stderr.strip()}")
        return json.loads(done.stdout)
    finally:
        server.terminate()
        server.wait()


def bulk_bytes_for(lab: Netlab, src: str, dst: str) -> int:
    """Enough bytes for the second half to be steady state: BULK_SECONDS at the rate and at
    least eight bandwidth-delay products (slow start must be over by half-way)."""
    rate = lab.links[dst].rate_bps
    if rate is None:
        return 0
    rtt_s = lab.links[dst].one_way_delay_s + lab.links[src].one_way_delay_s
    return int(max(rate / 8 * BULK_SECONDS, 8 * rate / 8 * rtt_s, 1 << 18))


def check_link(lab: Netlab, src: str, dst: str, base_rtt_s: float, pings: int = 20) -> LinkCheck:
    """Measure ``src`` -> ``dst`` against the lab's configured shapes."""
    bulk = bulk_bytes_for(lab, src, dst)
    result = probe(lab, src, dst, pings, bulk)
    rate = lab.links[dst].rate_bps
    return LinkCheck(
        src=src, dst=dst,
        rtt_expected_s=lab.links[dst].one_way_delay_s + lab.links[src].one_way_delay_s + base_rtt_s,
        rtt_measured_s=statistics.median(result["rtt_s"]),
        goodput_expected_bps=None if rate is None else rate * payload_fraction(),
        goodput_measured_bps=result.get("goodput_bps"),
    )


def base_rtt_s(pings: int = 20) -> float:
    """Median ping-pong RTT of an unshaped, undelayed lab: the harness's own floor."""
    with Netlab.uniform(LinkShape(rate_bps=None), parties=("a", "b")) as lab:
        return statistics.median(probe(lab, "a", "b", pings, 0)["rtt_s"])

"""Parties on separate "hosts": one network namespace per party, shaped links, a delay line.

Topology (a star; all names and addresses exist only inside this lab's own namespaces)::

    client ns  pl0 10.231.1.2/30 ──veth── to-client 10.231.1.1 ┐
    server ns  pl0 10.231.2.2/30 ──veth── to-server 10.231.2.1 ├─ middle ns: router + delay line
    dealer ns  pl0 10.231.3.2/30 ──veth── to-dealer 10.231.3.1 ┘

Every packet a party sends enters the middle namespace, is routed (policy routing by input
interface) into a TUN device served by :mod:`picost.netlab.delayline`, which holds it for the
destination's one-way delay, and then leaves towards the destination through a ``tc tbf`` shaper
at the destination's rate. So a party's :class:`LinkShape` describes the traffic *to* it: the
one-way delay and the bandwidth of its incoming direction. Links are full duplex: A->B and B->A
are shaped by different qdiscs; two senders to one party share that party's incoming rate.
The shaper's token bucket holds 1 ms of traffic, so after an idle period up to 1 ms worth of
bytes passes at once (a smaller bucket lost throughput to late dequeues on a busy host). GRO is
on for every veth end, so TCP acknowledges merged segments and the delay line stays light.

The host's interfaces, routes and addresses are never touched: veth ends are created directly
inside the lab's namespaces. Namespace names are ``pcnl-<creator pid>-<random>-<role>``;
:func:`cleanup_stale` removes those whose creator process is gone (a crashed earlier run).
"""

from __future__ import annotations

import atexit
import json
import os
import re
import secrets
import select
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

NAME_PREFIX = "pcnl-"
NAME_RE = re.compile(rf"^{NAME_PREFIX}(\d+)-([0-9a-f]+)-([a-z]+)$")
PARTY_RE = re.compile(r"^[a-z]{1,12}$")
PARTY_IFNAME = "pl0"
TUN_IFNAME = "dl0"
DELAY_TABLE = 100
SUBNET_PREFIX = "10.231"
ETHERNET_HEADER_BYTES = 14
MTU_BYTES = 1500
TBF_BURST_S = 0.001  # 0.25 ms lost ~10 % of 500 Mbit/s to late dequeues on a busy 2-core host
TBF_QUEUE_S = 0.25
READY_TIMEOUT_S = 10.0
PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


class NetlabError(RuntimeError):
    """The lab could not be built, or a command inside it failed."""


@dataclass(frozen=True)
class LinkShape:
    """The incoming direction of one party's link.

    ``rate_bps``: bandwidth in bits per second on the wire (Ethernet frames), ``None`` = unshaped.
    ``one_way_delay_s``: seconds every packet to this party spends in the delay line.
    """

    rate_bps: float | None
    one_way_delay_s: float = 0.0


def netlab_unavailable_reason() -> str | None:
    """Why namespaces cannot be made here (for a test skip), or None if they can."""
    if sys.platform != "linux":
        return "netlab needs Linux network namespaces"
    if os.geteuid() != 0:
        return "netlab needs root to create network namespaces (run the tests as root)"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"netlab needs the `{tool}` command (iproute2)"
    if not os.path.exists("/dev/net/tun"):
        return "netlab needs /dev/net/tun for its delay line"
    return None


def run_cmd(argv: Sequence[str], env: Mapping[str, str] | None = None) -> str:
    """Run a command; raise NetlabError with its stderr if it fails. Returns stdout."""
    done = subprocess.run(list(argv), capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise NetlabError(f"`{' '.join(argv)}` failed: {done.stderr.strip()}")
    return done.stdout


def lab_namespaces() -> list[str]:
    """Names of all namespaces made by this harness (any run)."""
    names = [line.split()[0] for line in run_cmd(["ip", "netns", "list"]).splitlines() if line.strip()]
    return [name for name in names if NAME_RE.match(name)]


def delete_namespace(name: str) -> None:
    """Kill the processes left inside namespace ``name`` (all were started by this harness
    there), then delete it; its veth ends and their qdiscs go with it."""
    pids = run_cmd(["ip", "netns", "pids", name]).split()
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(int(pid), sig)
            except ProcessLookupError:
                pass
        if sig == signal.SIGTERM and pids:
            time.sleep(0.2)
            pids = run_cmd(["ip", "netns", "pids", name]).split()
    subprocess.run(["ip", "netns", "delete", name], capture_output=True)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cleanup_stale() -> list[str]:
    """Delete lab namespaces whose creating process no longer runs; return their names."""
    stale = [name for name in lab_namespaces() if not process_alive(int(NAME_RE.match(name).group(1)))]
    for name in stale:
        delete_namespace(name)
    return stale


def tbf_args(rate_bps: float) -> list[str]:
    """``tc`` arguments of the shaper: burst ~1 ms of traffic (at least two full frames),
    queue ~250 ms of traffic (at least 1 MB), so a bulk TCP flow is paced, not dropped."""
    frame = MTU_BYTES + ETHERNET_HEADER_BYTES
    burst = max(2 * frame, int(rate_bps / 8 * TBF_BURST_S))
    limit = min(max(1 << 20, int(rate_bps / 8 * TBF_QUEUE_S)), 1 << 30)
    return ["tbf", "rate", f"{int(rate_bps)}bit", "burst", str(burst), "limit", str(limit)]


class Netlab:
    """A running lab. Use as a context manager; everything is removed on exit, also on errors,
    at interpreter exit and on SIGTERM (when no other SIGTERM handler is installed)."""

    def __init__(self, links: Mapping[str, LinkShape], direct: Sequence[tuple[str, str]] = (),
                 delay_line: bool = True):
        """``links``: party -> shape of its incoming direction. ``direct``: pairs of parties that
        also get a private, unshaped, undelayed veth between them (e.g. a dealer colocated with
        the server); traffic between such a pair never enters the middle namespace.
        ``delay_line=False``: no delay line (every delay must be 0): the middle namespace's kernel
        routes the packets itself, so no process of the lab competes with the parties for the
        CPU -- how compute is measured."""
        if not links:
            raise ValueError("a netlab needs at least one party")
        for party in links:
            if not PARTY_RE.match(party) or party == "mid":
                raise ValueError(f"party name {party!r}: use 1-12 lowercase letters, not 'mid'")
        self.links = dict(links)
        self.direct = [tuple(pair) for pair in direct]
        for a, b in self.direct:
            if a not in self.links or b not in self.links or a == b:
                raise ValueError(f"direct link {a!r}-{b!r}: both must be distinct parties of the lab")
        if not delay_line and any(shape.one_way_delay_s for shape in self.links.values()):
            raise ValueError("a lab without a delay line has no delays")
        self.use_delay_line = delay_line
        self.run_id = f"{os.getpid()}-{secrets.token_hex(3)}"
        self.namespaces: dict[str, str] = {}
        self.processes: list[subprocess.Popen] = []
        self.delay_line: subprocess.Popen | None = None
        self.delay_line_stats: dict | None = None
        self.closed = False

    @classmethod
    def uniform(cls, shape: LinkShape, parties: Sequence[str] = ("client", "server", "dealer"),
                delay_line: bool = True) -> "Netlab":
        return cls({party: shape for party in parties}, delay_line=delay_line)

    # -- addresses ---------------------------------------------------------------------------
    def namespace(self, party: str) -> str:
        return self.namespaces[party]

    def address(self, party: str) -> str:
        """The party's IPv4 address, reachable from every other party of this lab."""
        return f"{SUBNET_PREFIX}.{self.party_index(party)}.2"

    def party_index(self, party: str) -> int:
        return list(self.links).index(party) + 1

    def python_env(self) -> dict[str, str]:
        """Environment for this lab's own Python helpers (picost importable from any cwd)."""
        return {**os.environ, "PYTHONPATH": PACKAGE_ROOT}

    def party_env(self, party: str) -> dict[str, str]:
        """Environment for a process of ``party``: as :meth:`python_env`, and gloo binds the
        lab interface (the host name does not resolve to a lab address)."""
        return {**self.python_env(), "GLOO_SOCKET_IFNAME": PARTY_IFNAME}

    # -- life cycle --------------------------------------------------------------------------
    def __enter__(self) -> "Netlab":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        cleanup_stale()
        atexit.register(self.close)
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _exit_on_sigterm)
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _new_namespace(self, role: str) -> str:
        name = f"{NAME_PREFIX}{self.run_id}-{role}"
        run_cmd(["ip", "netns", "add", name])
        self.namespaces[role] = name
        run_cmd(["ip", "-n", name, "link", "set", "lo", "up"])
        return name

    def _build(self) -> None:
        mid = self._new_namespace("mid")
        for key, value in (("net.ipv4.ip_forward", 1), ("net.ipv4.conf.all.rp_filter", 0),
                           ("net.ipv4.conf.default.rp_filter", 0),
                           ("net.ipv4.conf.all.send_redirects", 0),
                           ("net.ipv4.conf.default.send_redirects", 0)):
            run_cmd(["ip", "netns", "exec", mid, "sysctl", "-qw", f"{key}={value}"])
        for party, shape in self.links.items():
            ns = self._new_namespace(party)
            k = self.party_index(party)
            mid_if = mid_ifname(party)
            run_cmd(["ip", "link", "add", "name", mid_if, "netns", mid, "type", "veth",
                     "peer", "name", PARTY_IFNAME, "netns", ns])
            run_cmd(["ip", "-n", mid, "addr", "add", f"{SUBNET_PREFIX}.{k}.1/30", "dev", mid_if])
            run_cmd(["ip", "-n", ns, "addr", "add", f"{SUBNET_PREFIX}.{k}.2/30", "dev", PARTY_IFNAME])
            run_cmd(["ip", "-n", mid, "link", "set", mid_if, "up"])
            run_cmd(["ip", "-n", ns, "link", "set", PARTY_IFNAME, "up"])
            run_cmd(["ip", "-n", ns, "route", "add", "default", "via", f"{SUBNET_PREFIX}.{k}.1"])
            run_cmd(["ip", "netns", "exec", ns, sys.executable, "-m", "picost.netlab.gro", PARTY_IFNAME],
                    env=self.python_env())
            if shape.rate_bps is not None:
                run_cmd(["ip", "netns", "exec", mid, "tc", "qdisc", "add", "dev", mid_if, "root",
                         *tbf_args(shape.rate_bps)])
        for i, (a, b) in enumerate(self.direct):
            self._add_direct_link(i, a, b)
        run_cmd(["ip", "netns", "exec", mid, sys.executable, "-m", "picost.netlab.gro",
                 *(mid_ifname(party) for party in self.links)], env=self.python_env())
        if self.use_delay_line:
            self._start_delay_line(mid)

    def _add_direct_link(self, i: int, a: str, b: str) -> None:
        """A veth between ``a`` and ``b`` (named ``pd<i>`` on both ends) with host routes to each
        other's lab address, so their existing sockets' addresses stay valid."""
        ifname = f"pd{i}"
        run_cmd(["ip", "link", "add", "name", ifname, "netns", self.namespace(a), "type", "veth",
                 "peer", "name", ifname, "netns", self.namespace(b)])
        for here, there in ((a, b), (b, a)):
            ns = self.namespace(here)
            run_cmd(["ip", "-n", ns, "link", "set", ifname, "up"])
            run_cmd(["ip", "-n", ns, "route", "add", f"{self.address(there)}/32", "dev", ifname,
                     "src", self.address(here)])

    def _start_delay_line(self, mid: str) -> None:
        argv = [sys.executable, "-m", "picost.netlab.delayline", "--tun", TUN_IFNAME]
        for party, shape in self.links.items():
            argv += ["--delay", f"{self.address(party)}={shape.one_way_delay_s!r}"]
        self.delay_line = subprocess.Popen(
            ["ip", "netns", "exec", mid, *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env=self.python_env())
        line = read_line(self.delay_line, READY_TIMEOUT_S)
        if line.strip() != f"ready {TUN_IFNAME}":
            raise NetlabError(f"delay line did not start: {line!r} {self.delay_line.stderr.read()}")
        run_cmd(["ip", "-n", mid, "link", "set", TUN_IFNAME, "up"])
        run_cmd(["ip", "-n", mid, "route", "add", "default", "dev", TUN_IFNAME, "table", str(DELAY_TABLE)])
        for party in self.links:
            run_cmd(["ip", "-n", mid, "rule", "add", "iif", mid_ifname(party), "lookup", str(DELAY_TABLE)])

    def set_delay(self, party: str, one_way_delay_s: float) -> None:
        """Change the one-way delay of the traffic to ``party`` (packets already held keep theirs;
        change it between measurements, with the link idle)."""
        if self.delay_line is None or self.delay_line.poll() is not None:
            raise NetlabError("the delay line is not running")
        self.delay_line.stdin.write(f"delay {self.address(party)}={float(one_way_delay_s)!r}\n")
        self.delay_line.stdin.flush()
        answer = read_line(self.delay_line, READY_TIMEOUT_S).strip()
        if answer != "ok":
            raise NetlabError(f"the delay line refused the new delay of {party}: {answer}")
        self.links[party] = LinkShape(self.links[party].rate_bps, float(one_way_delay_s))

    def popen(self, party: str, argv: Sequence[str], env: Mapping[str, str] | None = None,
              **kwargs) -> subprocess.Popen:
        """Start ``argv`` inside ``party``'s namespace; it is terminated by :meth:`close`."""
        full_env = {**self.party_env(party), **(env or {})}
        proc = subprocess.Popen(["ip", "netns", "exec", self.namespace(party), *argv],
                                env=full_env, **kwargs)
        self.processes.append(proc)
        return proc

    def close(self) -> None:
        """Stop every process this lab started and delete its namespaces. Idempotent."""
        if self.closed:
            return
        self.closed = True
        for proc in self.processes:
            stop_process(proc)
        if self.delay_line is not None:
            if self.delay_line.poll() is None:
                self.delay_line.terminate()
                try:
                    out, _ = self.delay_line.communicate(timeout=5)
                    self.delay_line_stats = json.loads(out.strip().splitlines()[-1])
                except (subprocess.TimeoutExpired, ValueError, IndexError):
                    self.delay_line.kill()
                    self.delay_line.wait()
        for name in self.namespaces.values():
            delete_namespace(name)
        atexit.unregister(self.close)


def mid_ifname(party: str) -> str:
    """The middle namespace's end of ``party``'s link (interface names have <= 15 chars)."""
    return f"to-{party}"[:15]


def stop_process(proc: subprocess.Popen, grace_s: float = 3.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def read_line(proc: subprocess.Popen, timeout_s: float) -> str:
    """One line of ``proc``'s stdout, or NetlabError after ``timeout_s``."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
    if not ready:
        raise NetlabError(f"no output from `{' '.join(proc.args)}` within {timeout_s} s")
    return proc.stdout.readline()


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)

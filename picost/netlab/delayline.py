"""A packet delay line: a TUN device whose reader holds every IP packet for a fixed one-way delay.

This kernel has no ``netem``, so the netlab adds propagation delay in user space. The middle
namespace routes every packet that arrives from a party into the TUN device (policy routing by
input interface); this process reads each packet, keeps it for the delay configured for its
destination address, and writes it back into the TUN device, from where the kernel forwards it to
the destination's link (which ``tc tbf`` shapes). Packets to one destination share one delay, so
their order is kept; the queue is unbounded in packets, so the delay does not limit throughput
(a bandwidth-delay product of packets is simply in flight, as on a real wire).

The TUN device is opened with a virtio-net header and TSO/checksum offloads: the kernel hands
over whole TCP segments of up to 64 KiB (GSO), which keeps the packet rate low enough for Python;
``tbf`` segments them into MTU-sized packets after the delay.

Run inside the middle namespace: ``python -m picost.netlab.delayline --tun NAME
--delay ADDR=SECONDS ... [--default-delay SECONDS]``. It prints ``ready NAME`` once the device
exists, and on SIGTERM prints one JSON line of statistics (packets, bytes, lateness) and exits.
A line ``delay ADDR=SECONDS`` on its stdin changes that destination's delay for packets read from
then on (packets already held keep theirs) and is answered by ``ok``; the lab uses it to measure
one op at several delays without restarting its parties (:meth:`picost.netlab.lab.Netlab.set_delay`).
"""

from __future__ import annotations

import argparse
import collections
import errno
import fcntl
import json
import os
import select
import signal
import struct
import sys
import time

TUNSETIFF = 0x400454CA
TUNSETOFFLOAD = 0x400454D0
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
TUN_F_CSUM = 0x01
TUN_F_TSO4 = 0x02
TUN_F_TSO6 = 0x04
VNET_HDR_BYTES = 10
READ_BYTES = 1 << 18
REALTIME_PRIORITY = 10
PR_SET_TIMERSLACK = 29


def open_tun(name: str) -> int:
    """Create the TUN device ``name`` (in this process's namespace) and return its fd."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI | IFF_VNET_HDR))
    fcntl.ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)
    return fd


def destination(packet: bytes) -> bytes:
    """The IPv4 destination address (4 bytes) of a packet read with a virtio-net header."""
    return packet[VNET_HDR_BYTES + 16 : VNET_HDR_BYTES + 20]


class DelayLine:
    """FIFO queues keyed by delay; ``delay_s_by_dst`` maps packed IPv4 addresses to seconds."""

    def __init__(self, fd: int, delay_s_by_dst: dict[bytes, float], default_delay_s: float):
        self.fd = fd
        self.delay_s_by_dst = delay_s_by_dst
        self.default_delay_s = default_delay_s
        self.queues: dict[float, collections.deque] = collections.defaultdict(collections.deque)
        self.packets = 0
        self.bytes = 0
        self.max_late_s = 0.0
        self.total_late_s = 0.0
        self.write_errors = 0

    def read_available(self) -> None:
        """Read every packet the kernel has queued and stamp it with its release time."""
        while True:
            try:
                packet = os.read(self.fd, READ_BYTES)
            except BlockingIOError:
                return
            now = time.monotonic()
            delay_s = self.delay_s_by_dst.get(destination(packet), self.default_delay_s)
            self.queues[delay_s].append((now + delay_s, packet))

    def release_due(self) -> float | None:
        """Write every packet whose time has come; return seconds until the next one (or None)."""
        next_s = None
        now = time.monotonic()
        for queue in self.queues.values():
            while queue and queue[0][0] <= now:
                due, packet = queue.popleft()
                late_s = now - due
                self.max_late_s = max(self.max_late_s, late_s)
                self.total_late_s += late_s
                self.packets += 1
                self.bytes += len(packet) - VNET_HDR_BYTES
                try:
                    os.write(self.fd, packet)
                except OSError as exc:
                    if exc.errno not in (errno.EINVAL, errno.EIO, errno.EAGAIN):
                        raise
                    self.write_errors += 1
                now = time.monotonic()
            if queue:
                wait_s = queue[0][0] - now
                next_s = wait_s if next_s is None else min(next_s, wait_s)
        return next_s

    def command(self, line: str) -> str:
        """Apply one control line (``delay ADDR=SECONDS``); return the answer."""
        verb, _, arg = line.strip().partition(" ")
        if verb != "delay":
            return f"error unknown command {verb!r}"
        try:
            address, seconds = parse_delay(arg)
        except (OSError, ValueError) as exc:
            return f"error {exc}"
        if not seconds >= 0:
            return "error the delay must be >= 0"
        self.delay_s_by_dst[address] = seconds
        return "ok"

    def run(self, control=None) -> None:
        """Serve packets; ``control`` (a text file, e.g. stdin) carries command lines."""
        timeout_s = None
        watched = [self.fd] + ([control] if control is not None else [])
        while True:
            readable, _, _ = select.select(watched, [], [], timeout_s)
            if control is not None and control in readable:
                line = control.readline()
                if not line:
                    watched.remove(control)
                    control = None
                else:
                    print(self.command(line), flush=True)
            if self.fd in readable:
                self.read_available()
            timeout_s = self.release_due()
            if timeout_s is not None:
                timeout_s = max(timeout_s, 0.0)

    def stats(self) -> dict:
        return {
            "packets": self.packets,
            "bytes": self.bytes,
            "max_late_s": self.max_late_s,
            "mean_late_s": self.total_late_s / self.packets if self.packets else 0.0,
            "write_errors": self.write_errors,
        }


def prefer_punctual_wakeups() -> None:
    """Real-time priority and 1 ns timer slack, so releases are not late behind the parties'
    own work on a busy machine. The loop blocks in select(), so it cannot starve others."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(REALTIME_PRIORITY))
    except (OSError, AttributeError):
        pass
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def parse_delay(text: str) -> tuple[bytes, float]:
    """``"10.231.1.2=0.01"`` -> (packed address, 0.01)."""
    import socket

    address, _, seconds = text.partition("=")
    return socket.inet_aton(address), float(seconds)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tun", required=True)
    parser.add_argument("--delay", action="append", default=[], type=parse_delay)
    parser.add_argument("--default-delay", type=float, default=0.0)
    args = parser.parse_args(argv)
    prefer_punctual_wakeups()
    line = DelayLine(open_tun(args.tun), dict(args.delay), args.default_delay)

    def stop(signum, frame):
        print(json.dumps(line.stats()), flush=True)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"ready {args.tun}", flush=True)
    line.run(sys.stdin)


if __name__ == "__main__":
    main(sys.argv[1:])

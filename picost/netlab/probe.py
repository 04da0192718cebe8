"""Measure what a netlab link really does: TCP ping-pong round-trip time and bulk goodput.

Two ends, each run in its own namespace by the harness:

* ``python -m picost.netlab.probe serve`` listens on an ephemeral port, prints ``port N`` and
  answers connections: a ping-pong connection echoes 1-byte messages; a bulk connection reads a
  length-prefixed payload and replies with the steady-state receive time of its second half.
* ``python -m picost.netlab.probe measure ADDR PORT --pings N --bulk-bytes B`` prints one JSON
  line: ``{"rtt_s": [...], "bulk_bytes": B, "goodput_bps": ...}``.

Goodput is application payload bits per second over the second half of the transfer, so TCP's
slow start on the fresh connection is not charged to the link.
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import sys
import threading
import time

PING = b"p"
BULK = b"b"
CHUNK_BYTES = 1 << 20


def recv_exact(sock: socket.socket, n: int) -> bytes:
    parts = []
    while n:
        part = sock.recv(n)
        if not part:
            raise ConnectionError("peer closed early")
        parts.append(part)
        n -= len(part)
    return b"".join(parts)


def handle(conn: socket.socket) -> None:
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with conn:
        kind = recv_exact(conn, 1)
        if kind == PING:
            while True:
                byte = conn.recv(1)
                if not byte:
                    return
                conn.sendall(byte)
        total = struct.unpack("!Q", recv_exact(conn, 8))[0]
        received = 0
        half_at_s = None
        while received < total:
            part = conn.recv(min(CHUNK_BYTES, total - received))
            if not part:
                raise ConnectionError("peer closed early")
            received += len(part)
            if half_at_s is None and received >= total // 2:
                half_at_s = time.monotonic()
                half_bytes = received
        second_half_s = time.monotonic() - half_at_s
        conn.sendall(struct.pack("!dQ", second_half_s, total - half_bytes))


def serve() -> None:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", 0))
    listener.listen(8)
    print(f"port {listener.getsockname()[1]}", flush=True)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


def ping_pong_rtts(address: str, port: int, pings: int) -> list[float]:
    """Round-trip times (seconds) of ``pings`` 1-byte TCP ping-pongs on one connection."""
    with socket.create_connection((address, port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(PING)
        rtts = []
        for _ in range(pings):
            start = time.perf_counter()
            sock.sendall(b"x")
            recv_exact(sock, 1)
            rtts.append(time.perf_counter() - start)
        return rtts


def bulk_goodput_bps(address: str, port: int, bulk_bytes: int) -> float:
    """Payload bits per second the receiver saw over the second half of ``bulk_bytes``."""
    payload = bytes(CHUNK_BYTES)
    with socket.create_connection((address, port)) as sock:
        sock.sendall(BULK + struct.pack("!Q", bulk_bytes))
        sent = 0
        while sent < bulk_bytes:
            n = min(CHUNK_BYTES, bulk_bytes - sent)
            sock.sendall(payload[:n])
            sent += n
        second_half_s, second_half_bytes = struct.unpack("!dQ", recv_exact(sock, 16))
    return second_half_bytes * 8 / second_half_s


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve")
    measure = sub.add_parser("measure")
    measure.add_argument("address")
    measure.add_argument("port", type=int)
    measure.add_argument("--pings", type=int, default=20)
    measure.add_argument("--bulk-bytes", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve()
        return
    result = {"rtt_s": ping_pong_rtts(args.address, args.port, args.pings), "bulk_bytes": args.bulk_bytes}
    if args.bulk_bytes:
        result["goodput_bps"] = bulk_goodput_bps(args.address, args.port, args.bulk_bytes)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])

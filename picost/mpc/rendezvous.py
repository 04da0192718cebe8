"""The engine's authenticated rendezvous: how the three parties find each other.

The client (rank 0) listens on ``host:port`` (that address only) and keeps a small key-value
store, the one torch's gloo group reads its members' addresses from. The server and the dealer
join it over TCP; the client's own process uses it in-process (:class:`LocalStore`).

**Who may join.** Every connection first passes a mutual HMAC-SHA256 challenge-response keyed
by the run's secret (the job's ``nonce``, which never goes over the wire, nor anything a
stranger could join with):

1. client -> party: ``MAGIC`` and a fresh 32-byte challenge ``c``;
2. party -> client: its role (1 server, 2 dealer), its own fresh challenge ``p`` and
   ``HMAC(K, "party" | role | c | p)``;
3. client -> party, once the proof checks (``hmac.compare_digest``) and the role is free: a
   fresh run id ``u`` and ``HMAC(K, "client" | role | c | p | u)``: the client proves that it
   knows the secret too, so a party never talks to a fake client.

``K = HMAC(nonce, "picost rendezvous v1")``. Afterwards every frame either way carries
``HMAC(K_dir, sequence number | frame)`` under a key per connection and direction (derived from
``K``, ``c`` and ``p``): a connection taken over after the handshake, a replayed or reordered
frame is dropped with the connection. A party of another run, a program that is not a picost
party, a second server or dealer, malformed or oversized bytes, or a peer too slow to finish the
handshake (:data:`HANDSHAKE_S`) is refused: the client writes one line to stderr
(``client: refused a connection from ADDR: <why>``) and closes that connection; the run goes
on. A stranger learns the magic line and a random challenge, nothing else: no key, no value,
no MAC it could reuse (every MAC covers fresh challenges of both sides).

**Bounds on what a stranger can make the client do**: frames of at most :data:`MAX_FRAME`
bytes (the handshake's are fixed-size), at most :data:`MAX_PENDING` connections awaiting their
handshake at once (more are closed at once), :data:`HANDSHAKE_S` seconds for a handshake, at
most :data:`MAX_LOGGED` refusal lines per run. Authenticated parties are bounded too
(:data:`MAX_KEYS` keys, :data:`MAX_STORE_BYTES` in all, waits no longer than the run's connect
timeout).

After gloo has formed its group, :func:`confirm_peers` sends each peer, over gloo, a MAC of the
run id under ``K``: every gloo connection is checked to reach a holder of the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
import struct
import sys
import threading
import time
from datetime import timedelta
from typing import Any

import torch.distributed as dist

MAGIC = b"picost-rendezvous/1\n"
"""What the client says first: identifies the protocol (and its version) to a joining party."""
CHALLENGE_BYTES = 32
RUN_ID_BYTES = 16
MAC_BYTES = 32
HANDSHAKE_S = 10.0
"""Seconds a connection has to complete its handshake (from being accepted)."""
MAX_PENDING = 16
"""Connections awaiting their handshake at once; more are closed at once."""
MAX_FRAME = 64 * 1024
"""Largest frame (after its 4-byte length) either side accepts."""
MAX_KEYS = 256
MAX_STORE_BYTES = 1 << 20
MAX_LOGGED = 32
"""Refusal lines per run; after these, one line says that further refusals are not logged."""
ROLES = {1: "server", 2: "dealer"}

_PARTY_PROOF = 65  # role (1) + challenge (32) + MAC (32)
_OK, _REFUSED = b"\x01", b"\x00"
_BAD_PROOF, _ROLE_TAKEN, _MALFORMED = 1, 2, 3

# store requests (one byte) and their answers
_SET, _GET, _ADD, _CHECK, _WAIT, _COMPARE_SET, _NUM_KEYS, _DELETE = range(1, 9)
_ANSWER, _TIMEOUT, _ERROR = b"\x00", b"\x01", b"\x02"


class RendezvousError(RuntimeError):
    """This party could not join the run (refused, unreachable, or the peer is no picost client)."""


class Refused(Exception):
    """A connection the client refuses (the reason is its text)."""


def run_key(secret: str) -> bytes:
    """The run's MAC key, from its secret nonce."""
    if not isinstance(secret, str) or not secret:
        raise ValueError("the run's secret (the job's nonce) must be a non-empty string")
    return hmac.new(secret.encode("utf-8"), b"picost rendezvous v1", hashlib.sha256).digest()


def _mac(key: bytes, *parts: bytes) -> bytes:
    h = hmac.new(key, digestmod=hashlib.sha256)
    for part in parts:
        h.update(struct.pack(">I", len(part)))
        h.update(part)
    return h.digest()


# -- framing ------------------------------------------------------------------------------------
def _recv_exact(sock: socket.socket, n: int, deadline: float | None) -> bytes:
    """``n`` bytes from ``sock`` before ``deadline`` (monotonic; None: the socket's own timeout).
    EOF raises ``EOFError``, the deadline ``TimeoutError``."""
    out = bytearray()
    while len(out) < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            sock.settimeout(left)
        try:
            chunk = sock.recv(min(n - len(out), 1 << 16))
        except socket.timeout:
            raise TimeoutError from None
        if not chunk:
            raise EOFError(len(out))
        out += chunk
    return bytes(out)


def _send_frame(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(struct.pack(">I", len(payload)) + payload)


def _recv_frame(sock: socket.socket, deadline: float | None, limit: int = MAX_FRAME) -> bytes:
    (size,) = struct.unpack(">I", _recv_exact(sock, 4, deadline))
    if size > limit:
        raise Refused(f"a message of {size} bytes, more than the {limit} allowed")
    return _recv_exact(sock, size, deadline)


class _Channel:
    """Frames authenticated per direction and sequence number (after the handshake)."""

    def __init__(self, sock: socket.socket, key: bytes, c: bytes, p: bytes, client_side: bool) -> None:
        self.sock = sock
        to_client, to_party = _mac(key, b"party->client", c, p), _mac(key, b"client->party", c, p)
        self.send_key, self.recv_key = (to_party, to_client) if client_side else (to_client, to_party)
        self.sent = self.received = 0

    def send(self, payload: bytes) -> None:
        tag = _mac(self.send_key, struct.pack(">Q", self.sent), payload)
        self.sent += 1
        _send_frame(self.sock, payload + tag)

    def recv(self, deadline: float | None = None) -> bytes:
        frame = _recv_frame(self.sock, deadline, MAX_FRAME + MAC_BYTES)
        if len(frame) < MAC_BYTES:
            raise Refused(f"a message of {len(frame)} bytes, too short to carry its MAC")
        payload, tag = frame[:-MAC_BYTES], frame[-MAC_BYTES:]
        if not hmac.compare_digest(tag, _mac(self.recv_key, struct.pack(">Q", self.received), payload)):
            raise Refused("a message failed its authentication (tampered with, replayed or reordered)")
        self.received += 1
        return payload


# -- the store's contents (held by the client) ---------------------------------------------------
class _Table:
    """The client's key-value store: bounded, thread-safe, with blocking waits."""

    def __init__(self, max_wait_s: float) -> None:
        self.data: dict[str, bytes] = {}
        self.cond = threading.Condition()
        self.max_wait_s = max_wait_s
        self.closed = False

    def _bound(self, key: str, value: bytes) -> None:
        if len(key.encode()) > 1024 or len(value) > MAX_FRAME:
            raise ValueError("a key or value too large for the rendezvous")
        if key not in self.data and len(self.data) >= MAX_KEYS:
            raise ValueError(f"the rendezvous holds at most {MAX_KEYS} keys")
        total = sum(len(k) + len(v) for k, v in self.data.items()) + len(key) + len(value)
        if total > MAX_STORE_BYTES:
            raise ValueError(f"the rendezvous holds at most {MAX_STORE_BYTES} bytes")

    def set(self, key: str, value: bytes) -> None:
        with self.cond:
            self._bound(key, value)
            self.data[key] = value
            self.cond.notify_all()

    def wait(self, keys: list[str], timeout_s: float) -> bool:
        end = time.monotonic() + min(timeout_s, self.max_wait_s)
        with self.cond:
            while not all(k in self.data for k in keys):
                left = end - time.monotonic()
                if left <= 0 or self.closed:
                    return False
                self.cond.wait(min(left, 1.0))
            return True

    def get(self, key: str, timeout_s: float) -> bytes | None:
        with self.cond:
            if not self.wait([key], timeout_s):
                return None
            return self.data[key]

    def add(self, key: str, amount: int) -> int:
        with self.cond:
            value = int(self.data.get(key, b"0")) + amount
            self.set(key, str(value).encode())
            return value

    def check(self, keys: list[str]) -> bool:
        with self.cond:
            return all(k in self.data for k in keys)

    def compare_set(self, key: str, expected: bytes, desired: bytes) -> bytes:
        with self.cond:
            current = self.data.get(key)
            if (current is None and not expected) or current == expected:
                self.set(key, desired)
                return desired
            return expected if current is None else current

    def num_keys(self) -> int:
        with self.cond:
            return len(self.data)

    def delete(self, key: str) -> bool:
        with self.cond:
            return self.data.pop(key, None) is not None

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()


def _timeout_s(timeout: Any, default_s: float) -> float:
    if timeout is None:
        return default_s
    if isinstance(timeout, timedelta):
        return timeout.total_seconds()
    return float(timeout)


class LocalStore(dist.Store):
    """The client's own view of its rendezvous store (in-process)."""

    def __init__(self, table: _Table, timeout_s: float) -> None:
        super().__init__()
        self.table, self.timeout_s = table, timeout_s

    def set(self, key: str, value: Any) -> None:
        self.table.set(key, _bytes(value))

    def get(self, key: str) -> bytes:
        value = self.table.get(key, self.timeout_s)
        if value is None:
            raise RuntimeError(f"rendezvous: timed out after {self.timeout_s:g} s waiting for key {key!r}")
        return value

    def add(self, key: str, amount: int) -> int:
        return self.table.add(key, int(amount))

    def check(self, keys: list[str]) -> bool:
        return self.table.check(list(keys))

    def wait(self, keys: list[str], timeout: Any = None) -> None:
        limit = _timeout_s(timeout, self.timeout_s)
        if not self.table.wait(list(keys), limit):
            raise RuntimeError(f"rendezvous: timed out after {limit:g} s waiting for keys {list(keys)}")

    def compare_set(self, key: str, expected: Any, desired: Any) -> bytes:
        return self.table.compare_set(key, _bytes(expected), _bytes(desired))

    def num_keys(self) -> int:
        return self.table.num_keys()

    def delete_key(self, key: str) -> bool:
        return self.table.delete(key)


def _bytes(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    return bytes(value)


# -- the client's listener --------------------------------------------------------------------------
class Host:
    """The client's rendezvous: listens on ``host:port`` only, admits one server and one dealer
    that prove they know the run's secret, refuses everything else with a line on stderr."""

    def __init__(self, host: str, port: int, key: bytes, max_wait_s: float, role_name: str = "client") -> None:
        self.key = key
        self.run_id = os.urandom(RUN_ID_BYTES)
        self.table = _Table(max_wait_s)
        self.name = role_name
        self.joined: set[int] = set()
        self.pending = 0
        self.logged = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.sessions: list[socket.socket] = []
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        self.sock = socket.socket(family, kind, proto)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind(address)
            self.sock.listen(MAX_PENDING)
        except OSError:
            self.sock.close()
            raise
        self.address = self.sock.getsockname()
        self.thread = threading.Thread(target=self._accept, name="rendezvous", daemon=True)
        self.thread.start()

    def store(self, timeout_s: float) -> LocalStore:
        return LocalStore(self.table, timeout_s)

    def refuse(self, peer: str, why: str) -> None:
        with self.lock:
            self.logged += 1
            if self.logged > MAX_LOGGED + 1:
                return
            line = (f"{self.name}: refused a connection from {peer}: {why}\n" if self.logged <= MAX_LOGGED else
                    f"{self.name}: refused more than {MAX_LOGGED} connections; further refusals are not logged\n")
        try:
            sys.stderr.write(line)
            sys.stderr.flush()
        except (OSError, ValueError):
            pass

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, addr = self.sock.accept()  # blocks; close() wakes it (shutdown)
            except OSError:
                if self.stop.is_set():
                    return
                time.sleep(0.05)  # e.g. out of descriptors: do not spin
                continue
            peer = _address(addr)
            with self.lock:
                admitted = self.pending < MAX_PENDING
                if admitted:
                    self.pending += 1
            if not admitted:
                conn.close()
                self.refuse(peer, f"{MAX_PENDING} connections are already awaiting their handshake")
                continue
            threading.Thread(target=self._serve, args=(conn, peer), name=f"rendezvous {peer}", daemon=True).start()

    def _serve(self, conn: socket.socket, peer: str) -> None:
        role = None
        try:
            try:
                channel, role = self._handshake(conn)
            finally:
                with self.lock:
                    self.pending -= 1
            self._requests(channel)
        except Refused as why:
            self.refuse(peer, str(why))
        except TimeoutError:
            self.refuse(peer, f"it did not complete the handshake within {HANDSHAKE_S:g} s")
        except EOFError:
            if role is None:
                self.refuse(peer, "it closed the connection before proving it knows the run's secret")
        except OSError as exc:
            if role is None and not self.stop.is_set():
                self.refuse(peer, f"the connection failed during the handshake ({exc.strerror or exc})")
        except Exception as exc:  # noqa: BLE001 - never a traceback from the listener; the run goes on
            self.refuse(peer, f"an unexpected error ({type(exc).__name__}: {exc})")
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def _handshake(self, conn: socket.socket) -> tuple[_Channel, int]:
        deadline = time.monotonic() + HANDSHAKE_S
        conn.settimeout(HANDSHAKE_S)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        challenge = os.urandom(CHALLENGE_BYTES)
        conn.sendall(MAGIC + challenge)
        try:
            proof = _recv_frame(conn, deadline, _PARTY_PROOF)
        except Refused as exc:
            _send_frame(conn, _REFUSED + bytes([_MALFORMED]))
            raise Refused(f"a malformed handshake: {exc} (not a picost party of this version)") from None
        if len(proof) != _PARTY_PROOF:
            _send_frame(conn, _REFUSED + bytes([_MALFORMED]))
            raise Refused(f"a malformed handshake ({len(proof)} bytes instead of {_PARTY_PROOF})")
        role, theirs, mac = proof[0], proof[1:1 + CHALLENGE_BYTES], proof[1 + CHALLENGE_BYTES:]
        expected = _mac(self.key, b"party", bytes([role]), challenge, theirs)
        if not hmac.compare_digest(mac, expected) or role not in ROLES:
            _send_frame(conn, _REFUSED + bytes([_BAD_PROOF]))
            raise Refused("a wrong proof of the run's secret (a party of another run, or not a picost party)")
        with self.lock:
            taken = role in self.joined
            if not taken:
                self.joined.add(role)
                self.sessions.append(conn)
        if taken:
            _send_frame(conn, _REFUSED + bytes([_ROLE_TAKEN]))
            raise Refused(f"a second {ROLES[role]} (the {ROLES[role]} of this run has joined already)")
        _send_frame(conn, _OK + self.run_id + _mac(self.key, b"client", bytes([role]), challenge, theirs, self.run_id))
        conn.settimeout(None)
        return _Channel(conn, self.key, challenge, theirs, client_side=True), role

    def _requests(self, channel: _Channel) -> None:
        """Answer an authenticated party's store requests until it closes the connection."""
        while not self.stop.is_set():
            request = channel.recv()
            try:
                answer = self._answer(request)
            except (ValueError, IndexError, struct.error) as exc:
                answer = _ERROR + str(exc).encode()[:200]
            channel.send(answer)

    def _answer(self, request: bytes) -> bytes:
        op, fields = request[0], _unpack(request[1:])
        t = self.table
        if op == _SET:
            t.set(fields[0].decode(), fields[1])
            return _ANSWER
        if op == _GET:
            value = t.get(fields[0].decode(), struct.unpack(">d", fields[1])[0])
            return _TIMEOUT if value is None else _ANSWER + value
        if op == _ADD:
            return _ANSWER + struct.pack(">q", t.add(fields[0].decode(), struct.unpack(">q", fields[1])[0]))
        if op == _CHECK:
            return _ANSWER + bytes([t.check([f.decode() for f in fields])])
        if op == _WAIT:
            done = t.wait([f.decode() for f in fields[1:]], struct.unpack(">d", fields[0])[0])
            return _ANSWER if done else _TIMEOUT
        if op == _COMPARE_SET:
            return _ANSWER + t.compare_set(fields[0].decode(), fields[1], fields[2])
        if op == _NUM_KEYS:
            return _ANSWER + struct.pack(">q", t.num_keys())
        if op == _DELETE:
            return _ANSWER + bytes([t.delete(fields[0].decode())])
        raise ValueError(f"unknown request {op}")

    def close(self) -> None:
        self.stop.set()
        self.table.close()
        for end in (lambda: self.sock.shutdown(socket.SHUT_RDWR), self.sock.close):
            try:
                end()
            except OSError:
                pass
        with self.lock:
            sessions, self.sessions = self.sessions, []
        for conn in sessions:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.thread.join(timeout=2)


def _address(addr: Any) -> str:
    if isinstance(addr, tuple) and len(addr) >= 2:
        return f"[{addr[0]}]:{addr[1]}" if ":" in str(addr[0]) else f"{addr[0]}:{addr[1]}"
    return str(addr)


def _pack(*fields: bytes) -> bytes:
    return b"".join(struct.pack(">I", len(f)) + f for f in fields)


def _unpack(data: bytes) -> list[bytes]:
    fields, at = [], 0
    while at < len(data):
        (size,) = struct.unpack(">I", data[at:at + 4])
        if at + 4 + size > len(data):
            raise ValueError("a truncated field")
        fields.append(data[at + 4:at + 4 + size])
        at += 4 + size
    return fields


# -- a joining party ------------------------------------------------------------------------------
class RemoteStore(dist.Store):
    """A party's view of the client's store, over its authenticated connection."""

    def __init__(self, channel: _Channel, timeout_s: float) -> None:
        super().__init__()
        self.channel, self.timeout_s = channel, timeout_s
        self.lock = threading.Lock()

    def _call(self, op: int, *fields: bytes) -> bytes:
        with self.lock:
            try:
                self.channel.send(bytes([op]) + _pack(*fields))
                answer = self.channel.recv()
            except (OSError, EOFError, TimeoutError, Refused) as exc:
                raise RuntimeError(f"rendezvous: lost the connection to the client ({exc or type(exc).__name__})") from None
        if answer[:1] == _ERROR:
            raise RuntimeError(f"rendezvous: the client refused a request: {answer[1:].decode(errors='replace')}")
        return answer

    def set(self, key: str, value: Any) -> None:
        self._call(_SET, key.encode(), _bytes(value))

    def get(self, key: str) -> bytes:
        answer = self._call(_GET, key.encode(), struct.pack(">d", self.timeout_s))
        if answer[:1] == _TIMEOUT:
            raise RuntimeError(f"rendezvous: timed out after {self.timeout_s:g} s waiting for key {key!r}")
        return answer[1:]

    def add(self, key: str, amount: int) -> int:
        return struct.unpack(">q", self._call(_ADD, key.encode(), struct.pack(">q", int(amount)))[1:])[0]

    def check(self, keys: list[str]) -> bool:
        return bool(self._call(_CHECK, *(k.encode() for k in keys))[1])

    def wait(self, keys: list[str], timeout: Any = None) -> None:
        limit = _timeout_s(timeout, self.timeout_s)
        if self._call(_WAIT, struct.pack(">d", limit), *(k.encode() for k in keys))[:1] == _TIMEOUT:
            raise RuntimeError(f"rendezvous: timed out after {limit:g} s waiting for keys {list(keys)}")

    def compare_set(self, key: str, expected: Any, desired: Any) -> bytes:
        return self._call(_COMPARE_SET, key.encode(), _bytes(expected), _bytes(desired))[1:]

    def num_keys(self) -> int:
        return struct.unpack(">q", self._call(_NUM_KEYS)[1:])[0]

    def delete_key(self, key: str) -> bool:
        return bool(self._call(_DELETE, key.encode())[1])

    def close(self) -> None:
        try:
            self.channel.sock.close()
        except OSError:
            pass


def join(host: str, port: int, role: int, key: bytes, connect_timeout_s: float, timeout_s: float
         ) -> tuple[RemoteStore, bytes]:
    """Join the client's rendezvous at ``host:port`` as ``role`` (1 server, 2 dealer): retry until
    the client listens (at most ``connect_timeout_s``), prove the run's secret and check the
    client's proof. Returns the store and the run id; :class:`RendezvousError` when refused."""
    where = f"{host}:{port}"
    name = ROLES[role]
    deadline = time.monotonic() + connect_timeout_s
    last = "nothing listened there"
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise RendezvousError(f"{name}: could not reach the client's rendezvous at {where} within "
                                  f"{connect_timeout_s:g} s ({last})")
        try:
            sock = socket.create_connection((host, port), timeout=min(left, HANDSHAKE_S))
        except OSError as exc:
            last = exc.strerror or str(exc)
            time.sleep(min(0.2, max(deadline - time.monotonic(), 0)))
            continue
        try:
            return _prove(sock, where, name, role, key, min(deadline, time.monotonic() + HANDSHAKE_S), timeout_s)
        except (EOFError, ConnectionError) as exc:  # closed before the challenge: busy, or not up yet
            sock.close()
            last = f"the connection was closed before the handshake ({exc or type(exc).__name__})"
            time.sleep(min(0.2, max(deadline - time.monotonic(), 0)))
        except TimeoutError:
            sock.close()
            raise RendezvousError(f"{name}: refused the rendezvous at {where}: the program there did not complete "
                                  f"the picost handshake within {HANDSHAKE_S:g} s (not a picost client?)") from None
        except BaseException:
            sock.close()
            raise


def _prove(sock: socket.socket, where: str, name: str, role: int, key: bytes, deadline: float, timeout_s: float
           ) -> tuple[RemoteStore, bytes]:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    hello = _recv_exact(sock, len(MAGIC) + CHALLENGE_BYTES, deadline)
    if not hello.startswith(MAGIC):
        raise RendezvousError(f"{name}: refused the rendezvous at {where}: the program there is not a picost client "
                              "(another program holds the port, or another picost version)")
    challenge, mine = hello[len(MAGIC):], os.urandom(CHALLENGE_BYTES)
    _send_frame(sock, bytes([role]) + mine + _mac(key, b"party", bytes([role]), challenge, mine))
    try:
        answer = _recv_frame(sock, deadline, 1 + RUN_ID_BYTES + MAC_BYTES)
    except EOFError:
        raise RendezvousError(f"{name}: refused the rendezvous at {where}: the client closed the connection "
                              "without an answer") from None
    except Refused as exc:
        raise RendezvousError(f"{name}: refused the rendezvous at {where}: {exc}") from None
    if answer[:1] == _REFUSED and len(answer) == 2:
        why = {_BAD_PROOF: "the client there did not accept this party's proof of the run's secret (the job files' "
                           "nonces differ, or the port belongs to another run)",
               _ROLE_TAKEN: f"the client there has its {name} already (a {name} of this run joined first)",
               _MALFORMED: "the client there could not read this party's handshake"}.get(answer[1], "refused")
        raise RendezvousError(f"{name}: refused the rendezvous at {where}: {why}")
    run_id, mac = answer[1:1 + RUN_ID_BYTES], answer[1 + RUN_ID_BYTES:]
    if (answer[:1] != _OK or len(answer) != 1 + RUN_ID_BYTES + MAC_BYTES
            or not hmac.compare_digest(mac, _mac(key, b"client", bytes([role]), challenge, mine, run_id))):
        raise RendezvousError(f"{name}: refused the rendezvous at {where}: the program there could not prove that it "
                              "knows the run's secret (it is not this run's client)")
    sock.settimeout(None)
    return RemoteStore(_Channel(sock, key, challenge, mine, client_side=False), timeout_s), run_id


# -- after gloo has formed its group -----------------------------------------------------------------
def confirm_peers(rank: int, key: bytes, run_id: bytes, timeout_s: float) -> None:
    """Each party sends every other one, over gloo, ``HMAC(K, "gloo" | run id | from | to)`` and
    checks what it receives: every gloo connection reaches a holder of the run's secret (of this
    run). Raises :class:`RendezvousError` naming the peer otherwise."""
    import torch

    names = {0: "client", 1: "server", 2: "dealer"}
    peers = [p for p in range(3) if p != rank]
    sends, recvs = [], {}
    for peer in peers:
        mine = torch.tensor(list(_mac(key, b"gloo", run_id, bytes([rank, peer]))), dtype=torch.uint8)
        sends.append((peer, mine, dist.isend(mine, peer)))
        buf = torch.empty(MAC_BYTES, dtype=torch.uint8)
        recvs[peer] = (buf, dist.irecv(buf, peer))
    wait = timedelta(seconds=timeout_s)
    for peer, (buf, work) in recvs.items():
        try:
            work.wait(timeout=wait)
        except RuntimeError as exc:
            raise RendezvousError(f"{names[rank]}: the {names[peer]} did not confirm its gloo connection within "
                                  f"{timeout_s:g} s ({(str(exc).splitlines() or ['?'])[0]})") from None
        if not hmac.compare_digest(bytes(buf.tolist()), _mac(key, b"gloo", run_id, bytes([peer, rank]))):
            raise RendezvousError(f"{names[rank]}: refused the gloo connection of the {names[peer]}: it could not "
                                  "prove that it knows the run's secret")
    for peer, _, work in sends:
        try:
            work.wait(timeout=wait)
        except RuntimeError as exc:
            raise RendezvousError(f"{names[rank]}: the {names[peer]} did not take its gloo confirmation within "
                                  f"{timeout_s:g} s ({(str(exc).splitlines() or ['?'])[0]})") from None

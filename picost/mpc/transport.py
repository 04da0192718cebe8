"""Counted, time-limited messages between the three parties (gloo point-to-point over TCP).

Ranks: 0 = client, 1 = server, 2 = dealer. Every byte a party sends is added to the op that is
current when it is sent (:meth:`Transport.op`). Online messages go between client and server;
dealer messages (preprocessing) are counted apart as offline bytes.

**Round** (the same definition as in ``protocols/picost-2pc.yaml``): one call of
:meth:`Transport.exchange`, a step in which client and server each send the message of this
step (or one of them sends and the other only receives) and wait for the peer's before going on.
Messages in both directions of the same step count once; the next step depends on them.

Every receive waits at most ``timeout_s``; a dead or silent peer raises :class:`PartyError`
naming the peer and the op, never a hang.
"""

from __future__ import annotations

import os
import signal
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Iterator

import torch
import torch.distributed as dist

CLIENT, SERVER, DEALER = 0, 1, 2
ROLE_NAMES = {CLIENT: "client", SERVER: "server", DEALER: "dealer"}
SETUP_OP = "_setup"
DONE_OP = "_done"
READY_OP = "_ready"


class PartyError(RuntimeError):
    """Another party died, disconnected or stopped answering."""


@dataclass
class OpStats:
    """What one party measured for one op."""

    bytes_sent: int = 0
    """Online bytes this party sent (client <-> server)."""
    rounds: int = 0
    offline_bytes: int = 0
    """Bytes the dealer sent for this op (only the dealer counts them)."""
    setup_bytes: int = 0
    """One-time bytes of the model's setup this party sent (the server's masked weights, sent
    once per model and kept by the client), apart from the inference's online bytes."""
    wall_s: float = 0.0
    """Online wall time (an op's offline rehearsal is not counted)."""


class Transport:
    """One party's end of the network, with per-op byte and round counters."""

    def __init__(self, rank: int, timeout_s: float) -> None:
        self.rank = rank
        self.timeout = timedelta(seconds=timeout_s)
        self.timeout_s = timeout_s
        self.stats: dict[str, OpStats] = {}
        self.current = SETUP_OP
        self.crash_at: str | None = None
        """Tests: the op at which this party kills itself (a real crash, SIGKILL)."""
        self.rehearsal = False
        """Offline rehearsal of the program: online messages are neither sent nor counted."""
        self.expected: list[tuple[tuple[int, ...], torch.dtype]] = []
        """The messages a rehearsal expects from the peer, in order (shape, dtype)."""
        self.posted: deque[tuple[torch.Tensor, Any]] = deque()
        """Receives posted ahead of the online run (:meth:`sync`), consumed in order by :meth:`exchange`."""
        self.record_views = False
        self.views: list[tuple[str, torch.Tensor]] = []
        """With ``record_views``: every online message received, with its op (privacy tests)."""

    @property
    def name(self) -> str:
        return ROLE_NAMES[self.rank]

    def _stats(self) -> OpStats:
        return self.stats.setdefault(self.current, OpStats())

    @contextmanager
    def op(self, name: str) -> Iterator[None]:
        """Attribute everything sent inside the block to op ``name`` (nesting restores)."""
        if name == self.crash_at and not self.rehearsal:
            os.kill(os.getpid(), signal.SIGKILL)
        previous, self.current = self.current, name
        self._stats()
        start = time.perf_counter()
        try:
            yield
        finally:
            if not self.rehearsal:
                self.stats[name].wall_s += time.perf_counter() - start
            self.current = previous

    # -- online: client <-> server -----------------------------------------------------------
    def exchange(self, send: torch.Tensor | None, recv_like: torch.Tensor | None) -> torch.Tensor | None:
        """One round: send ``send`` to the peer (if any) and receive a tensor shaped like
        ``recv_like`` (if any). The dealer takes no part: it gets zeros back."""
        if self.rank == DEALER or self.rehearsal:
            if recv_like is not None:
                self.expect(recv_like)
            return None if recv_like is None else torch.zeros_like(recv_like)
        peer = SERVER if self.rank == CLIENT else CLIENT
        stats = self._stats()
        stats.rounds += 1
        pending = None
        if send is not None:
            send = send.contiguous()
            stats.bytes_sent += send.numel() * send.element_size()
            pending = self._send(send, peer)
        received = None
        if recv_like is not None and self.posted:
            received, work = self.posted.popleft()
            if received.shape != recv_like.shape or received.dtype != recv_like.dtype:
                raise RuntimeError(f"{self.name}: op {self.current} received {tuple(recv_like.shape)} "
                                   f"{recv_like.dtype}, not the rehearsed {tuple(received.shape)} {received.dtype}")
            self._wait(work, peer, "receive")
        elif recv_like is not None:
            received = self._recv(recv_like, peer)
        if received is not None and self.record_views:
            self.views.append((self.current, received.clone()))
        if pending is not None:
            self._wait(pending, peer, "send")
        return received

    def expect(self, like: torch.Tensor) -> None:
        """A rehearsal that skips the computing of a message it will receive online: expect it
        (a receive to post before the online run, as :meth:`exchange` records the others)."""
        if self.rehearsal:
            self.expected.append((tuple(like.shape), like.dtype))

    def sync(self) -> None:
        """Client and server wait for each other (one uncounted word each way, op ``_ready``), and
        each posts its receives of the rehearsed op's messages before (:attr:`expected`): a
        peer's send then finds the receiver's ready notice waiting and costs one one-way delay
        instead of two (gloo sends a message only once the receiver has posted its receive)."""
        previous, self.current = self.current, READY_OP
        word = torch.zeros(1, dtype=torch.int64)
        if self.rank != DEALER:  # the ready word's receive first: receives match in posting order
            peer = SERVER if self.rank == CLIENT else CLIENT
            self.posted.extend(self._post_recv(shape, dtype, peer)
                               for shape, dtype in [(tuple(word.shape), word.dtype), *self.expected])
        self.expected = []
        self.exchange(word, word)
        self.current = previous

    def check_consumed(self) -> None:
        """After an op's online run: every receive posted for it was used."""
        if self.posted:
            raise RuntimeError(f"{self.name}: {len(self.posted)} posted receives left unused after op "
                               f"{self.current}: the online run did not follow the rehearsal")

    def finish(self) -> None:
        """A last step (op ``_done``) so that no party tears the group down while a peer still
        receives: client and server exchange a word, then the server tells the dealer."""
        self.current = DONE_OP
        word = torch.zeros(1, dtype=torch.int64)
        self.exchange(word, word)
        if self.rank == SERVER:
            self._wait(self._send(word, DEALER), DEALER, "send")
        elif self.rank == DEALER:
            self._recv(word, SERVER)

    # -- model setup: server -> client, once per model --------------------------------------
    def setup_send(self, tensor: torch.Tensor) -> None:
        """The server sends the client one-time model material (not muted by a rehearsal)."""
        tensor = tensor.contiguous()
        self._stats().setup_bytes += tensor.numel() * tensor.element_size()
        self._wait(self._send(tensor, CLIENT), CLIENT, "send")

    def setup_recv(self, like: torch.Tensor) -> torch.Tensor:
        """The client receives one-time model material (a view, like an online message)."""
        received = self._recv(like, SERVER)
        if self.record_views:
            self.views.append((self.current, received.clone()))
        return received

    # -- offline: dealer -> parties ----------------------------------------------------------
    def offline_send(self, tensor: torch.Tensor, dst: int) -> None:
        tensor = tensor.contiguous()
        self._stats().offline_bytes += tensor.numel() * tensor.element_size()
        self._wait(self._send(tensor, dst), dst, "send")

    def offline_recv(self, like: torch.Tensor) -> torch.Tensor:
        return self._recv(like, DEALER)

    # -- the wire (gloo); tests substitute in-process queues -----------------------------------
    def _send(self, tensor: torch.Tensor, peer: int) -> Any:
        try:
            return dist.isend(tensor, peer)
        except RuntimeError:  # the pair was closed by an earlier failure or by the peer
            raise PartyError(f"{self.name}: the {ROLE_NAMES[peer]} closed the connection (it died or failed) "
                             f"(send during op {self.current})") from None

    def _recv(self, like: torch.Tensor, peer: int) -> torch.Tensor:
        buf, work = self._post_recv(tuple(like.shape), like.dtype, peer)
        self._wait(work, peer, "receive")
        return buf

    def _post_recv(self, shape: tuple[int, ...], dtype: torch.dtype, peer: int) -> tuple[torch.Tensor, Any]:
        """Post a receive of a ``shape`` ``dtype`` tensor from ``peer``: the buffer and its pending work."""
        buf = torch.empty(shape, dtype=dtype)
        try:
            return buf, dist.irecv(buf, peer)
        except RuntimeError:
            raise PartyError(f"{self.name}: the {ROLE_NAMES[peer]} closed the connection (it died or failed) "
                             f"(receive during op {self.current})") from None

    def _wait(self, work: Any, peer: int, what: str) -> None:
        try:
            work.wait(timeout=self.timeout)
        except RuntimeError as exc:
            text = str(exc)
            if "imed out" in text:
                reason = f"did not answer within {self.timeout_s:g} s"
            else:
                reason = "closed the connection (it died or failed)"
            raise PartyError(f"{self.name}: the {ROLE_NAMES[peer]} {reason} "
                             f"({what} during op {self.current})") from None


_rendezvous: list[Any] = []
"""What :func:`close` ends besides the gloo group: the client's rendezvous listener, a party's
connection to it."""


def init(rank: int, host: str, port: int, timeout_s: float, connect_timeout_s: float = 120.0,
         nonce: str | None = None) -> Transport:
    """Join the three-party gloo group at ``host:port`` (rank 0's address) and return the
    transport. Joining waits at most ``connect_timeout_s`` for the other parties to start;
    afterwards every message wait is bounded by ``timeout_s``.

    ``nonce`` is the run's secret (from the launcher through the job, or the job file of a
    multi-host run); it never goes over the wire. Rank 0 hosts the authenticated rendezvous
    (:mod:`picost.mpc.rendezvous`) on ``host:port``, that address only; the server and the dealer
    join it with a mutual HMAC challenge-response keyed by the secret, so a party of another run,
    or any other program on the port, is refused with a clear message and never joins (the
    client logs one line per refused connection and goes on). Once gloo has formed its group,
    every gloo connection is confirmed with a MAC under the same key."""
    from picost.mpc import rendezvous

    if not nonce:
        raise PartyError(f"{ROLE_NAMES[rank]}: the job has no 'nonce' (the run's secret); every party of a run "
                         "needs the same one")
    key = rendezvous.run_key(nonce)
    where = f"{host}:{port}"
    wait_s = max(timeout_s, connect_timeout_s)
    if rank == CLIENT:
        try:
            rdv = rendezvous.Host(host, port, key, max_wait_s=connect_timeout_s)
        except (OSError, ValueError, UnicodeError) as exc:
            raise PartyError(f"client: cannot host the rendezvous at {where}: the port is in use (another run "
                             f"or program) or the address is not local ({exc.strerror or exc})"
                             if isinstance(exc, OSError) else
                             f"client: cannot host the rendezvous at {where} ({exc})") from None
        store: Any = rdv.store(connect_timeout_s)  # gloo's waits for the others' addresses: joining
        run_id = rdv.run_id
    else:
        try:
            rdv, run_id = rendezvous.join(host, port, rank, key, connect_timeout_s, connect_timeout_s)
        except rendezvous.RendezvousError as exc:
            raise PartyError(str(exc)) from None
        store = rdv
    _rendezvous.append(rdv)
    try:
        dist.init_process_group("gloo", store=store, rank=rank, world_size=3, timeout=timedelta(seconds=wait_s))
    except RuntimeError as exc:
        close()
        raise PartyError(f"{ROLE_NAMES[rank]}: could not reach the other parties at {where} "
                         f"within {connect_timeout_s:g} s ({(str(exc).splitlines() or ['?'])[0]})") from None
    try:
        rendezvous.confirm_peers(rank, key, run_id, wait_s)
    except rendezvous.RendezvousError as exc:
        close()
        raise PartyError(str(exc)) from None
    return Transport(rank, timeout_s)


def close() -> None:
    """Leave the gloo group and end the rendezvous (the client's listener, a party's connection)."""
    try:
        if dist.is_initialized():
            dist.destroy_process_group()
    finally:
        while _rendezvous:
            _rendezvous.pop().close()

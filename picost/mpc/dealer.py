"""Correlated randomness from the dealer (the preprocessing / offline phase).

The dealer runs the same oblivious program as the two parties, so all three know every shape.
It shares one PRG seed with each party (sent once, op ``_setup``). Then:

* :meth:`Correlations.random` -- a uniform value ``v = v0 + v1``: each party draws its share
  from its PRG, the dealer draws both; nothing is sent.
* :meth:`Correlations.private` -- a uniform value one party knows in full (e.g. the masks of a
  product with the server's weights); drawn from that party's PRG, nothing sent.
* :meth:`Correlations.correlated` -- a value the dealer computes from the above: the client's
  share comes from its PRG, the dealer sends the server its share ``v - v0`` (residues mod a
  small modulus packed, e.g. five mod-3 shares to a byte, and kept packed). These are the only
  offline bytes.

**Offline, then online.** The parties first rehearse the program (:meth:`Correlations.record`,
with :attr:`Transport.rehearsal` muting the online messages): every value they draw or receive
from the dealer goes on a tape. The online run then replays the tape, so its wall time is online
time only.

``torch.Generator`` (Mersenne Twister) stands in for a cryptographic PRG: enough to measure
costs and test correctness, not a secure implementation.
"""

from __future__ import annotations

import os
from collections import deque
from typing import Callable

import torch

from picost.mpc import ring
from picost.mpc.transport import CLIENT, DEALER, SERVER, Transport


class Correlations:
    """One party's (or the dealer's) source of correlated randomness."""

    def __init__(self, tx: Transport) -> None:
        self.tx = tx
        self.role = tx.rank
        seeds = torch.zeros(2, dtype=torch.int64)
        if self.role == DEALER:
            seeds = torch.tensor([int.from_bytes(os.urandom(7), "little") for _ in range(2)], dtype=torch.int64)
            tx.offline_send(seeds[0:1], CLIENT)
            tx.offline_send(seeds[1:2], SERVER)
            self.gens = {p: torch.Generator().manual_seed(int(seeds[p])) for p in (CLIENT, SERVER)}
        else:
            seed = int(tx.offline_recv(torch.zeros(1, dtype=torch.int64))[0])
            self.gens = {self.role: torch.Generator().manual_seed(seed)}
        self.mode = "live"
        self.tape: deque[torch.Tensor] = deque()

    def record(self) -> None:
        """Parties: keep every value drawn or received from now on (the offline rehearsal)."""
        self.mode, self.tape = "record", deque()

    def replay(self) -> None:
        """Parties: hand out the recorded values again, in order (the online run)."""
        self.mode = "replay"

    def live(self) -> None:
        """Back to drawing and receiving on demand; the tape must have been used up."""
        if self.tape:
            raise RuntimeError(f"{len(self.tape)} preprocessed values left unused: the online run "
                               "did not follow the rehearsed program")
        self.mode = "live"

    def _party_value(self, make: Callable[[], torch.Tensor]) -> torch.Tensor:
        if self.mode == "replay":
            return self.tape.popleft()
        value = make()
        if self.mode == "record":
            self.tape.append(value)
        return value

    @property
    def is_dealer(self) -> bool:
        return self.role == DEALER

    def _draw(self, party: int, shape: tuple[int, ...], mod: int | None) -> torch.Tensor:
        gen = self.gens[party]
        return ring.uniform(shape, gen) if mod is None else ring.uniform_mod(shape, mod, gen)

    def random(self, shape: tuple[int, ...], mod: int | None = None) -> torch.Tensor:
        """A party's share of a uniform value; the dealer gets the value itself."""
        if not self.is_dealer:
            return self._party_value(lambda: self._draw(self.role, shape, mod))
        v0, v1 = self._draw(CLIENT, shape, mod), self._draw(SERVER, shape, mod)
        return v0 + v1 if mod is None else (v0 + v1) % mod

    def private(self, owner: int, shape: tuple[int, ...]) -> torch.Tensor | None:
        """A uniform value known in full to ``owner`` and the dealer (None for the other party)."""
        if self.is_dealer:
            return self._draw(owner, shape, None)
        if self.role == owner:
            return self._party_value(lambda: self._draw(owner, shape, None))
        return None

    def correlated(self, shape: tuple[int, ...], value: Callable[[], torch.Tensor],
                   mod: int | None = None) -> torch.Tensor:
        """A party's share of ``value()`` (computed by the dealer only); the dealer gets the value.
        Residues mod ``mod`` come packed along the last dimension (:func:`ring.pack_residues`;
        read them with :func:`ring.residues_at`): so they travel and so they are kept."""
        if self.role == CLIENT:
            return self._party_value(lambda: _packed(self._draw(CLIENT, shape, mod), mod))
        if self.role == SERVER:
            return self._party_value(lambda: self._receive(shape, mod))
        v = value()
        assert tuple(v.shape) == tuple(shape), (v.shape, shape)
        v0 = self._draw(CLIENT, shape, mod)
        v1 = v - v0 if mod is None else (v + (mod - v0)) % mod  # uint8: v, v0 < mod
        self.tx.offline_send(_packed(v1, mod), SERVER)
        return _packed(v, mod)

    def _receive(self, shape: tuple[int, ...], mod: int | None) -> torch.Tensor:
        """The server's share of a correlated value, as the dealer sends it."""
        if mod is None:
            return self.tx.offline_recv(torch.zeros(shape, dtype=torch.int64))
        groups = -(-shape[-1] // ring.residues_per_byte(mod))
        return self.tx.offline_recv(torch.zeros(shape[:-1] + (groups,), dtype=torch.uint8))


def _packed(v: torch.Tensor, mod: int | None) -> torch.Tensor:
    """Ring elements as they are; residues mod ``mod`` packed (:func:`ring.pack_residues`)."""
    return v if mod is None else ring.pack_residues(v, mod)

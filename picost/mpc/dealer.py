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
  offline bytes. :meth:`Correlations.keyed_rows` makes a large one (a table read at a few
  places per row) in chunks, so that no process builds more than :data:`CHUNK_BYTES` of it at
  once, with a random-access client share: the client keeps nothing.
* :meth:`Correlations.weight_mask` -- model-time material: the mask ``B`` of one of the server's
  weights, drawn from a generator that the dealer and the server derive from a model seed and
  the weight's key. The server sends the client ``W - B`` once per model (counted as the op's
  setup bytes); the client keeps it for every later inference (:meth:`Correlations.new_model`
  starts over).

**Streamed: offline, then online, op by op.** Before each op (``ops_exec.stage``) the parties
rehearse it (:meth:`Correlations.record`, with :attr:`Transport.rehearsal` muting the online
messages): every value they draw or receive from the dealer, or precompute from it
(:meth:`Correlations.local`), goes on a tape. The op's online run then replays the tape, so its
wall time is online time only, and no party holds more than one op's material: the dealer runs
the program once, in step with the server's rehearsals.

``torch.Generator`` (Mersenne Twister) stands in for a cryptographic PRG: enough to measure
costs and test correctness, not a secure implementation.
"""

from __future__ import annotations

import hashlib
import os
from collections import deque
from typing import Callable

import torch

from picost.mpc import ring
from picost.mpc.transport import CLIENT, DEALER, SERVER, Transport

CHUNK_BYTES = 1 << 24
"""Largest piece (bytes, as int64) of a correlated value built at once by :meth:`Correlations.keyed_rows`."""


class Correlations:
    """One party's (or the dealer's) source of correlated randomness."""

    def __init__(self, tx: Transport) -> None:
        self.tx = tx
        self.role = tx.rank
        self.model_seed = 0
        """Shared by the dealer and the server: the seed of the weights' masks."""
        if self.role == DEALER:
            seeds = torch.tensor([int.from_bytes(os.urandom(7), "little") for _ in range(3)], dtype=torch.int64)
            tx.offline_send(seeds[0:1], CLIENT)
            tx.offline_send(seeds[1:3], SERVER)
            self.gens = {p: torch.Generator().manual_seed(int(seeds[p])) for p in (CLIENT, SERVER)}
            self.model_seed = int(seeds[2])
        elif self.role == SERVER:
            seeds = tx.offline_recv(torch.zeros(2, dtype=torch.int64))
            self.gens = {SERVER: torch.Generator().manual_seed(int(seeds[0]))}
            self.model_seed = int(seeds[1])
        else:
            seed = int(tx.offline_recv(torch.zeros(1, dtype=torch.int64))[0])
            self.gens = {CLIENT: torch.Generator().manual_seed(seed)}
        self.mode = "live"
        self.tape: deque[torch.Tensor] = deque()
        self.masked_weights: dict[str, torch.Tensor | None] = {}
        """Keys of the weights set up for this model: the client keeps ``W - B``, the server None."""

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

    def new_model(self) -> None:
        """Forget the model's masked weights: the next use of each weight sets it up again."""
        self.masked_weights = {}

    def local(self, make: Callable[[], torch.Tensor]) -> torch.Tensor:
        """A party's own value computed from preprocessed material only: precomputed during the
        rehearsal and taped like the material itself (offline work, not online)."""
        return self._party_value(make)

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
        if mod is None:
            return v0 + v1
        return v0 ^ v1 if mod == 2 else (v0 + v1) % mod

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
        self.tx.offline_send(_packed(_other_share(v, self._draw(CLIENT, shape, mod), mod), mod), SERVER)
        return _packed(v, mod)

    def keyed_rows(self, rows: int, row_len: int, rows_value: Callable[[int, int], torch.Tensor],
                   mod: int | None = None) -> "RowShares":
        """A large correlated value (``rows`` x ``row_len``; ``rows_value(lo, hi)`` computes rows
        ``lo:hi``, dealer only; bits, ``mod`` 2, as (hi - lo, row_len / 64) int64 words, bit ``p mod
        64`` of word ``p // 64``) that the parties read only at a few positions per row. The
        client's share is random-access (:func:`ring.hashed` under a key from its PRG): it keeps
        nothing and computes its shares where it reads them. The dealer builds the value in
        chunks of at most :data:`CHUNK_BYTES` (as int64) and sends the server its share of each
        (packed when ``mod``): the same offline bytes as :meth:`correlated`."""
        if self.role == CLIENT:
            return RowShares(row_len, mod, key=int(self._party_value(lambda: self._draw(CLIENT, (1,), None))[0]))
        step = max(1, CHUNK_BYTES // (8 * row_len))
        bounds = [(lo, min(lo + step, rows)) for lo in range(0, rows, step)]
        if self.role == SERVER:
            return RowShares(row_len, mod, pieces=[self._party_value(lambda lo=lo, hi=hi: self._receive((hi - lo, row_len), mod))
                                                    for lo, hi in bounds])
        key = int(self._draw(CLIENT, (1,), None)[0])  # the dealer: the client's key, from its PRG
        for lo, hi in bounds:
            if mod == 2:  # bits, given as 64-bit words: the client's share is the hash words
                assert row_len % 64 == 0, row_len
                v0 = ring.hashed_words(key, lo * row_len // 64, (hi - lo) * row_len // 64).view(hi - lo, -1)
                self.tx.offline_send((rows_value(lo, hi) ^ v0).view(torch.uint8), SERVER)
                continue
            v = rows_value(lo, hi).reshape(hi - lo, row_len)
            v0 = ring.hashed_range(key, lo * row_len, (hi - lo) * row_len, mod).view(hi - lo, row_len)
            self.tx.offline_send(_packed(_other_share(v, v0, mod), mod), SERVER)
        return RowShares(row_len, mod)

    def weight_mask(self, key: str, w: torch.Tensor | None, shape: tuple[int, ...]) -> torch.Tensor | None:
        """Model-time masking of the server's weight ``w`` (shape ``shape``; ``key`` names it in the
        model). Dealer: the mask ``B``. Server: sends ``w - B`` to the client the first time
        (setup bytes), returns None. Client: ``w - B``, received the first time and kept."""
        if self.role == CLIENT:
            if key not in self.masked_weights:
                self.masked_weights[key] = self.tx.setup_recv(torch.zeros(shape, dtype=torch.int64))
            return self.masked_weights[key]
        if self.role == SERVER and key in self.masked_weights:
            return None
        digest = hashlib.sha256(f"{self.model_seed}:{key}".encode()).digest()
        mask = ring.uniform(shape, torch.Generator().manual_seed(int.from_bytes(digest[:7], "little")))
        if self.role == SERVER:
            assert w is not None and tuple(w.shape) == tuple(shape), (key, shape)
            self.tx.setup_send(w - mask)
            self.masked_weights[key] = None
            return None
        return mask

    def _receive(self, shape: tuple[int, ...], mod: int | None) -> torch.Tensor:
        """The server's share of a correlated value, as the dealer sends it."""
        if mod is None:
            return self.tx.offline_recv(torch.zeros(shape, dtype=torch.int64))
        groups = -(-shape[-1] // ring.residues_per_byte(mod))
        return self.tx.offline_recv(torch.zeros(shape[:-1] + (groups,), dtype=torch.uint8))


def _other_share(v: torch.Tensor, v0: torch.Tensor, mod: int | None) -> torch.Tensor:
    """The server's share of ``v`` given the client's ``v0``: ``v - v0`` in the ring, or mod ``mod``
    (uint8: v, v0 < mod)."""
    if mod is None:
        return v - v0
    return v ^ v0 if mod == 2 else (v + (mod - v0)) % mod


def _packed(v: torch.Tensor, mod: int | None) -> torch.Tensor:
    """Ring elements as they are; residues mod ``mod`` packed (:func:`ring.pack_residues`)."""
    return v if mod is None else ring.pack_residues(v, mod)


class RowShares:
    """A party's share of a :meth:`Correlations.keyed_rows` value, read with :meth:`at`: the
    client's from its key, the server's from the received chunks, the dealer's zeros."""

    def __init__(self, row_len: int, mod: int | None, key: int | None = None,
                 pieces: list[torch.Tensor] | None = None) -> None:
        self.row_len, self.mod, self.key, self.pieces = row_len, mod, key, pieces

    def words(self, rows: int) -> torch.Tensor:
        """Bits (``mod`` 2, rows of whole 64-bit words): a party's share of the ``rows`` rows as
        64-bit words (rows, row_len / 64), bit ``p mod 64`` of word ``p // 64`` of a row being its
        bit ``p``. The client hashes its words (:func:`ring.hashed_words`: one hash per 64 bits,
        however often they are read), the server reads the received bytes as words, the dealer
        gets zeros."""
        assert self.mod == 2 and self.row_len % 64 == 0, (self.mod, self.row_len)
        if self.key is not None:
            return ring.hashed_words(self.key, 0, rows * self.row_len // 64).view(rows, -1)
        if self.pieces is None:
            return torch.zeros((rows, self.row_len // 64), dtype=torch.int64)
        return torch.cat(self.pieces).view(torch.int64)  # packed little-endian bytes, as hashed_words'

    def at(self, index: torch.Tensor) -> torch.Tensor:
        """The shares at ``index`` (rows x m positions within each row): rows x m values (ring
        elements or residues; bits are read as :meth:`words`)."""
        rows = index.shape[0]
        if self.key is not None:
            return ring.hashed(self.key, torch.arange(rows).unsqueeze(1) * self.row_len + index, self.mod)
        if self.pieces is None:
            return torch.zeros(tuple(index.shape), dtype=torch.int64 if self.mod is None else torch.uint8)
        parts = index.split([len(p) for p in self.pieces])
        if self.mod is None:
            return torch.cat([torch.gather(p, 1, i) for p, i in zip(self.pieces, parts)])
        return torch.cat([ring.residues_at(p, self.mod, i) for p, i in zip(self.pieces, parts)])

"""The parts of a protocol table that derivations need as well as the loader: the ``setting`` (who
runs the protocol, over what numbers) and an op kind's :class:`Entry` (its formulas and source),
with the dimension symbols each entry may use. :mod:`picost.cost.protocol_table` loads them from a
file; :mod:`picost.cost.derived_entries` builds entries from a table's own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from picost.cost import formula
from picost.model.ops import KINDS

TRUNCATION = "truncation"
"""The pseudo-kind that costs rescaling after fixed-point products (``n`` = elements)."""

#: Dimension symbols usable in the formulas of each entry.
ENTRY_SYMBOLS: dict[str, tuple[str, ...]] = {**{k: v.dims for k, v in KINDS.items()}, TRUNCATION: ("n",)}
ALL_DIMS = frozenset(s for dims in ENTRY_SYMBOLS.values() for s in dims)
"""Every dimension symbol of any kind: no table parameter may take one of these names."""

SHARINGS = ("plaintext", "additive", "replicated", "he")
"""How activations are held between ops (``setting.sharing``): see :attr:`Setting.shares`."""
TRANSFERS = ("serial", "parallel")
"""How an op's bytes cross the network (``setting.transfer``): see :attr:`Setting.transfer`."""


@dataclass(frozen=True)
class Setting:
    """Who runs the protocol and over what numbers."""

    parties: int
    """1 means no protocol (the plaintext baseline)."""
    threat_model: str
    correlated_randomness: str
    ring_bits: int | None = None
    fractional_bits: int | None = None
    he: Mapping[str, Any] = field(default_factory=dict)
    delays_per_round: int = 1
    """One-way network delays one round costs in this protocol's implementation: 1 when a
    message is sent as soon as it is ready; 2 when a transport first waits for the receiver's
    ready notice (gloo's point-to-point sends do; see docs/latency-model.md)."""
    sharing: str | None = None
    """How activations are held between ops, when the table says (``setting.sharing``)."""
    transfer: str = "serial"
    """How an op's bytes cross the network: ``serial``, all through one pipe (the parties take
    turns; the conservative reading), or ``parallel``, spread evenly over the parties' incoming
    links, which carry them at the same time (each party sends its share of a symmetric exchange
    at once): see docs/latency-model.md."""

    @property
    def transfer_links(self) -> int:
        """Links that carry an op's bytes at the same time: 1 (serial) or the party count (parallel)."""
        return self.parties if self.transfer == "parallel" and self.parties > 1 else 1

    @property
    def shares(self) -> str:
        """How activations are held between ops: the table's ``sharing``, else by party count
        (1: plaintext, 2: additive shares, 3: replicated shares)."""
        return self.sharing or {1: "plaintext", 2: "additive", 3: "replicated"}[self.parties]

    def summary(self) -> str:
        parts = [f"{self.parties}PC" if self.parties > 1 else "no protocol", self.threat_model]
        if self.correlated_randomness != "none":
            parts.append(f"randomness: {self.correlated_randomness}")
        if self.ring_bits is not None:
            ring = f"Z_2^{self.ring_bits}"
            if self.fractional_bits is not None:
                ring += f" f={self.fractional_bits}"
            parts.append(ring)
        if self.he:
            parts.append("HE " + " ".join(f"{k}={v}" for k, v in self.he.items()))
        if self.transfer_links > 1:
            parts.append(f"bytes over {self.transfer_links} links at once")
        return ", ".join(parts)


@dataclass(frozen=True)
class Entry:
    """The costs of one op kind (or ``truncation``) under a table."""

    kind: str
    formulas: Mapping[str, formula.Formula]
    """Present formula fields only (see :data:`picost.cost.protocol_table.FORMULA_FIELDS`)."""
    includes_truncation: bool
    source: str
    notes: str | None
    line: int | None
    field_lines: Mapping[str, int | None] = field(default_factory=dict)
    """Line of each formula field, for located evaluation errors."""
    where: str = ""
    """Where the entry is written: ``ops.relu``, or ``options.gelu.choices.stock.ops.gelu``."""
    symbols: tuple[str, ...] = ()
    """Its formulas' dimension symbols when not an op kind's (a conversion step's); else the kind's."""
    compute_source: str | None = None
    """Where ``compute_s`` comes from, when not from ``source`` (a measured run: the machine it ran on)."""
    compute_scaling: Any = None
    """How ``compute_s`` scales with cores (:class:`picost.cost.machine.Scaling`), where measured."""
    compute_range: Any = None
    """``(size formula, largest measured size)``: the sizes ``compute_s`` was fitted over, where stated.
    A row whose size is beyond it is extrapolated (the estimate says by how much)."""

    @property
    def dims(self) -> tuple[str, ...]:
        return self.symbols or ENTRY_SYMBOLS[self.kind]

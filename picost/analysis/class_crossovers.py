"""Where one op class overtakes another as the context grows: every context T, up to a bound, at
which a class's communication (bytes) or latency (seconds) passes another's, per protocol (and,
for latency, per network).

Read off a context sweep (:func:`picost.analysis.sweep.sweep`) at every whole T from 1 to
``max_context``, so formulas with ``ceil``, ``log2``, regime switches and searches need no
algebra: a crossover is a T at which ``a(T) > b(T)`` while ``a(T - 1) <= b(T - 1)`` (a class can
overtake another, fall back and overtake it again; each time is listed). Bytes do not depend on
the network, so byte crossovers are listed once per protocol.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from picost.analysis.sweep import sweep
from picost.errors import UserError
from picost.model.limits import MAX_SWEEP_POINTS

if TYPE_CHECKING:
    from picost.cost.network import Network
    from picost.cost.protocol_table import ProtocolTable
    from picost.model.spec import ModelSpec

QUANTITIES = {"comm_bytes": "bytes", "latency_s": "latency"}
DEFAULT_MAX_CONTEXT = 16_384


@dataclass(frozen=True)
class ClassCrossover:
    """At ``context`` tokens, ``over`` first exceeds ``under`` in ``quantity`` (``comm_bytes`` or
    ``latency_s``) after being at most it at ``context - 1``; ``network`` is None for bytes.
    ``over_value``/``under_value``: both at ``context`` (bytes or seconds)."""

    protocol: str
    network: str | None
    quantity: str
    over: str
    under: str
    context: int
    over_value: float
    under_value: float


def class_crossovers(spec: "ModelSpec", tables: Sequence["ProtocolTable"], networks: Sequence["Network"],
                     max_context: int = DEFAULT_MAX_CONTEXT, allow_uncosted: bool = False) -> list[ClassCrossover]:
    """Every crossover between two op classes at T = 2 .. ``max_context`` (module docstring),
    ordered by protocol, quantity, network and T (uncosted rows, where allowed, count nothing)."""
    import numpy as np

    if isinstance(max_context, bool) or not isinstance(max_context, int) or not 2 <= max_context <= MAX_SWEEP_POINTS:
        raise UserError(f"--max-context must be a whole number from 2 to {MAX_SWEEP_POINTS:,} (got {max_context!r})",
                        field="--max-context")
    if len(tables) * len(networks) * max_context > MAX_SWEEP_POINTS * 10:
        raise UserError("protocols x networks x contexts too many for one run; give fewer (see docs/limits.md)",
                        field="--max-context")
    result = sweep(spec, list(range(1, max_context + 1)), tables, networks, allow_uncosted)
    # bytes do not depend on the network: once per protocol, from its first network's points
    curves = [(table, net if quantity == "latency_s" else None, quantity)
              for table in tables for quantity in QUANTITIES
              for net in (networks if quantity == "latency_s" else networks[:1])]
    out: list[ClassCrossover] = []
    for table, net, quantity in curves:
        at = np.flatnonzero((result.protocol == table.label) & (result.network == (net or networks[0]).name))
        T, values = result.context[at], {c: result.by_class[c][quantity][at] for c in result.classes}
        for a, b in itertools.permutations(result.classes, 2):
            ahead = values[a] > values[b]
            out += [ClassCrossover(table.label, net.name if net else None, quantity, a, b, int(T[i]),
                                   float(values[a][i]), float(values[b][i]))
                    for i in np.flatnonzero(ahead[1:] & ~ahead[:-1]) + 1]
    order = {t.label: i for i, t in enumerate(tables)}
    return sorted(out, key=lambda x: (order[x.protocol], list(QUANTITIES).index(x.quantity), x.network or "",
                                      x.context, x.over, x.under))

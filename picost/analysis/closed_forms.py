"""Closed forms of a model's costs under a protocol: per op class, sympy expressions in ``T``
(and, on request, the layer count ``L`` and the width ``d``).

The model is lowered with symbolic sizes; each row's cost formulas
(:func:`picost.analysis.estimate.cost_expressions`) are summed per op class (``truncation``
rows apart) and per field: ``comm_bytes`` (bytes, both directions), ``rounds``, ``compute_s``
(seconds). Latency follows the estimate's model (``docs/latency-model.md``)::

    latency_s = compute_s + comm_bytes * 8 / (bandwidth_bps * transfer_links) + rounds * delays_per_round * round_s

With ``d`` symbolic, head_dim = d / n_heads and the FFN width keeps its ratio to d (as in
:func:`picost.model.flops.symbolic_flops`); with ``L`` symbolic, the ops outside the blocks count once,
a layer with an FFN ``L - n_pruned`` times and a pruned layer ``n_pruned`` times.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

from picost.errors import UserError
from picost.cost.network import Network

if TYPE_CHECKING:
    from picost.model.ops import Op
    from picost.cost.protocol_table import ProtocolTable
    from picost.model.spec import ModelSpec

COST_FIELDS = ("comm_bytes", "rounds", "compute_s")
FORM_FIELDS = COST_FIELDS + ("flops",)
"""Fields of :attr:`ClassForms.forms`: the costs, and FLOPs (of every op, costed or not)."""
SYMBOLS = ("T", "L", "d")


def context_symbol() -> Any:
    """The symbol ``T`` (positive integer) in which sweeps and closed forms are written."""
    import sympy

    return sympy.Symbol("T", positive=True, integer=True)


@dataclass(frozen=True)
class ClassForms:
    """Per op class, per field of :data:`FORM_FIELDS`, a sympy expression (bytes, rounds,
    seconds, FLOPs).
    ``uncosted``: rows the table cannot cost (only with ``allow_uncosted``; left out)."""

    spec_name: str
    protocol: str
    T: Any
    forms: dict[str, dict[str, Any]]
    uncosted: tuple[str, ...] = ()
    costed_classes: tuple[str, ...] = ()
    """Classes with at least one costed row (a class of uncosted ops only has FLOPs here)."""
    delays_per_round: int = 1
    """Network delays one round costs (the protocol setting's ``delays_per_round``)."""
    transfer_links: int = 1
    """Links carrying the bytes at once (the protocol setting's :attr:`transfer_links`)."""

    def total(self, field_name: str, classes: Iterable[str] | None = None) -> Any:
        """Sum of ``field_name`` over ``classes`` (default: all)."""
        import sympy

        chosen = self.forms if classes is None else [c for c in classes if c in self.forms]
        return sympy.Add(*(self.forms[c][field_name] for c in chosen))

    def transfer_s(self, network: Network, classes: Iterable[str] | None = None) -> Any:
        """Seconds spent moving bytes: comm_bytes * 8 / (bandwidth * transfer_links)."""
        import sympy

        return self.total("comm_bytes", classes) * 8 / (sympy.nsimplify(network.bandwidth_bps) * self.transfer_links)

    def round_delay_s(self, network: Network, classes: Iterable[str] | None = None) -> Any:
        """Seconds spent waiting on rounds: rounds * delays_per_round * round_s."""
        import sympy

        return self.total("rounds", classes) * self.delays_per_round * sympy.nsimplify(network.round_s)

    def latency(self, network: Network, classes: Iterable[str] | None = None) -> Any:
        """Latency in seconds of ``classes`` (default: all) over ``network``."""
        return self.total("compute_s", classes) + self.transfer_s(network, classes) + self.round_delay_s(
            network, classes)


def class_forms(spec: "ModelSpec", table: "ProtocolTable", allow_uncosted: bool = False,
                symbols: Iterable[str] = ("T",), verify_at: Iterable[int] | None = None) -> ClassForms:
    """Lower ``spec`` with the chosen symbolic sizes and sum its rows' costs per op class.

    First the estimate's own check runs at the contexts ``verify_at`` (default: the spec's
    ``context_length``), so that closed forms refuse exactly the tables the estimate refuses."""
    import sympy

    from picost.analysis.estimate import ROW_CLASSES, cost_expressions, verify_point

    for T_check in (spec.context_length,) if verify_at is None else verify_at:
        verify_point(spec, table, T_check, allow_uncosted)

    chosen = set(symbols)
    if chosen - set(SYMBOLS):
        raise UserError(f"unknown symbol(s) {sorted(chosen - set(SYMBOLS))}; choose from {', '.join(SYMBOLS)}",
                        field="--symbols")
    T = context_symbol() if "T" in chosen else spec.context_length
    terms: dict[str, dict[str, list[Any]]] = {}
    uncosted: list[str] = []
    costed: set[str] = set()
    weighted = _weighted_ops(spec, T, chosen)
    for op, weight in weighted:
        terms.setdefault(op.op_class, {f: [] for f in FORM_FIELDS})["flops"].append(weight * op.flops)
    weights = {op.name: weight for op, weight in weighted}
    for row in cost_expressions([op for op, _ in weighted], table, allow_uncosted):
        if row.exprs is None:
            uncosted.append(row.name)
            continue
        costed.add(row.op_class)
        per_field = terms.setdefault(row.op_class, {f: [] for f in FORM_FIELDS})
        for f in COST_FIELDS:
            if f in row.exprs:
                per_field[f].append(weights[row.op.name] * row.exprs[f])
    forms = {c: {f: sympy.expand(sympy.Add(*ts)) if chosen - {"T"} else sympy.Add(*ts)
                 for f, ts in terms[c].items()} for c in ROW_CLASSES if c in terms}
    return ClassForms(spec.name, table.label, T, forms, tuple(uncosted), tuple(c for c in forms if c in costed),
                      table.setting.delays_per_round, table.setting.transfer_links)


def _weighted_ops(spec: "ModelSpec", T: Any, chosen: set[str]) -> list[tuple["Op", Any]]:
    """The ops to cost, each with how many times it counts (1, or a layer count in ``L``)."""
    import sympy

    from picost.model.lower import lower_symbolic

    ops = lower_symbolic(spec, T, sympy.Symbol("d", positive=True, integer=True) if "d" in chosen else None).ops
    if "L" not in chosen:
        return [(op, 1) for op in ops]
    L = sympy.Symbol("L", positive=True, integer=True)
    pruned = spec.pruned_ffn_layers
    full = next((i for i in range(spec.n_layers) if i not in pruned), None)
    bare = min(pruned) if pruned else None
    n_bare = L - spec.ffn.pruned_from_layer if spec.ffn.pruned_from_layer is not None else len(pruned)
    weights = {full: L - n_bare, bare: n_bare}
    return [(op, 1 if op.layer is None else weights[op.layer]) for op in ops
            if op.layer is None or op.layer in (full, bare)]


"""Closed forms of a model's costs under a protocol: per op class, sympy expressions in ``T``
(and, on request, the layer count ``L`` and the width ``d``).

The model is lowered with symbolic sizes; each row's cost formulas
(:meth:`~picost.protocols.ProtocolTable.cost_exprs`) are summed per op class (``truncation``
rows apart) and per field: ``comm_bytes`` (bytes, both directions), ``rounds``, ``compute_s``
(seconds). Latency follows the estimate's model (``docs/latency-model.md``)::

    latency_s = compute_s + comm_bytes * 8 / bandwidth_bps + rounds * round_s

With ``d`` symbolic, head_dim = d / n_heads and the FFN width keeps its ratio to d (as in
:func:`picost.flops.symbolic_flops`); with ``L`` symbolic, the ops outside the blocks count once,
a layer with an FFN ``L - n_pruned`` times and a pruned layer ``n_pruned`` times.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

from picost.errors import UserError
from picost.network import Network

if TYPE_CHECKING:
    from picost.ops import Op
    from picost.protocols import ProtocolTable
    from picost.spec import ModelSpec

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

    def total(self, field_name: str, classes: Iterable[str] | None = None) -> Any:
        """Sum of ``field_name`` over ``classes`` (default: all)."""
        import sympy

        chosen = self.forms if classes is None else [c for c in classes if c in self.forms]
        return sympy.Add(*(self.forms[c][field_name] for c in chosen))

    def transfer_s(self, network: Network, classes: Iterable[str] | None = None) -> Any:
        """Seconds spent moving bytes: comm_bytes * 8 / bandwidth."""
        import sympy

        return self.total("comm_bytes", classes) * 8 / sympy.nsimplify(network.bandwidth_bps)

    def round_delay_s(self, network: Network, classes: Iterable[str] | None = None) -> Any:
        """Seconds spent waiting on rounds: rounds * round_s."""
        import sympy

        return self.total("rounds", classes) * sympy.nsimplify(network.round_s)

    def latency(self, network: Network, classes: Iterable[str] | None = None) -> Any:
        """Latency in seconds of ``classes`` (default: all) over ``network``."""
        return self.total("compute_s", classes) + self.transfer_s(network, classes) + self.round_delay_s(
            network, classes)


def class_forms(spec: "ModelSpec", table: "ProtocolTable", allow_uncosted: bool = False,
                symbols: Iterable[str] = ("T",)) -> ClassForms:
    """Lower ``spec`` with the chosen symbolic sizes and sum its rows' costs per op class."""
    import sympy

    from picost.protocols import TRUNCATION

    chosen = set(symbols)
    if chosen - set(SYMBOLS):
        raise UserError(f"unknown symbol(s) {sorted(chosen - set(SYMBOLS))}; choose from {', '.join(SYMBOLS)}",
                        field="--symbols")
    T = context_symbol() if "T" in chosen else spec.context_length
    terms: dict[str, dict[str, list[Any]]] = {}
    uncosted: list[str] = []
    costed: set[str] = set()
    for op, weight in _weighted_ops(spec, T, chosen):
        terms.setdefault(op.op_class, {f: [] for f in FORM_FIELDS})["flops"].append(weight * op.flops)
        for name, kind, exprs in table.cost_exprs(op):
            if exprs is None:
                if not allow_uncosted:
                    raise UserError(f"protocol table '{table.name}' cannot cost op {name} (kind {kind}); pass "
                                    "--allow-uncosted (allow_uncosted=True) to leave it out and list it",
                                    file=table.path)
                uncosted.append(name)
                continue
            op_class = "truncation" if kind == TRUNCATION else op.op_class
            costed.add(op_class)
            per_field = terms.setdefault(op_class, {f: [] for f in FORM_FIELDS})
            for f in COST_FIELDS:
                if f in exprs:
                    per_field[f].append(weight * exprs[f])
    from picost.estimate import ROW_CLASSES

    forms = {c: {f: sympy.expand(sympy.Add(*ts)) if chosen - {"T"} else sympy.Add(*ts)
                 for f, ts in terms[c].items()} for c in ROW_CLASSES if c in terms}
    return ClassForms(spec.name, table.name, T, forms, tuple(uncosted), tuple(c for c in forms if c in costed))


def _weighted_ops(spec: "ModelSpec", T: Any, chosen: set[str]) -> list[tuple["Op", Any]]:
    """The ops to cost, each with how many times it counts (1, or a layer count in ``L``)."""
    import sympy

    from picost.flops import _lower_view, _WidthView
    from picost.lower import lower

    if "d" in chosen:
        ops = _lower_view(_WidthView(spec, sympy.Symbol("d", positive=True, integer=True)), T)
    else:
        ops = list(lower(spec, T).ops)
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


def to_numpy(expr: Any, symbols: list[Any]) -> Any:
    """A numpy function of ``symbols`` computing ``expr`` (:func:`picost.formula.lambdify_numpy`),
    with ``log(x)/log(2)`` rewritten as ``log2(x)`` so that it is exact at powers of two (in floating
    point ``ceil(log(2**29)/log(2))`` is 30)."""
    from sympy.codegen.rewriting import log2_opt, optimize

    from picost.formula import lambdify_numpy

    return lambdify_numpy(optimize(expr, [log2_opt]), symbols)

"""FLOPs and nonlinear element counts of a lowered model.

Convention: a multiply-add counts 2 FLOPs. Only linears (secret x server weights) and secret
matmuls (QK^T, AV) carry FLOPs; biases, residual adds, scalings and nonlinearities are counted
as *elements* per op kind, kept apart from FLOPs. The embedding is a lookup (0 FLOPs).

FLOP groups: ``ffn``, ``attn_proj`` (QKV and output projections), ``attn_scores_values``
(QK^T and AV), ``embedding``, ``head``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from picost.model.lower import Lowered, lower, lower_symbolic
from picost.model.ops import NONLINEAR_KINDS, Block, Op
from picost.model.spec import ModelSpec

FLOP_GROUPS = ("embedding", "attn_proj", "attn_scores_values", "ffn", "head")


def flop_group(op: Op) -> str:
    """The FLOP group of an op (see :data:`FLOP_GROUPS`)."""
    if op.block is Block.ATTENTION:
        return "attn_scores_values" if op.kind == "matmul" else "attn_proj"
    if op.block is Block.NORM:
        return "norm"
    return op.block.value


@dataclass(frozen=True)
class FlopsReport:
    """FLOPs by group, by layer and by op; nonlinear element counts by kind."""

    lowered: Lowered

    @property
    def ops(self) -> tuple[Op, ...]:
        return self.lowered.ops

    @property
    def total(self) -> Any:
        return sum((op.flops for op in self.ops), 0)

    def by_group(self) -> dict[str, Any]:
        out: dict[str, Any] = {g: 0 for g in FLOP_GROUPS}
        for op in self.ops:
            group = flop_group(op)
            if group in out:
                out[group] += op.flops
        return out

    def by_layer(self) -> dict[str, Any]:
        """FLOPs per layer; ops outside the blocks under ``embedding`` / ``head``."""
        out: dict[str, Any] = {}
        for op in self.ops:
            key = f"L{op.layer}" if op.layer is not None else op.block.value
            out[key] = out.get(key, 0) + op.flops
        return out

    def nonlinear(self) -> dict[str, dict[str, Any]]:
        """Per nonlinear kind: number of ops, instances (e.g. per-head softmaxes), elements,
        and the row shape where the op works on rows. Norms inside the blocks and the final
        norm are reported apart (``layernorm`` vs ``layernorm (final)``)."""
        out: dict[str, dict[str, Any]] = {}
        for op in self.ops:
            if op.kind not in NONLINEAR_KINDS:
                continue
            key = op.kind + (" (final)" if op.block is Block.NORM and op.layer is None else "")
            row = out.setdefault(key, {"ops": 0, "instances": 0, "elements": 0, "shape": None})
            row["ops"] += 1
            row["instances"] += op.instances
            row["elements"] += op.elements
            row["shape"] = _shape(op)
        return out


def _shape(op: Op) -> str:
    d = op.dims
    if op.kind == "softmax":
        return f"{_fmt(d['rows'] / op.instances)}x{_fmt(d['cols'])}"
    if "rows" in d:
        return f"{_fmt(d['rows'])}x{_fmt(d['cols'])}"
    return f"{_fmt(d['n'])}"


def _fmt(x: Any) -> str:
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    return str(x)


def count_flops(spec: ModelSpec, context: Any = None) -> FlopsReport:
    """Lower ``spec`` at ``context`` tokens and count."""
    return FlopsReport(lower(spec, context))


# ---------------------------------------------------------------------------------------------
# Symbolic closed forms
# ---------------------------------------------------------------------------------------------

SYMBOL_NAMES = ("T", "L", "d")


def symbolic_flops(spec: ModelSpec, symbols: Iterable[str] = ("T",)) -> dict[str, Any]:
    """FLOPs per group and in total as sympy expressions in the chosen symbols.

    ``T`` is the context, ``L`` the number of layers, ``d`` the model width (head count fixed,
    head_dim and FFN width kept as the spec's multiples of d). Unchosen symbols
    take the spec's values.
    """
    import sympy

    chosen = set(symbols)
    unknown = chosen - set(SYMBOL_NAMES)
    if unknown:
        from picost.errors import UserError

        raise UserError(f"unknown symbol(s) {sorted(unknown)}; choose from {', '.join(SYMBOL_NAMES)}",
                        field="symbols")
    T = sympy.Symbol("T", positive=True, integer=True) if "T" in chosen else spec.context_length
    lowered = lower_symbolic(spec, T, sympy.Symbol("d", positive=True, integer=True) if "d" in chosen else None)
    if "L" not in chosen:
        groups = FlopsReport(lowered).by_group()
    else:
        groups = _groups_in_L(spec, lowered, sympy.Symbol("L", positive=True, integer=True))
    groups = {g: sympy.expand(v) for g, v in groups.items()}
    groups["total"] = sympy.expand(sum(groups.values()))
    return groups


def _groups_in_L(spec: ModelSpec, lowered: Lowered, L: Any) -> dict[str, Any]:
    """Group totals with the layer count as a symbol: outside-the-blocks ops once, a layer with
    an FFN times the number of such layers, a pruned layer times the number of pruned ones."""
    per_layer: dict[int, dict[str, Any]] = {}
    out: dict[str, Any] = {g: 0 for g in FLOP_GROUPS}
    for op in lowered.ops:
        group = flop_group(op)
        if group not in out:
            continue
        if op.layer is None:
            out[group] += op.flops
        else:
            layer = per_layer.setdefault(op.layer, {g: 0 for g in FLOP_GROUPS})
            layer[group] += op.flops
    pruned = spec.pruned_ffn_layers
    full = next((per_layer[i] for i in range(spec.n_layers) if i not in pruned), None)
    bare = next((per_layer[i] for i in pruned), None)
    if spec.ffn.pruned_from_layer is not None:
        n_bare = L - spec.ffn.pruned_from_layer
    else:
        n_bare = len(pruned)
    n_full = L - n_bare
    for g in FLOP_GROUPS:
        if full is not None:
            out[g] += n_full * full[g]
        if bare is not None:
            out[g] += n_bare * bare[g]
    return out

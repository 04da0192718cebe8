"""Vectorized context sweeps: costs per op class over many T, protocols and networks at once.

For each protocol the model is lowered *once* with a sympy symbol ``T``; the cost expressions of
its rows (:func:`picost.analysis.estimate.cost_expressions`) are summed per op class and field
(``comm_bytes``, ``rounds``, ``compute_s``), lambdified *once* and evaluated over a numpy array
of contexts. Latency is then numpy arithmetic per network, with the estimate's model
(``docs/latency-model.md``)::

    latency_s = compute_s + comm_bytes * 8 / (bandwidth_bps * transfer_links) + rounds * delays_per_round * round_s

so a sweep over N contexts, P protocols and K networks costs P symbolic passes, not N*P*K
estimates. Values are floats (float64); they equal the point-by-point estimate to rounding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

from picost.analysis.closed_forms import COST_FIELDS, ClassForms, class_forms
from picost.analysis.finite import require_finite
from picost.model import limits
from picost.model.limits import MAX_SWEEP_POINTS
from picost.errors import UserError
from picost.cost.network import Network

if TYPE_CHECKING:
    import numpy as np

    from picost.cost.protocol_table import ProtocolTable
    from picost.model.spec import ModelSpec

@dataclass
class SweepResult:
    """Columns of a sweep, one entry per point (protocol x network x context, in that nesting).

    ``by_class[c][field]`` are float arrays with ``field`` in ``comm_bytes``, ``rounds``,
    ``compute_s``, ``latency_s``; ``total`` the same summed over classes.
    """

    spec_name: str
    protocol: "np.ndarray"
    network: "np.ndarray"
    context: "np.ndarray"
    classes: tuple[str, ...]
    by_class: dict[str, dict[str, "np.ndarray"]]
    total: dict[str, "np.ndarray"]
    networks: dict[str, Network] = field(default_factory=dict)
    uncosted: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.context)

    def share(self, op_class: str, field_name: str = "latency_s") -> "np.ndarray":
        """Fraction of the total of ``field_name`` taken by ``op_class`` (0 where the total is 0)."""
        import numpy as np

        total = self.total[field_name]
        part = self.by_class[op_class][field_name]
        return np.divide(part, total, out=np.zeros_like(part), where=total != 0)


def _evaluate(expr: Any, T: Any, contexts: "np.ndarray") -> "np.ndarray":
    import numpy as np

    from picost.cost.formula import lambdify_numpy

    if not expr.free_symbols:
        value = complex(expr)
        return np.full(contexts.shape, value if value.imag else value.real)
    fn = lambdify_numpy(expr, [T])
    with np.errstate(all="ignore"):
        try:
            out = np.asarray(fn(contexts))
        except OverflowError:  # a constant beyond float range: each point exactly, as the estimate does
            out = np.asarray([_exact_point(expr, T, t) for t in contexts])
        if not np.iscomplexobj(out):  # complex values stay complex: the check refuses them
            out = out.astype(float)
        return np.broadcast_to(out, contexts.shape).copy()


def _exact_point(expr: Any, T: Any, t: float) -> float | complex:
    """``expr`` at ``T = t`` in exact arithmetic: a float, a complex number where it is complex,
    infinity beyond float range."""
    try:
        value = complex(expr.subs(T, int(t)))
    except OverflowError:
        return float("inf")
    return value if value.imag else value.real



def sweep(spec: "ModelSpec", contexts: Sequence[int], tables: Sequence["ProtocolTable"],
          networks: Sequence[Network], allow_uncosted: bool = False) -> SweepResult:
    """Costs of ``spec`` at every (table, network, context), vectorized over contexts."""
    import numpy as np

    if isinstance(contexts, (str, bytes)) or not hasattr(contexts, "__len__") or not 0 < len(contexts) <= MAX_SWEEP_POINTS:
        raise UserError(f"contexts must be a list of 1..{MAX_SWEEP_POINTS} whole numbers of tokens "
                        "(see docs/limits.md)", field="--context")
    T_values = np.asarray([limits.context(t, "--context") for t in contexts], dtype=float)
    if not tables or not networks:
        raise UserError("give at least one protocol and one network", field="--protocol")
    ordered_classes: list[str] = []
    per_table = []
    for table in tables:
        cf = class_forms(spec, table, allow_uncosted, verify_at=sorted({int(T_values[0]), int(T_values[-1])}))
        per_table.append(cf)
        ordered_classes += [c for c in cf.costed_classes if c not in ordered_classes]
    from picost.analysis.estimate import ROW_CLASSES

    classes = tuple(c for c in ROW_CLASSES if c in ordered_classes)
    n_pts = len(T_values)
    cols: dict[str, dict[str, list[Any]]] = {c: {f: [] for f in COST_FIELDS + ("latency_s",)} for c in classes}
    proto_col, net_col, ctx_col = [], [], []
    for cf in per_table:
        values = {c: {f: _evaluate(cf.forms[c][f], cf.T, T_values) if c in cf.costed_classes else np.zeros(n_pts)
                      for f in COST_FIELDS} for c in classes}
        _check_finite(spec, table, cf, values, T_values, allow_uncosted)
        for net in networks:
            for c in classes:
                v = values[c]
                round_s = net.round_s * cf.delays_per_round
                latency = (v["compute_s"] + v["comm_bytes"] * 8 / (net.bandwidth_bps * cf.transfer_links)
                           + v["rounds"] * round_s)
                for f in COST_FIELDS:
                    cols[c][f].append(v[f])
                cols[c]["latency_s"].append(latency)
                require_finite({"latency_s": latency}, f"the sweep of {spec.name} under {cf.protocol} over {net.name}")
            proto_col.append(np.full(n_pts, cf.protocol, dtype=object))
            net_col.append(np.full(n_pts, net.name, dtype=object))
            ctx_col.append(T_values.astype(np.int64))
    by_class = {c: {f: np.concatenate(arrs) for f, arrs in fs.items()} for c, fs in cols.items()}
    total = {f: np.sum([by_class[c][f] for c in classes], axis=0) for f in COST_FIELDS + ("latency_s",)}
    return SweepResult(spec.name, np.concatenate(proto_col), np.concatenate(net_col), np.concatenate(ctx_col),
                       classes, by_class, total, {n.name: n for n in networks},
                       {cf.protocol: cf.uncosted for cf in per_table if cf.uncosted})


def _check_finite(spec: "ModelSpec", table: "ProtocolTable", cf: ClassForms,
                  values: dict[str, dict[str, "np.ndarray"]], T_values: "np.ndarray", allow_uncosted: bool) -> None:
    """A formula outside its domain at some T (e.g. log2(0), sqrt(T - 100) at T = 64) is an
    error naming the op, the table line and the T (the estimate's own check at that T), never a
    silent NaN or a dropped imaginary part."""
    import numpy as np

    from picost.analysis.estimate import verify_point

    for c, fields in values.items():
        for f, arr in fields.items():
            bad = ~np.isfinite(arr) | (arr.real < 0) | (arr.imag != 0)
            if bad.any():
                verify_point(spec, table, int(T_values[bad][0]), allow_uncosted)
                shown = ", ".join(str(int(t)) for t in T_values[bad][:5])
                raise UserError(f"protocol table '{cf.protocol}': {f} of class {c} is not a finite, non-negative "
                                f"number at T = {shown} (a formula outside its domain there)",
                                field="--context")


def parse_contexts(text: str, option: str = "--context") -> list[int]:
    """``64,128,...,32768`` (doubling implied by ``...`` between a geometric start and the end),
    ``64,128,256``, or a range ``64:32768:64`` (start:stop:step, stop included)."""
    return parse_counts(text, option, "contexts", "tokens", lambda v: limits.context(v, option))


def parse_new_tokens(text: str, option: str = "--new-tokens") -> list[int]:
    """Numbers of new tokens N, written as contexts are (``1,8,64``, ``1,2,...,64``, ``1:64:1``)."""
    from picost.analysis.generation import check_new_tokens

    return parse_counts(text, option, "new tokens", "tokens", lambda v: check_new_tokens(v, option))


def parse_counts(text: str, option: str, what: str, unit: str, check: Any) -> list[int]:
    """A list of positive whole numbers (see :func:`parse_contexts`), each passed to ``check``."""
    text = str(text).strip()
    try:
        if len(text) > 100_000:
            raise ValueError
        if ":" in text:
            parts = [int(p) for p in text.split(":")]
            if len(parts) != 3 or parts[2] < 1:
                raise ValueError
            count = max(0, (parts[1] - parts[0]) // parts[2] + 1)
            if count > MAX_SWEEP_POINTS:
                raise UserError(f"{limits.short(count)} {what} in '{limits.short(text)[1:-1]}'; a sweep takes at most {MAX_SWEEP_POINTS} "
                                "(see docs/limits.md)", field=option)
            values = list(range(parts[0], parts[1] + 1, parts[2]))
        else:
            items = [p.strip() for p in text.split(",")]
            if "" in items:
                raise UserError(f"empty item in {option} '{limits.short(text)[1:-1]}' (two commas in a row, or one at "
                                "an end)", field=option)
            if "..." in items:
                i = items.index("...")
                head, tail = [int(p) for p in items[:i]], [int(p) for p in items[i + 1:]]
                if len(head) < 2 or len(tail) != 1 or head[0] <= 0 or head[1] <= head[0]:
                    raise ValueError
                values = _extend(head, tail[0])
            else:
                values = [int(p) for p in items]
    except ValueError:
        raise UserError(f"cannot read {what} '{limits.short(text)[1:-1]}'; write e.g. 64,128,...,32768 (doubling), "
                        "64,128,256 or 64:32768:64 (start:stop:step)", field=option) from None
    if not values or any(v < 1 for v in values):
        raise UserError(f"{what} must be positive numbers of {unit} (got '{limits.short(text)[1:-1]}')", field=option)
    if len(values) > MAX_SWEEP_POINTS:
        raise UserError(f"{len(values)} {what}; a sweep takes at most {MAX_SWEEP_POINTS} (see docs/limits.md)",
                        field=option)
    for v in values:
        check(v)
    return values


def _extend(head: list[int], stop: int) -> list[int]:
    """Continue ``head`` to ``stop``: geometric when it doubles (or 3+ terms share a ratio),
    else arithmetic (``1,3,...,9`` is 1, 3, 5, 7, 9)."""
    a, b = head[0], head[1]
    ratio_ok = b % a == 0 and all(y == x * (b // a) for x, y in zip(head, head[1:]))
    geometric = ratio_ok and (b == 2 * a or len(head) > 2)  # "64,128,..." doubles; else say 3 terms
    arithmetic = all(y - x == b - a for x, y in zip(head, head[1:]))
    if not (geometric or arithmetic):
        raise ValueError
    values = list(head)
    while len(values) <= MAX_SWEEP_POINTS:
        nxt = values[-1] * (b // a) if geometric else values[-1] + (b - a)
        if nxt > stop:
            break
        values.append(nxt)
    if values[-1] != stop:
        raise ValueError
    return values


"""The estimate: ops x protocol table x network -> one row per op, totals and group-bys.

Each op of the lowered model becomes a row (and ops with fixed-point outputs a ``<name>.trunc``
row of class ``truncation``, unless the table's entry already pays for it; see
``docs/protocol-tables.md``). Per row, in seconds and bytes::

    comm_s    = comm_bytes * 8 / (bandwidth_bps * transfer_links)
                (both directions together through one link: transfer_links = 1, unless the
                table's setting says ``transfer: parallel``: then the party count)
    latency_s = compute_s + comm_s + rounds * delays_per_round * rtt_s / 2
                (compute_s = 0 when the table has none; delays_per_round from the table's
                setting, 1 unless its transport waits for a ready notice per message)

The model and its reasons are in ``docs/latency-model.md``. Totals are the sums of the rows in
op order; group-bys (``layer``, ``block``, ``class``) sum the same rows. Online costs make the
latency; ``offline_bytes`` (preprocessing) is reported apart and never enters it, and so is
``setup_bytes`` (one-time model setup, e.g. the server's masked weights: once per model, not per
inference).

An op the table cannot cost raises :class:`~picost.errors.UserError` naming the op and the table,
or, with ``allow_uncosted``, becomes a row with ``costed = False`` whose costs are ``None``
(shown as "uncosted" in every output) and which counts in ``Totals.uncosted``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from picost.analysis.finite import require_finite
from picost.model.lower import Lowered, lower
from picost.cost.network import Network, get_network
from picost.model.ops import CLASSES, Op
from picost.cost.hybrid import load_costing
from picost.cost.protocol_table import ProtocolTable

if TYPE_CHECKING:
    from picost.model.spec import ModelSpec

ROW_CLASSES = CLASSES + ("truncation", "conversion")
GROUP_KEYS = ("layer", "block", "class")


@dataclass(frozen=True, slots=True)
class Row:
    """One estimate row. Costs are ``None`` when not given by the table (or uncosted)."""

    name: str
    kind: str
    op_class: str
    layer: int | None
    block: str
    flops: int
    costed: bool
    comm_bytes: Any = None
    bytes_client_to_server: Any = None
    bytes_server_to_client: Any = None
    rounds: Any = None
    compute_s: float | None = None
    comm_s: float | None = None
    latency_s: float | None = None
    offline_bytes: Any = None
    source: str | None = None
    formulas: Mapping[str, str] = field(default_factory=dict)
    uncosted_reason: str | None = None
    dims: Mapping[str, Any] = field(default_factory=dict)
    """The formulas' inputs: the op's dims (``{"n": outputs}`` for a truncation row)."""
    table: str | None = None
    """The table that costed the row (a hybrid's part, or its conversions table)."""
    notes: tuple[str, ...] = ()
    """The op's notes (on its own row, not on its truncation or conversions): what a reveal opens."""
    setup_bytes: Any = None
    """One-time bytes of the model's setup (once per model, not per inference; not in the latency)."""
    compute_beyond: float | None = None
    """The row's size over the largest size its compute was measured at (1.0: within the measured
    sizes; above 1: extrapolated that far; None: the table states no measured range)."""

    @property
    def extrapolated(self) -> bool:
        """Whether the row's compute is evaluated beyond the sizes it was measured at."""
        return self.compute_beyond is not None and self.compute_beyond > 1.0

    @property
    def layer_label(self) -> str:
        """``L3`` inside the blocks; the block name (embedding, norm, head) outside them."""
        return f"L{self.layer}" if self.layer is not None else self.block

    def group(self, key: str) -> str:
        if key == "layer":
            return self.layer_label
        if key == "block":
            return self.block
        if key == "class":
            return self.op_class
        raise ValueError(f"unknown group key {key!r}")


_SUMMED = ("flops", "comm_bytes", "rounds", "compute_s", "comm_s", "latency_s", "offline_bytes", "setup_bytes")


@dataclass(frozen=True)
class Totals:
    """Sums over rows (uncosted rows add nothing; ``uncosted`` counts them). When no row is
    costed, the cost sums are ``None``, not zero. Per-direction bytes are summed only if every
    costed row has them (else ``None``); ``compute_rows``/``offline_rows``/``setup_rows`` count
    the rows that model them."""

    rows: int
    costed: int
    uncosted: int
    flops: int
    comm_bytes: Any
    rounds: Any
    compute_s: float | None
    comm_s: float | None
    latency_s: float | None
    offline_bytes: Any
    setup_bytes: Any
    bytes_client_to_server: Any
    bytes_server_to_client: Any
    compute_rows: int
    offline_rows: int
    setup_rows: int

    @classmethod
    def of(cls, rows: Iterable[Row]) -> "Totals":
        rows = list(rows)
        costed = [r for r in rows if r.costed]
        sums = {name: sum((getattr(r, name) or 0 for r in rows), 0) for name in _SUMMED}
        if rows and not costed:
            sums.update({name: None for name in _SUMMED if name != "flops"})
        directions = all(r.bytes_client_to_server is not None for r in costed)
        return cls(
            rows=len(rows), costed=len(costed), uncosted=len(rows) - len(costed), **sums,
            bytes_client_to_server=sum(r.bytes_client_to_server for r in costed) if directions else None,
            bytes_server_to_client=sum(r.bytes_server_to_client for r in costed) if directions else None,
            compute_rows=sum(r.compute_s is not None for r in costed),
            offline_rows=sum(r.offline_bytes is not None for r in costed),
            setup_rows=sum(r.setup_bytes is not None for r in costed))


@dataclass(frozen=True)
class Estimate:
    """What one forward pass costs under a protocol and a network, row by row."""

    spec_name: str
    context: int
    phase: str
    batch_size: int
    protocol: ProtocolTable
    network: Network
    rows: tuple[Row, ...]
    totals: Totals

    def by(self, key: str) -> dict[str, Totals]:
        """Totals per group (``layer``, ``block`` or ``class``), groups in first-seen order
        (classes in :data:`ROW_CLASSES` order)."""
        groups: dict[str, list[Row]] = {}
        if key == "class":
            groups = {c: [] for c in ROW_CLASSES}
        for row in self.rows:
            groups.setdefault(row.group(key), []).append(row)
        return {g: Totals.of(rs) for g, rs in groups.items() if rs}

    def share(self, latency_s: float | None) -> float | None:
        """Fraction of the total latency."""
        if latency_s is None or not self.totals.latency_s:
            return None
        return latency_s / self.totals.latency_s

    @property
    def dominant_class(self) -> str | None:
        """The class with the largest latency (None if nothing has any latency)."""
        by_class = {c: t.latency_s for c, t in self.by("class").items() if t.latency_s}
        return max(by_class, key=by_class.__getitem__) if by_class else None

    @property
    def machine(self) -> Any:
        """The :class:`~picost.cost.machine.Machine` the compute column is for."""
        return self.protocol.machine_or_reference

    @property
    def extrapolated_rows(self) -> tuple[Row, ...]:
        """Rows whose compute is evaluated beyond its measured sizes."""
        return tuple(r for r in self.rows if r.costed and r.extrapolated)

    @property
    def extrapolated_share(self) -> float | None:
        """Fraction of the total latency that comes from rows with extrapolated compute."""
        return self.share(sum(r.latency_s for r in self.extrapolated_rows))

    @property
    def bytes_bound_s(self) -> float:
        """Lower bound on latency from the online bytes alone: total bytes / (bandwidth *
        transfer_links)."""
        return self.network.transfer_s(self.totals.comm_bytes or 0) / self.protocol.setting.transfer_links

    def to_frame(self) -> Any:
        """A pandas DataFrame with one row per estimate row (pandas imported here)."""
        import pandas as pd

        records = []
        for r in self.rows:
            records.append({
                "name": r.name, "kind": r.kind, "class": r.op_class, "layer": r.layer_label, "block": r.block,
                "flops": r.flops, "costed": r.costed, "comm_bytes": r.comm_bytes,
                "bytes_client_to_server": r.bytes_client_to_server,
                "bytes_server_to_client": r.bytes_server_to_client, "rounds": r.rounds,
                "compute_s": r.compute_s, "comm_s": r.comm_s, "latency_s": r.latency_s,
                "offline_bytes": r.offline_bytes, "setup_bytes": r.setup_bytes, "share": self.share(r.latency_s),
                "source": r.source})
        return pd.DataFrame.from_records(records)


def estimate_lowered(lowered: Lowered, table: ProtocolTable, network: Network,
                     allow_uncosted: bool = False) -> Estimate:
    """Cost every op of ``lowered`` (int shapes) under ``table`` over ``network``."""
    rows = []
    times: dict[int, tuple[float, float]] = {}  # per shared cost-fields dict: (comm_s, latency_s)
    for planned in table.planned(lowered.ops):
        owner, op, name = planned.table, planned.op, planned.name
        c = owner.row_fields(planned, allow_uncosted)
        flops = op.flops if planned.row_class == op.op_class else 0
        notes = op.notes if name == op.name else ()
        if c is None:
            rows.append(Row(name, planned.kind, planned.row_class, op.layer, op.block.value, flops, False,
                            uncosted_reason=owner.uncosted_reason(planned), dims=planned.dims, table=owner.name,
                            notes=notes))
            continue
        t = times.get(id(c))
        if t is None:
            t = times[id(c)] = (network.transfer_s(c["comm_bytes"]) / table.setting.transfer_links,
                                latency_s_of(c["compute_s"], c["comm_bytes"], c["rounds"], network, table))
        rows.append(Row(name, planned.kind, planned.row_class, op.layer, op.block.value, flops, True,
                        c["comm_bytes"], c["bytes_client_to_server"], c["bytes_server_to_client"],
                        c["rounds"], c["compute_s"], t[0], t[1], c["offline_bytes"],
                        c["source"], c["formulas"], dims=planned.dims, table=owner.name, notes=notes,
                        setup_bytes=c["setup_bytes"], compute_beyond=c["compute_beyond"]))
    spec = lowered.spec
    totals = Totals.of(rows)
    require_finite({name: getattr(totals, name) for name in _SUMMED + ("bytes_client_to_server",
                                                                      "bytes_server_to_client")},
                   f"the estimate of {spec.name} under {table.label} at T = {lowered.context}")
    return Estimate(spec.name, lowered.context, spec.phase, spec.batch_size, table, network, tuple(rows), totals)


def verify_point(spec: "ModelSpec", table: ProtocolTable, context: int, allow_uncosted: bool = False) -> None:
    """The estimate's verdict on every formula of ``table`` at ``context`` tokens (exact numbers,
    as :func:`estimate` computes them): a formula that is complex, not finite, negative or
    outside its domain there raises the estimate's located error, with the T added. Sweeps and
    closed forms call this so that they never accept a table the estimate refuses."""
    from picost.errors import UserError

    sums = {f: 0 for f in ("comm_bytes", "rounds", "compute_s", "offline_bytes", "setup_bytes")}
    try:
        for cost in table.cost_ops(lower(spec, context).ops, allow_uncosted):
            for f in sums:
                sums[f] += getattr(cost, f) or 0
        require_finite(sums, f"the costs of {spec.name} under {table.label} at T = {context}")
    except UserError as exc:
        raise UserError(f"{exc.message} (T = {context})", file=exc.file, line=exc.line, field=exc.field) from None


def row_latency_s(cost: Any, network: Network, table: ProtocolTable) -> float:
    """Modeled seconds of one costed row (an :class:`~picost.cost.protocol_table.OpCost`):
    ``compute_s + comm_bytes * 8 / (bandwidth_bps * transfer_links) + rounds * delays_per_round * rtt_s / 2``."""
    return latency_s_of(cost.compute_s, cost.comm_bytes, cost.rounds, network, table)


def latency_s_of(compute_s: float | None, comm_bytes: Any, rounds: Any, network: Network,
                 table: ProtocolTable) -> float:
    """:func:`row_latency_s` of a row's compute (seconds or None), bytes and rounds (numbers, or
    numpy arrays over decode steps)."""
    round_s = network.round_s * table.setting.delays_per_round
    compute = 0 if compute_s is None else compute_s
    return compute + network.transfer_s(comm_bytes) / table.setting.transfer_links + rounds * round_s


def estimate(spec: "ModelSpec | str | Path", protocol: str | Path | ProtocolTable,
             network: str | Network | None = None, context: int | None = None, *,
             bandwidth: str | None = None, rtt: str | None = None, allow_uncosted: bool = False,
             options: Mapping[str, str] | None = None, machine: Any = None, threads: Any = None,
             compute: str | None = None) -> Estimate:
    """The Python API of ``picost estimate``.

    ``spec``: a :class:`~picost.model.spec.ModelSpec`, a shipped spec name or a path; ``protocol``: a
    shipped table name, a path or a loaded :class:`ProtocolTable`; ``options``: the table's options
    (``{"weights": "public"}``; the others at their defaults); ``network``: a preset name or
    a :class:`Network` (``bandwidth``/``rtt`` text such as ``"100Mbps"``/``"80ms"`` override it);
    ``context``: tokens T (default: the spec's ``context_length``); ``machine``: where compute
    runs (a preset name, a profile path or a :class:`~picost.cost.machine.Machine`; default the
    tables' reference machine), ``threads`` cores per party, ``compute="none"`` to leave compute out
    (see :func:`~picost.cost.machine.get_machine`).
    """
    model = _spec(spec)
    table = with_machine(load_costing(protocol, options), machine, threads, compute)
    link = get_network(network, bandwidth=bandwidth, rtt=rtt)
    return estimate_lowered(lower(model, context), table, link, allow_uncosted)


def with_machine(table: ProtocolTable, machine: Any = None, threads: Any = None,
                 compute: str | None = None) -> ProtocolTable:
    """``table`` with compute scaled to the machine ``machine``/``threads``/``compute`` name
    (:func:`~picost.cost.machine.get_machine`); unchanged when none is given."""
    if machine is None and threads is None and compute is None:
        return table
    from picost.cost.machine import get_machine

    return table.with_machine(get_machine(machine, threads, compute))


def _spec(spec: Any) -> "ModelSpec":
    from picost.model.load import load_spec
    from picost.model.spec import ModelSpec

    return spec if isinstance(spec, ModelSpec) else load_spec(spec)


# -- symbolic totals, for sweeps and closed forms ---------------------------------------------

@dataclass(frozen=True)
class RowExprs:
    """One estimate row as sympy expressions: the op it comes from, the row's name and class
    (``truncation`` for a truncation row), and ``{field: expr}`` (bytes, rounds, seconds; the
    fields the table gives), or ``None`` for a row the table cannot cost."""

    op: Op
    name: str
    op_class: str
    exprs: dict[str, Any] | None


def cost_expressions(ops: Iterable[Op], protocol: str | Path | ProtocolTable,
                     allow_uncosted: bool = False) -> list[RowExprs]:
    """The estimate rows of ``ops`` with their costs as sympy expressions, the ops' dims (which may
    contain sympy symbols such as ``T``) substituted. A row the table cannot cost raises
    :class:`UserError` (as in the estimate), or with ``allow_uncosted`` has ``exprs = None``."""
    table = load_costing(protocol)
    out = []
    for row, exprs in table.cost_exprs_ops(list(ops)):
        if exprs is None and not allow_uncosted:
            raise row.table.uncosted_error(row.op, row.name, row.is_truncation)
        out.append(RowExprs(row.op, row.name, row.row_class, exprs))
    return out


def total_expressions(spec: Any, protocol: str | Path | ProtocolTable, network: str | Network | None,
                      context: Any, **network_overrides: str) -> dict[str, Any]:
    """Sympy totals (``comm_bytes``, ``rounds``, ``compute_s``, ``latency_s``) of one forward pass
    as expressions in ``context`` (e.g. ``sympy.Symbol('T', positive=True, integer=True)``).
    Lambdify them once with :func:`picost.cost.formula.lambdify_numpy` to sweep T."""
    import sympy

    link = get_network(network, **network_overrides)
    table = load_costing(protocol)
    totals = {f: sympy.Integer(0) for f in ("comm_bytes", "rounds", "compute_s")}
    for row in cost_expressions(lower(_spec(spec), context).ops, table):
        for f in totals:
            totals[f] += row.exprs.get(f, 0)
    bandwidth = sympy.nsimplify(link.bandwidth_bps) * table.setting.transfer_links
    round_s = sympy.nsimplify(link.round_s) * table.setting.delays_per_round
    totals["latency_s"] = totals["compute_s"] + totals["comm_bytes"] * 8 / bandwidth + totals["rounds"] * round_s
    return totals

"""Protocol cost tables: load, validate, and cost one op.

A table (``protocols/<name>.yaml``) gives, per op kind, formulas for communication bytes, rounds
and optionally compute seconds and offline bytes, each entry with its source. The schema is
``docs/protocol-tables.md``; this module implements it. Loading checks everything (unknown
keys, missing or malformed sources, unknown op kinds, unknown symbols, per-direction bytes that
do not add up) and reports the file, line and field.

Units: bytes are bytes (8 bits), rounds are sequential message flights (depth), compute is seconds;
``messages`` (optional) counts messages sent, for information only (never in a latency).
This module knows the op IR, never the spec's YAML, the network or any face.
"""

from __future__ import annotations

import dataclasses
import difflib
import keyword
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from picost.cost import formula
from picost.cost.derived_entries import why_not_derived, with_derived
from picost.cost.entries import ALL_DIMS, ENTRY_SYMBOLS, SHARINGS, TRANSFERS, TRUNCATION, Entry, Setting
from picost.errors import UserError
from picost.shipped import shipped_dir, shipped_names
from picost.model.ops import KINDS, Op
from picost.model import limits
from picost.model.located_yaml import KeyPath, line_of, load_located

#: Formula fields of an entry, in display order.
FORMULA_FIELDS = ("comm_bytes", "bytes_client_to_server", "bytes_server_to_client", "rounds", "messages",
                  "compute_s", "offline_bytes", "setup_bytes")
#: Informational fields: shown with the table, never part of any cost or latency.
INFORMATIONAL_FIELDS = ("messages",)
_REQUIRED_FORMULAS = ("comm_bytes", "rounds")
_ENTRY_KEYS = FORMULA_FIELDS + ("includes_truncation", "source", "compute_source", "compute_scaling", "compute_range",
                                 "notes")
_SCALING_KEYS = ("serial", "concurrent")
_RANGE_KEYS = ("size", "max")
_TOP_KEYS = ("name", "description", "extends", "defaults", "citations", "setting", "confidence", "params", "options",
             "ops", "derived_entries")
_EXTENDS_DEPTH = 8
_TOP_REQUIRED = ("name", "description", "setting", "confidence", "ops")
_SETTING_KEYS = ("parties", "threat_model", "correlated_randomness", "ring_bits", "fractional_bits", "he",
                 "delays_per_round", "sharing", "transfer")
_CORRELATED = ("none", "dealer", "third_party")
_PARAM_KEYS = ("value", "unit", "source")
_OPTION_KEYS = ("description", "default", "choices")
_CHOICE_KEYS = ("source", "notes", "params", "ops")
_SOURCE_PREFIXES = ("derived:", "measured:")


@dataclass(frozen=True)
class Param:
    """A named constant of a table (e.g. ``lam = 128`` bits), with its source."""

    name: str
    value: int | float
    unit: str | None
    source: str


@dataclass(frozen=True)
class Choice:
    """One value of a table option: the parameter values and op entries it puts in force."""

    name: str
    source: str
    notes: str | None
    params: Mapping[str, int | float]
    """New values of parameters the table declares."""
    entries: Mapping[str, Entry]
    """Entries that replace (or add to) the table's ``ops`` for their kinds."""


@dataclass(frozen=True)
class Option:
    """A named choice the modelled engine offers (who holds the weights, which GELU, ...)."""

    name: str
    description: str
    default: str
    choices: Mapping[str, Choice]


@dataclass(frozen=True)
class OpCost:
    """What one row of an estimate costs under a table: an op, or the truncation after it.

    ``None`` means "not given by the table" (per-direction bytes, compute, offline bytes) or,
    when ``costed`` is false, "cannot be costed" -- never a silent zero.
    """

    name: str
    kind: str
    op: Op
    is_truncation: bool
    costed: bool
    comm_bytes: Any = None
    """Online bytes, both directions together."""
    bytes_client_to_server: Any = None
    bytes_server_to_client: Any = None
    rounds: Any = None
    compute_s: Any = None
    offline_bytes: Any = None
    setup_bytes: Any = None
    """One-time bytes of the model's setup (once per model, not per inference)."""
    source: str | None = None
    formulas: Mapping[str, str] = field(default_factory=dict)
    uncosted_reason: str | None = None
    table: str | None = None
    """The table whose entry costs the row (a hybrid's part, or its conversions table)."""
    row_class: str | None = None
    """The class the row is reported under (the op's, ``truncation`` or ``conversion``)."""
    dims: Mapping[str, Any] = field(default_factory=dict)
    """The formulas' inputs (the op's dims; ``{"n": outputs}`` for a truncation row)."""
    compute_beyond: float | None = None
    """Compute's size over the largest size its fit measured (1.0 within; None: no range stated)."""


@dataclass(frozen=True)
class PlannedRow:
    """One estimate row before costing: the op it belongs to (for a conversion, the op it feeds),
    its name, kind and class, and the table, entry and dims that cost it."""

    op: Op
    name: str
    kind: str
    row_class: str
    table: "ProtocolTable"
    entry: "Entry | None"
    dims: Mapping[str, Any]
    is_truncation: bool = False


@dataclass(frozen=True)
class ProtocolTable:
    """A loaded, validated protocol table."""

    name: str
    description: str
    citations: Mapping[str, str]
    setting: Setting
    confidence: str
    params: Mapping[str, Param]
    entries: Mapping[str, Entry]
    path: str
    options: Mapping[str, Option] = field(default_factory=dict)
    """The options the table declares (``docs/protocol-tables.md``)."""
    chosen: Mapping[str, str] = field(default_factory=dict)
    """The value of every option in force (defaults included), in declaration order."""
    base_params: Mapping[str, Param] = field(default_factory=dict, repr=False)
    base_entries: Mapping[str, Entry] = field(default_factory=dict, repr=False)
    """``params`` and ``entries`` as written under ``params:``/``ops:``, before any option applies."""
    derive: bool = True
    """Whether entries the table does not write are derived from ones it does (:mod:`picost.cost.derived_entries`);
    ``derived_entries: false`` in the file: the table costs only what it writes (picost-2pc, whose entries
    are each proven against the engine)."""
    machine: Any = None
    """The :class:`~picost.cost.machine.Machine` compute is scaled to (None: the reference machine,
    on which ``compute_s`` was measured)."""
    _values: dict[tuple[Any, ...], dict[str, Any]] = field(default_factory=dict, init=False, repr=False, compare=False)
    """Evaluated formulas per (kind, dims): the layers of a model repeat the same shapes."""
    _factors: dict[str, float] = field(default_factory=dict, init=False, repr=False, compare=False)
    """Compute factor per entry (``where``) for :attr:`machine`."""
    _costs: dict[tuple[Any, ...], dict[str, Any]] = field(default_factory=dict, init=False, repr=False, compare=False)
    """A costed row's fields per (entry, dims) on :attr:`machine` (:meth:`cost_row`)."""
    _plans: dict[int, tuple[Any, tuple["PlannedRow", ...]]] = field(default_factory=dict, init=False, repr=False,
                                                                    compare=False)
    """Recent :meth:`planned` op tuples (held, so their ids stay theirs) and their rows."""
    _exprs: dict[tuple[Any, ...], dict[str, Any]] = field(default_factory=dict, init=False, repr=False, compare=False)
    """:meth:`row_exprs` per (entry, dims): a model's layers repeat the same symbolic shapes."""

    def with_machine(self, machine: Any) -> "ProtocolTable":
        """This table with compute scaled to ``machine`` (a :class:`~picost.cost.machine.Machine`)."""
        return dataclasses.replace(self, machine=machine)

    @property
    def machine_or_reference(self) -> Any:
        from picost.cost.machine import REFERENCE

        return self.machine or REFERENCE

    def compute_factor(self, entry: Entry) -> float:
        """``compute_s`` on :attr:`machine` over ``compute_s`` as written (1 on the reference)."""
        if self.machine is None:
            return 1.0
        factor = self._factors.get(entry.where)
        if factor is None:
            factor = self.machine.factor(self.scaling_of(entry), self.setting.parties)
            self._factors[entry.where] = factor
        return factor

    def scaling_of(self, entry: Entry) -> Any:
        """The entry's measured core scaling, else its table's fallback (:func:`~picost.cost.machine.table_scalings`)."""
        if entry.compute_scaling is not None:
            return entry.compute_scaling
        from picost.cost.machine import table_scalings

        return table_scalings(self.entries)[0]

    def compute_beyond(self, entry: Entry, dims: Mapping[str, Any]) -> float | None:
        """How far past its measured sizes ``entry``'s compute is evaluated at ``dims``: size / largest
        measured size when over 1, else 1.0; None when the entry states no measured range (or has no compute)."""
        if entry.compute_range is None or "compute_s" not in entry.formulas:
            return None
        size_formula, top = entry.compute_range
        try:
            size = float(size_formula.value({**self.param_values, **dims}))
        except (TypeError, ValueError):  # symbolic dims (a sweep's T): judged per point by the numeric path
            return None
        return max(1.0, size / top)

    @property
    def label(self) -> str:
        """The table's name, with the options that differ from their defaults: ``crypten[weights=public]``."""
        changed = [f"{k}={v}" for k, v in self.chosen.items() if v != self.options[k].default]
        return f"{self.name}[{','.join(changed)}]" if changed else self.name

    def with_options(self, selected: Mapping[str, str] | None) -> "ProtocolTable":
        """This table with ``selected`` option values (the others at their defaults).

        An unknown option or value is a :class:`UserError` naming the table and the choices."""
        chosen = {name: option.default for name, option in self.options.items()}
        for name, value in (selected or {}).items():
            option = self.options.get(name)
            if option is None:
                known = ", ".join(self.options) or "none"
                close = difflib.get_close_matches(name, list(self.options), n=1)
                hint = f"did you mean '{close[0]}'? " if close else ""
                raise UserError(f"protocol table '{self.name}' has no option '{name}'; {hint}its options: {known}",
                                file=self.path, field="--option")
            if value not in option.choices:
                close = difflib.get_close_matches(value, list(option.choices), n=1)
                hint = f"did you mean '{close[0]}'? " if close else ""
                raise UserError(f"option '{name}' of protocol table '{self.name}' has no value '{value}'; {hint}"
                                f"choices: {', '.join(option.choices)}", file=self.path, field="--option")
            chosen[name] = value
        if chosen == dict(self.chosen):
            return self
        params = dict(self.base_params)
        entries = dict(self.base_entries)
        for name, value in chosen.items():
            choice = self.options[name].choices[value]
            for pname, pvalue in choice.params.items():
                params[pname] = Param(pname, pvalue, params[pname].unit, choice.source)
            entries.update(choice.entries)
        derived = with_derived(entries, params, self.setting) if self.derive else entries
        return dataclasses.replace(self, params=params, entries=derived, chosen=chosen)

    @property
    def param_values(self) -> dict[str, Any]:
        return {p.name: p.value for p in self.params.values()}

    def values(self, entry: Entry, dims: Mapping[str, Any], row: str) -> dict[str, Any]:
        """``{field: number}`` of ``entry`` at integer ``dims`` (checked finite and >= 0; cached)."""
        key = (entry.kind, *dims.items())
        out = self._values.get(key)
        if out is None:
            env = {**self.param_values, **dims}
            out = {f: self._checked(entry, f, self._evaluate(entry, f, form, env, row), row)
                   for f, form in entry.formulas.items()}
            self._values[key] = out
        return out

    def rows_for(self, op: Op) -> list[tuple[str, str, Entry | None, dict[str, Any], bool]]:
        """The estimate rows an op makes: itself, then its truncation when one is needed.

        Each item is ``(row name, entry kind, entry or None, dims, is_truncation)``.
        """
        entry = self.entries.get(op.kind)
        rows = [(op.name, op.kind, entry, dict(op.dims), False)]
        if op.info.fixed_point_product and not (entry is not None and entry.includes_truncation):
            rows.append((f"{op.name}.trunc", TRUNCATION, self.entries.get(TRUNCATION), {"n": op.outputs}, True))
        return rows

    # -- a whole op sequence: what the estimate, generation, sweeps and closed forms call ---------

    @property
    def table_names(self) -> tuple[str, ...]:
        """The tables that cost rows: this one (a hybrid: its parts and its conversions)."""
        return (self.name,)

    def plan(self, ops: Any) -> list["PlannedRow"]:
        """The estimate rows of ``ops`` in order, each with the table and entry that cost it."""
        return [PlannedRow(op, name, kind, TRUNCATION if trunc else op.op_class, self, entry, dims, trunc)
                for op in ops for name, kind, entry, dims, trunc in self.rows_for(op)]

    def planned(self, ops: tuple[Op, ...]) -> tuple["PlannedRow", ...]:
        """:meth:`plan` of an op tuple, kept for the last 16 tuples (lowerings are shared per spec,
        so a repeated estimate plans once)."""
        found = self._plans.get(id(ops))
        if found is None or found[0] is not ops:
            if len(self._plans) >= 16:
                self._plans.pop(next(iter(self._plans)))
            found = self._plans[id(ops)] = (ops, tuple(self.plan(ops)))
        return found[1]

    def cost_ops(self, ops: Any, allow_uncosted: bool = False) -> list[OpCost]:
        """Numeric costs of every row of ``ops`` (int dims), in order (see :meth:`cost`)."""
        return [row.table.cost_row(row, allow_uncosted) for row in self.plan(ops)]

    def cost(self, op: Op, allow_uncosted: bool = False) -> list[OpCost]:
        """Numeric costs of ``op`` (int dims): its row and, if needed, its truncation row.

        An op the table cannot cost raises :class:`UserError` naming the op and the table,
        unless ``allow_uncosted`` (then the row says ``costed=False`` and why).
        """
        return self.cost_ops([op], allow_uncosted)

    def cost_row(self, row: "PlannedRow", allow_uncosted: bool = False) -> OpCost:
        """The costs of one planned row whose entry is this table's."""
        fields = self.row_fields(row, allow_uncosted)
        if fields is None:
            return OpCost(row.name, row.kind, row.op, row.is_truncation, False, table=self.name,
                          uncosted_reason=self.uncosted_reason(row), row_class=row.row_class, dims=row.dims)
        return OpCost(row.name, row.kind, row.op, row.is_truncation, True, **fields, table=self.name,
                      row_class=row.row_class, dims=row.dims)

    def row_fields(self, row: "PlannedRow", allow_uncosted: bool = False) -> dict[str, Any] | None:
        """The cost fields of one planned row whose entry is this table's (:class:`OpCost`'s costs,
        kept per entry and dims: one dict shared by the rows of repeated layers, read only); None
        for a row no entry costs when ``allow_uncosted``, else :meth:`uncosted_error`."""
        entry = row.entry
        if entry is None:
            if not allow_uncosted:
                raise self.uncosted_error(row.op, row.name, row.is_truncation)
            return None
        key = (entry.where, *row.dims.items())
        fields = self._costs.get(key)
        if fields is None:
            fields = self._row_fields(entry, row.dims, row.name)
            self._costs[key] = fields
        return fields

    def uncosted_reason(self, row: "PlannedRow") -> str:
        """Why no entry of this table costs ``row``."""
        return self._uncosted_reason(row.op, row.kind, row.is_truncation)

    def _row_fields(self, entry: Entry, dims: Mapping[str, Any], name: str) -> dict[str, Any]:
        """The cost fields of a row of ``entry`` at integer ``dims`` on :attr:`machine`."""
        values = self.values(entry, dims, name)
        compute_s = values.get("compute_s")
        if compute_s is not None and self.machine is not None:
            compute_s = None if not self.machine.compute else compute_s * self.compute_factor(entry)
        return {"comm_bytes": values["comm_bytes"], "bytes_client_to_server": values.get("bytes_client_to_server"),
                "bytes_server_to_client": values.get("bytes_server_to_client"), "rounds": values["rounds"],
                "compute_s": compute_s,
                "compute_beyond": None if compute_s is None else self.compute_beyond(entry, dims),
                "offline_bytes": values.get("offline_bytes"), "setup_bytes": values.get("setup_bytes"),
                "source": entry.source,
                "formulas": {f: form.text for f, form in entry.formulas.items()}}  # shared by the rows: read only

    def cost_exprs_ops(self, ops: Any) -> list[tuple["PlannedRow", dict[str, Any] | None]]:
        """Sympy costs of every row of ``ops`` (dims may contain a symbol ``T``): ``(row, {field:
        expr})``, or ``(row, None)`` for a row no table can cost (the caller raises
        :meth:`uncosted_error` unless it allows uncosted rows). Sum these over ops and lambdify
        the sums once (:func:`picost.cost.formula.lambdify_numpy`) for vectorized sweeps."""
        return [(row, None if row.entry is None else row.table.row_exprs(row)) for row in self.plan(ops)]

    def row_exprs(self, row: "PlannedRow") -> dict[str, Any]:
        """``{field: sympy expression}`` of one planned row whose entry is this table's (kept per
        entry and dims; a new dict each call)."""
        key = (row.entry.where, *row.dims.items())
        found = self._exprs.get(key)
        if found is None:
            found = self._exprs[key] = self._row_exprs(row)
        return dict(found)

    def _row_exprs(self, row: "PlannedRow") -> dict[str, Any]:
        env = {**self._sympy_params(), **row.dims}
        out = {f: self._symbolic(row.entry, f, form, env, row.name) for f, form in row.entry.formulas.items()}
        if "compute_s" in out and self.machine is not None:
            if not self.machine.compute:
                del out["compute_s"]
            else:
                import sympy

                out["compute_s"] = out["compute_s"] * sympy.Float(self.compute_factor(row.entry), 15)
        return out

    def cost_exprs(self, op: Op) -> list[tuple[str, str, dict[str, Any] | None]]:
        """Sympy costs of ``op``: ``(row name, entry kind, {field: expr} or None if uncosted)``
        per row (see :meth:`cost_exprs_ops`)."""
        return [(row.name, row.kind, exprs) for row, exprs in self.cost_exprs_ops([op])]

    def _symbolic(self, entry: Entry, field_name: str, form: formula.Formula, env: Mapping[str, Any], row: str) -> Any:
        """``form`` as a sympy expression; an expression that is complex or not finite for every T
        (``sqrt(0 - n)``, ``1/0``) is the estimate's located error, never a silently real sweep."""
        import sympy

        try:
            expr = sympy.sympify(form.symbolic(env))
        except (ValueError, ZeroDivisionError, OverflowError) as exc:
            raise self._located(entry, field_name, f"{field_name} of op {row} cannot be evaluated: {exc}") from None
        if expr.has(sympy.I, sympy.zoo, sympy.nan, sympy.oo, -sympy.oo):
            shape = ", ".join(f"{k}={env[k]}" for k in entry.dims)
            raise self._located(entry, field_name, f"{field_name} of op {row} is {expr} at {shape}: not a finite "
                                                   "real number (costs must be finite and >= 0)")
        return expr

    def _located(self, entry: Entry, field_name: str, message: str) -> UserError:
        return UserError(message, file=self.path, line=entry.field_lines.get(field_name, entry.line),
                         field=f"{entry.where}.{field_name}")

    def _sympy_params(self) -> dict[str, Any]:
        import sympy

        return {n: sympy.Integer(p.value) if isinstance(p.value, int) else sympy.Rational(repr(p.value))
                for n, p in self.params.items()}

    def uncosted_error(self, op: Op, row: str, is_trunc: bool) -> UserError:
        """The error for a row this table cannot cost: names the row, the op kind and the table."""
        reason = self._uncosted_reason(op, TRUNCATION if is_trunc else op.kind, is_trunc)
        return UserError(f"protocol table '{self.name}' cannot cost op {row} (kind {op.kind}): {reason}; pass "
                         f"--allow-uncosted (allow_uncosted=True) to list it as an uncosted row", file=self.path)

    def _uncosted_reason(self, op: Op, kind: str, is_trunc: bool) -> str:
        if is_trunc and op.kind not in self.entries:
            return (f"its fixed-point output needs truncation and the table has neither a '{TRUNCATION}' nor a "
                    f"'{op.kind}' entry")
        if is_trunc:
            return (f"its fixed-point output needs truncation, the table has no '{TRUNCATION}' entry and its "
                    f"'{op.kind}' entry does not say includes_truncation: true")
        why = why_not_derived(kind, self.derive)
        return f"the table has no entry for op kind '{kind}'" + (f" ({why})" if why else "")

    def _evaluate(self, entry: Entry, field_name: str, form: formula.Formula, env: Mapping[str, Any],
                  row: str) -> Any:
        try:
            return form.value(env)
        except (ValueError, ZeroDivisionError, OverflowError, TypeError) as exc:  # log2(0), sqrt(-1), x / 0, huge powers
            shape = ", ".join(f"{k}={env[k]}" for k in entry.dims)
            raise self._located(entry, field_name, f"{field_name} of op {row} cannot be evaluated at {shape}: "
                                                   f"{exc}") from None

    def _checked(self, entry: Entry, field_name: str, value: Any, row: str) -> Any:
        if not (limits.number_ok(value) and value >= 0):
            raise self._located(entry, field_name, f"{field_name} of op {row} evaluates to {limits.short(value)}; "
                                                   "costs must be finite and >= 0")
        if field_name == "rounds" and abs(value - round(value)) > 1e-9 * max(1.0, abs(value)):
            raise self._located(entry, field_name, f"rounds of op {row} evaluates to {limits.short(value)}; rounds "
                                                   "count message flights and must be whole (use ceil() or floor())")
        return value


# -- finding tables ---------------------------------------------------------------------------

def shipped_protocols_dir() -> Path:
    """The directory of shipped tables (inside an installed wheel, or the source tree)."""
    return shipped_dir("protocols")


def shipped_protocol_names() -> list[str]:
    """Names of the shipped tables (file stems), sorted."""
    return shipped_names("protocols")


def resolve_protocol_path(ref: str | Path) -> Path:
    """A table reference -> a path: an existing file, else a shipped table name (``bumblebee``)."""
    candidate = Path(ref)
    if candidate.is_file():
        return candidate
    name = candidate.name[: -len(".yaml")] if candidate.name.endswith(".yaml") else candidate.name
    shipped = shipped_protocols_dir() / f"{name}.yaml"
    if len(candidate.parts) == 1 and shipped.is_file():
        return shipped
    names = shipped_protocol_names()
    close = difflib.get_close_matches(name, names, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; shipped tables: {', '.join(names) or 'none'}"
    raise UserError(f"no such protocol table file or shipped protocol '{ref}'{hint}", field="protocol")


_CACHE: dict[tuple[str, int], ProtocolTable] = {}


def load_protocol(ref: str | Path | ProtocolTable, options: Mapping[str, str] | None = None) -> ProtocolTable:
    """Load and validate a table by path or shipped name (cached per file and modification time),
    with ``options`` (``{"weights": "public"}``) in force and the table's defaults for the rest."""
    if isinstance(ref, ProtocolTable):
        return ref.with_options(options) if options else ref
    return _load_file(ref).with_options(options)


def _load_file(ref: str | Path, chain: tuple[str, ...] = ()) -> ProtocolTable:
    path = resolve_protocol_path(ref).resolve()
    key = (str(path), path.stat().st_mtime_ns)
    table = _CACHE.get(key)
    if table is None:
        data, lines = load_located(path)
        validator = _Validator(str(path), lines)
        base = None
        if isinstance(data, dict) and "extends" in data:
            base = validator.base_table(data["extends"], path, chain + (str(path),))
        table = validator.table(data, path.stem, base)
        _CACHE[key] = table
    return table


# -- validation -------------------------------------------------------------------------------

class _Validator:
    def __init__(self, file: str, lines: dict[KeyPath, int]) -> None:
        self.file = file
        self.lines = lines

    def error(self, path: KeyPath, message: str) -> UserError:
        return UserError(message, file=self.file, line=line_of(self.lines, path),
                         field=".".join(str(p) for p in path) or None)

    def mapping(self, value: Any, path: KeyPath, allowed: tuple[str, ...] | None,
                required: tuple[str, ...] = (), what: str = "key") -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(path, f"expected a mapping, got {type(value).__name__}")
        if allowed is not None:
            for key in value:
                if key not in allowed:
                    close = difflib.get_close_matches(str(key), allowed, n=1)
                    hint = f"; did you mean '{close[0]}'?" if close else f"; allowed: {', '.join(allowed)}"
                    raise self.error(path + (key,), f"unknown {what} '{key}'{hint}")
        for key in required:
            if key not in value:
                raise self.error(path, f"missing required key '{key}'")
        return value

    def text(self, value: Any, path: KeyPath) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.error(path, "expected a non-empty string")
        return value.strip()

    def base_table(self, ref: Any, path: Path, chain: tuple[str, ...]) -> ProtocolTable:
        """The table an ``extends:`` names: a shipped name or a path relative to this file."""
        if not isinstance(ref, str) or not ref.strip():
            raise self.error(("extends",), "'extends' must name a protocol table (a shipped name or a path)")
        if len(chain) > _EXTENDS_DEPTH:
            raise self.error(("extends",), f"'extends' is nested more than {_EXTENDS_DEPTH} tables deep")
        relative = path.parent / ref
        target = relative if relative.is_file() else Path(ref)
        try:
            resolved = str(resolve_protocol_path(target).resolve())
        except UserError as exc:
            raise self.error(("extends",), exc.message) from None
        if resolved in chain:
            raise self.error(("extends",), "'extends' forms a cycle: " + " -> ".join(chain + (resolved,)))
        return _load_file(target, chain)

    def table(self, data: Any, stem: str, base: ProtocolTable | None = None) -> ProtocolTable:
        """A table; one that ``extends`` ``base`` inherits its citations, setting, parameters,
        options and entries, and may add or override each (``defaults`` changes option defaults)."""
        required = ("name", "description", "confidence") if base else _TOP_REQUIRED
        top = self.mapping(data, (), _TOP_KEYS, required)
        if base is None and "defaults" in top:
            raise self.error(("defaults",), "'defaults' applies to a table that 'extends' another")
        name = self.text(top["name"], ("name",))
        if name != stem:
            raise self.error(("name",), f"name '{name}' must equal the file stem '{stem}'")
        citations = {**(base.citations if base else {}),
                     **{str(k): self.text(v, ("citations", k))
                        for k, v in self.mapping(top.get("citations", {}), ("citations",), None).items()}}
        params = {**(base.base_params if base else {}), **self.params(top.get("params", {}), citations)}
        ops = self.mapping(top.get("ops", {}), ("ops",), tuple(ENTRY_SYMBOLS), what="op kind")
        entries = {**(base.base_entries if base else {}),
                   **{kind: self.entry(kind, raw, params, citations, ("ops", kind)) for kind, raw in ops.items()}}
        if not entries:
            raise self.error(("ops",), "a table needs at least one op entry")
        options = {**(base.options if base else {}), **self.options(top.get("options", {}), params, citations)}
        options = self.defaults(top.get("defaults", {}), options)
        setting = self.setting(top["setting"]) if "setting" in top else base.setting  # type: ignore[union-attr]
        derive = top.get("derived_entries", base.derive if base else True)
        if not isinstance(derive, bool):
            raise self.error(("derived_entries",), "derived_entries must be true or false")
        table = ProtocolTable(name, self.text(top["description"], ("description",)), citations, setting,
                              self.text(top["confidence"], ("confidence",)), params,
                              with_derived(entries, params, setting) if derive else entries, self.file, options, {},
                              params, entries, derive=derive)
        return table.with_options({})

    def defaults(self, raw: Any, options: dict[str, Option]) -> dict[str, Option]:
        """``defaults: {option: choice}`` of an extending table, checked against the options."""
        out = dict(options)
        for name, value in self.mapping(raw, ("defaults",), None).items():
            if name not in out:
                raise self.error(("defaults", name), f"no option '{name}' to set a default for "
                                                     f"(options: {', '.join(out) or 'none'})")
            if value not in out[name].choices:
                raise self.error(("defaults", name), f"'{value}' is not a choice of option '{name}' "
                                                     f"({', '.join(out[name].choices)})")
            out[name] = dataclasses.replace(out[name], default=value)
        return out

    def options(self, raw: Any, params: Mapping[str, Param], citations: Mapping[str, str]) -> dict[str, Option]:
        """The ``options:`` block; no two options may set the same parameter or op kind."""
        out: dict[str, Option] = {}
        owner: dict[tuple[str, str], str] = {}  # ("param"|"op", name) -> option that sets it
        for name, spec in self.mapping(raw, ("options",), None).items():
            path = ("options", name)
            if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
                raise self.error(path, f"option name '{name}' must be a word (letters, digits, - or _)")
            o = self.mapping(spec, path, _OPTION_KEYS, _OPTION_KEYS)
            choices_raw = self.mapping(o["choices"], path + ("choices",), None)
            if not choices_raw:
                raise self.error(path + ("choices",), "an option needs at least one choice")
            choices = {str(c): self.choice(str(c), raw_choice, params, citations, path + ("choices", c))
                       for c, raw_choice in choices_raw.items()}
            default = o["default"]
            if not isinstance(default, str) or default not in choices:
                raise self.error(path + ("default",), f"default '{default}' is not one of the choices "
                                                      f"({', '.join(choices)})")
            for choice in choices.values():
                touched = [("param", p) for p in choice.params] + [("op", k) for k in choice.entries]
                for key in touched:
                    if owner.setdefault(key, name) != name:
                        raise self.error(path + ("choices", choice.name), f"option '{name}' sets {key[0]} "
                                         f"'{key[1]}', which option '{owner[key]}' sets too; one option per "
                                         "parameter and per op kind, so that any combination is well defined")
            out[name] = Option(name, self.text(o["description"], path + ("description",)), default, choices)
        return out

    def choice(self, name: str, raw: Any, params: Mapping[str, Param], citations: Mapping[str, str],
               path: KeyPath) -> Choice:
        c = self.mapping(raw, path, _CHOICE_KEYS, ("source",))
        source = self.source(c["source"], path + ("source",), citations)
        notes = self.text(c["notes"], path + ("notes",)) if "notes" in c else None
        values: dict[str, int | float] = {}
        for pname, value in self.mapping(c.get("params", {}), path + ("params",), None).items():
            if pname not in params:
                raise self.error(path + ("params", pname), f"'{pname}' is not a parameter of this table "
                                 f"(declared: {', '.join(params) or 'none'})")
            if not limits.number_ok(value):
                raise self.error(path + ("params", pname), "a parameter value must be a finite number")
            values[pname] = value
        ops = self.mapping(c.get("ops", {}), path + ("ops",), tuple(ENTRY_SYMBOLS), what="op kind")
        entries = {kind: self.entry(kind, e, params, citations, path + ("ops", kind)) for kind, e in ops.items()}
        return Choice(name, source, notes, values, entries)

    def setting(self, raw: Any) -> Setting:
        path = ("setting",)
        s = self.mapping(raw, path, _SETTING_KEYS, ("parties", "threat_model", "correlated_randomness"))
        if s["parties"] not in (1, 2, 3) or isinstance(s["parties"], bool):
            raise self.error(path + ("parties",), "parties must be 1 (no protocol), 2 or 3")
        if s["correlated_randomness"] not in _CORRELATED:
            raise self.error(path + ("correlated_randomness",),
                             f"correlated_randomness must be one of {', '.join(_CORRELATED)}")
        for key in ("ring_bits", "fractional_bits"):
            if key in s and (not isinstance(s[key], int) or isinstance(s[key], bool) or s[key] < 0):
                raise self.error(path + (key,), f"{key} must be a non-negative integer")
        he = self.mapping(s.get("he", {}), path + ("he",), None)
        for key, value in he.items():
            if isinstance(value, (dict, list)) or value is None:
                raise self.error(path + ("he", key), "HE parameters must be plain values")
        delays = s.get("delays_per_round", 1)
        if isinstance(delays, bool) or not isinstance(delays, int) or delays < 1:
            raise self.error(path + ("delays_per_round",), "delays_per_round must be a positive integer")
        sharing = s.get("sharing")
        if sharing is not None and sharing not in SHARINGS:
            raise self.error(path + ("sharing",), f"sharing must be one of {', '.join(SHARINGS)}")
        transfer = s.get("transfer", "serial")
        if transfer not in TRANSFERS:
            raise self.error(path + ("transfer",), f"transfer must be one of {', '.join(TRANSFERS)}")
        return Setting(s["parties"], self.text(s["threat_model"], path + ("threat_model",)),
                       s["correlated_randomness"], s.get("ring_bits"), s.get("fractional_bits"), he, delays, sharing,
                       transfer)

    def params(self, raw: Any, citations: Mapping[str, str]) -> dict[str, Param]:
        out = {}
        for name, spec in self.mapping(raw, ("params",), None).items():
            path = ("params", name)
            if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
                raise self.error(path, f"parameter name '{name}' must be an identifier")
            if name in ALL_DIMS or name in formula.FUNCTIONS:
                raise self.error(path, f"parameter name '{name}' clashes with an op dimension or a function")
            p = self.mapping(spec, path, _PARAM_KEYS, ("value", "source"))
            value = p["value"]
            if not limits.number_ok(value):
                raise self.error(path + ("value",), "a parameter value must be a finite number")
            unit = self.text(p["unit"], path + ("unit",)) if "unit" in p else None
            out[name] = Param(name, value, unit, self.source(p["source"], path + ("source",), citations))
        return out

    def source(self, raw: Any, path: KeyPath, citations: Mapping[str, str]) -> str:
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            raise self.error(path, "missing source (a citation, 'derived: ...' or 'measured: ...')")
        text = self.text(raw, path)
        for prefix in _SOURCE_PREFIXES:
            if text.startswith(prefix):
                if not text[len(prefix):].strip():
                    raise self.error(path, f"'{prefix}' must be followed by the derivation or the run")
                return text
        key, _, where = text.partition(" ")
        if key not in citations:
            known = ", ".join(citations) or "none"
            raise self.error(path, f"source must start with a citation key (known: {known}), 'derived:' or "
                                   f"'measured:'; got '{key}'")
        if not where.strip():
            raise self.error(path, f"source '{text}' must name the table or section after the citation key")
        return text

    def entry(self, kind: str, raw: Any, params: Mapping[str, Param], citations: Mapping[str, str],
              path: KeyPath, symbols: tuple[str, ...] = ()) -> Entry:
        """An entry of op kind ``kind`` (or, with ``symbols``, of a conversion step over them)."""
        e = self.mapping(raw, path, _ENTRY_KEYS)
        if "source" not in e:
            raise self.error(path, "missing source (a citation, 'derived: ...' or 'measured: ...')")
        source = self.source(e["source"], path + ("source",), citations)
        for key in _REQUIRED_FORMULAS:
            if key not in e:
                raise self.error(path, f"missing required formula '{key}'")
        dims = symbols or ENTRY_SYMBOLS[kind]
        allowed = set(dims) | set(params)
        formulas = {f: formula.parse(e[f], allowed, file=self.file, line=line_of(self.lines, path + (f,)),
                                     field_name=".".join(path + (f,)))
                    for f in FORMULA_FIELDS if f in e}
        directions = [f for f in ("bytes_client_to_server", "bytes_server_to_client") if f in formulas]
        if len(directions) == 1:
            raise self.error(path + (directions[0],), "give both per-direction byte counts or neither")
        if directions:
            self.check_directions(dims, formulas, params, path)
        includes = e.get("includes_truncation", False)
        if not isinstance(includes, bool):
            raise self.error(path + ("includes_truncation",), "includes_truncation must be true or false")
        if "includes_truncation" in e and (kind not in KINDS or not KINDS[kind].fixed_point_product):
            raise self.error(path + ("includes_truncation",),
                             f"includes_truncation applies only to kinds with fixed-point products "
                             f"({', '.join(k for k, v in KINDS.items() if v.fixed_point_product)})")
        notes = self.text(e["notes"], path + ("notes",)) if "notes" in e else None
        compute_source = None
        if "compute_source" in e:
            if "compute_s" not in formulas:
                raise self.error(path + ("compute_source",), "compute_source is the source of compute_s; "
                                                             "the entry has no compute_s")
            compute_source = self.source(e["compute_source"], path + ("compute_source",), citations)
        scaling = self.compute_scaling(e, formulas, path)
        compute_range = self.compute_range(e, formulas, dims, path)
        return Entry(kind, formulas, includes, source, notes, line_of(self.lines, path),
                     {f: line_of(self.lines, path + (f,)) for f in formulas}, ".".join(str(p) for p in path),
                     tuple(symbols), compute_source, scaling, compute_range)

    def compute_part(self, e: Mapping[str, Any], formulas: Mapping[str, Any], path: KeyPath, key: str,
                     keys: tuple[str, ...], what: str, optional: tuple[str, ...] = ()) -> tuple[KeyPath, dict[str, Any]] | None:
        """``(path, mapping)`` of the entry's ``key`` (a part of its compute: ``keys``, and any of
        ``optional``), or None when absent; an error when the entry has no ``compute_s`` for it to describe."""
        if key not in e:
            return None
        where = path + (key,)
        if "compute_s" not in formulas:
            raise self.error(where, f"{key} {what}; the entry has no compute_s")
        return where, self.mapping(e[key], where, keys + optional, keys)

    def compute_scaling(self, e: Mapping[str, Any], formulas: Mapping[str, Any], path: KeyPath) -> Any:
        """``compute_scaling: {serial: s, concurrent: c[, oversubscribed: rho]}`` (fractions from 0
        to 1; rho from 1 to 100, default 1), or None."""
        found = self.compute_part(e, formulas, path, "compute_scaling", _SCALING_KEYS, "says how compute_s scales",
                                  ("oversubscribed",))
        if found is None:
            return None
        from picost.cost.machine import Scaling

        where, raw = found
        for key in _SCALING_KEYS:
            value = raw[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise self.error(where + (key,), f"compute_scaling.{key} must be a fraction from 0 to 1")
        rho = raw.get("oversubscribed", 1.0)
        if isinstance(rho, bool) or not isinstance(rho, (int, float)) or not 1 <= rho <= 100:
            raise self.error(where + ("oversubscribed",), "compute_scaling.oversubscribed must be a number from 1 to 100")
        return Scaling(float(raw["serial"]), float(raw["concurrent"]), oversubscribed=float(rho))

    def compute_range(self, e: Mapping[str, Any], formulas: Mapping[str, Any], dims: tuple[str, ...],
                      path: KeyPath) -> Any:
        """``compute_range: {size: formula over the entry's dims, max: number}``, or None."""
        found = self.compute_part(e, formulas, path, "compute_range", _RANGE_KEYS, "is the measured range of compute_s")
        if found is None:
            return None
        where, raw = found
        size = formula.parse(raw["size"], set(dims), file=self.file, line=line_of(self.lines, where + ("size",)),
                             field_name=".".join(where + ("size",)))
        top = raw["max"]
        if isinstance(top, bool) or not isinstance(top, (int, float)) or not limits.number_ok(top) or top <= 0:
            raise self.error(where + ("max",), "compute_range.max must be a positive number (the largest size measured)")
        return size, top

    def check_directions(self, dims: tuple[str, ...], formulas: Mapping[str, formula.Formula],
                         params: Mapping[str, Param], path: KeyPath) -> None:
        """Per-direction bytes must add up to comm_bytes (checked at a few sample shapes)."""
        for sample in (1, 7, 64, 1000):
            env: dict[str, Any] = {p.name: p.value for p in params.values()}
            env.update({d: sample + 3 * i for i, d in enumerate(dims)})
            try:
                both = formulas["bytes_client_to_server"].value(env) + formulas["bytes_server_to_client"].value(env)
                total = formulas["comm_bytes"].value(env)
            except (ValueError, ZeroDivisionError, OverflowError, TypeError):
                continue  # outside a formula's domain at this sample shape; the estimate reports it if it matters
            if not (limits.number_ok(both) and limits.number_ok(total)):
                continue  # complex or huge at this sample shape; the estimate reports it if it matters
            if not math.isclose(both, total, rel_tol=1e-9, abs_tol=1e-9):
                shape = ", ".join(f"{d}={env[d]}" for d in dims)
                raise self.error(path + ("bytes_client_to_server",),
                                 f"per-direction bytes add up to {both} but comm_bytes is {total} at {shape}")

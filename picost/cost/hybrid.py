"""Hybrid protocols: op classes costed by different tables, with conversions between them.

Written ``linear=bumblebee,nonlinear=sigma`` (op classes or groups of them -> tables; a bare
table name covers the classes not named), or as a small YAML file::

    name: bumblebee-sigma          # the file stem
    description: BumbleBee's linears, SIGMA's activations
    compose: {linear: bumblebee, activation: sigma}   # tables by shipped name or path (relative to this file)
    conversions: my-conversions.yaml                   # optional; default protocols/conversions/conversions.yaml

Either is accepted wherever a protocol is (``-p``, ``protocol=`` in the API). Keys are op
classes (:data:`picost.model.ops.CLASSES`) or the groups of :data:`GROUPS`; a class named
explicitly wins over its group. Every class must end up with a table.

Between two consecutive ops costed by different tables whose share domains differ, the estimate
inserts conversion rows (class ``conversion``, one per step, named ``<next op>.<step>``) costed by
the conversions table with ``n`` = the previous op's output elements
(:mod:`picost.cost.conversions`). A pair of tables with no known conversion (3PC with 2PC, HE with
shares) is refused when the hybrid is loaded. Only the previous op's output is converted: an
operand from further back (the residual stream into an ``add``) is not, so a hybrid that
splits the residual adds from their neighbours undercounts; the groups keep adds with the linears.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from picost.cost.conversions import conversion_steps, load_conversions
from picost.cost.protocol_table import PlannedRow, ProtocolTable, Setting, load_protocol
from picost.errors import UserError
from picost.model.ops import CLASSES

#: Groups of op classes usable as keys (a class given by name wins over its group).
GROUPS: dict[str, tuple[str, ...]] = {
    "linear": ("embedding", "linear", "attention_matmul", "elementwise", "head"),
    "nonlinear": ("softmax", "activation", "norm"),
}
_FILE_KEYS = ("name", "description", "compose", "conversions")


@dataclass(frozen=True)
class HybridTable(ProtocolTable):
    """A protocol table composed of others per op class (see the module docstring)."""

    spelled: tuple[tuple[str | None, str], ...] = ()
    """The composition as written: (key or None for the default, table name)."""
    by_class: Mapping[str, ProtocolTable] = field(default_factory=dict)
    conversions: ProtocolTable | None = None
    steps: Mapping[tuple[str, str], tuple[tuple[str, dict[str, int]], ...]] = field(default_factory=dict)
    """Conversion steps per ordered pair of part names (empty when the domains agree)."""

    @property
    def parts(self) -> dict[str, ProtocolTable]:
        """The composed tables by name, in order of first use."""
        out: dict[str, ProtocolTable] = {}
        for table in self.by_class.values():
            out.setdefault(table.name, table)
        return out

    @property
    def table_names(self) -> tuple[str, ...]:
        assert self.conversions is not None
        return tuple(self.parts) + (self.conversions.name,)

    @property
    def label(self) -> str:
        parts = self.parts
        return ",".join(f"{key}={parts[name].label}" if key else parts[name].label for key, name in self.spelled)

    def composition(self) -> dict[str, Any]:
        """What the JSON records: classes -> table labels, and the conversion steps per pair."""
        return {"spelled": self.label, "classes": {c: t.label for c, t in self.by_class.items()},
                "conversions_table": self.conversions.path if self.conversions else None,
                "conversions": [{"from": a, "to": b, "steps": [{"step": s, **d} for s, d in steps]}
                                for (a, b), steps in self.steps.items() if steps]}

    def with_options(self, selected: Mapping[str, str] | None) -> "HybridTable":
        """Options apply to every part that declares them (at least one must)."""
        selected = dict(selected or {})
        for name in selected:
            if not any(name in t.options for t in self.parts.values()):
                known = sorted({o for t in self.parts.values() for o in t.options})
                raise UserError(f"no table of hybrid {self.label} has option '{name}' (its options: "
                                f"{', '.join(known) or 'none'})", field="--option")
        return self.with_part_options({n: {k: v for k, v in selected.items() if k in t.options}
                                       for n, t in self.parts.items()})

    def with_part_options(self, per_table: Mapping[str, Mapping[str, str]]) -> "HybridTable":
        """Each part with its own options (``{table name: {option: value}}``)."""
        if not any(per_table.values()):
            return self
        new = {n: t.with_options(per_table.get(n)) for n, t in self.parts.items()}
        return dataclasses.replace(self, by_class={c: new[t.name] for c, t in self.by_class.items()})

    def with_machine(self, machine: Any) -> "HybridTable":
        """Every part (and the conversions table) with compute scaled to ``machine``."""
        new = {n: t.with_machine(machine) for n, t in self.parts.items()}
        conversions = self.conversions.with_machine(machine) if self.conversions is not None else None
        return dataclasses.replace(self, machine=machine, by_class={c: new[t.name] for c, t in self.by_class.items()},
                                   conversions=conversions)

    def plan(self, ops: Any) -> list[PlannedRow]:
        assert self.conversions is not None
        rows: list[PlannedRow] = []
        prev = None
        for op in ops:
            table = self.by_class[op.op_class]
            if prev is not None and prev[1].name != table.name:
                for step, extra in self.steps[(prev[1].name, table.name)]:
                    rows.append(PlannedRow(op, f"{op.name}.{step}", step, "conversion", self.conversions,
                                           self.conversions.entries[step], {"n": prev[0].outputs, **extra}))
            rows += table.plan([op])
            if not op.info.public_output:  # after an opening, the next op converts the shares before it
                prev = (op, table)
        return rows

    def rows_for(self, op: Any) -> list[tuple[str, str, Any, dict[str, Any], bool]]:
        return self.by_class[op.op_class].rows_for(op)


def is_hybrid_text(ref: Any) -> bool:
    """Whether a ``--protocol`` text is an inline composition (``linear=bumblebee,...``)."""
    return isinstance(ref, str) and "=" in ref and not Path(ref).is_file()


def load_costing(ref: "str | Path | ProtocolTable", options: Mapping[str, str] | None = None) -> ProtocolTable:
    """A protocol table or a hybrid: a loaded table, an inline composition, a hybrid file, or a
    table name/path (:func:`~picost.cost.protocol_table.load_protocol`), with ``options``."""
    if options is not None and (not isinstance(options, Mapping)
                                or not all(isinstance(k, str) and isinstance(v, str) for k, v in options.items())):
        raise UserError(f"options must map option names to values ({{'weights': 'public'}}), not "
                        f"{type(options).__name__}", field="--option")
    if not isinstance(ref, (str, Path, ProtocolTable)):
        raise UserError(f"protocol must be a table name, a path or a ProtocolTable, not {type(ref).__name__}",
                        field="--protocol")
    if isinstance(ref, ProtocolTable):
        return ref.with_options(options) if options else ref
    if is_hybrid_text(ref):
        return parse_hybrid(str(ref)).with_options(options)
    path = Path(ref)
    if path.suffix in (".yaml", ".yml") and path.is_file() and _is_hybrid_file(path):
        return load_hybrid_file(path).with_options(options)
    return load_protocol(ref, options)


def parse_hybrid(text: str) -> HybridTable:
    """``linear=bumblebee,nonlinear=sigma`` (a bare name: the default table) -> a hybrid."""
    items: list[tuple[str | None, str]] = []
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not part.strip() or (sep and (not key or not value)):
            raise UserError(f"hybrid protocol '{text}' must be CLASS=TABLE items separated by commas (e.g. "
                            "linear=bumblebee,nonlinear=sigma), with at most one bare TABLE for the other classes",
                            field="--protocol")
        items.append((key, value) if sep else (None, key))
    return compose(items, None, text, "", field_name="--protocol")


def _is_hybrid_file(path: Path) -> bool:
    from picost.model.located_yaml import load_located

    data, _ = load_located(path)
    return isinstance(data, dict) and "compose" in data


def load_hybrid_file(path: Path) -> HybridTable:
    from picost.model.located_yaml import line_of, load_located

    data, lines = load_located(path)

    def fail(message: str, key: tuple = ()) -> UserError:
        return UserError(message, file=str(path), line=line_of(lines, key), field=".".join(map(str, key)) or None)

    for key in data:
        if key not in _FILE_KEYS:
            close = difflib.get_close_matches(str(key), _FILE_KEYS, n=1)
            raise fail(f"unknown key '{key}'" + (f"; did you mean '{close[0]}'?" if close else
                                                 f"; allowed: {', '.join(_FILE_KEYS)}"), (key,))
    if data.get("name") != path.stem:
        raise fail(f"name must be the file stem '{path.stem}'", ("name",))
    compose_raw = data["compose"]
    if not isinstance(compose_raw, dict) or not compose_raw:
        raise fail("compose must map op classes (or groups) to tables", ("compose",))
    items = []
    for key, ref in compose_raw.items():
        if not isinstance(ref, str) or not ref.strip():
            raise fail("each class needs a table (a shipped name or a path)", ("compose", key))
        items.append((None if key in ("default", "*") else str(key), _relative(path, ref.strip())))
    conv = data.get("conversions")
    if conv is not None and (not isinstance(conv, str) or not conv.strip()):
        raise fail("conversions must name a conversions table file", ("conversions",))
    description = data.get("description")
    return compose(items, _relative(path, conv.strip()) if conv else None, path.stem,
                   str(description) if description else "", file=str(path), field_name="compose")


def _relative(base: Path, ref: str) -> str:
    candidate = base.parent / ref
    return str(candidate) if candidate.is_file() else ref


def compose(items: list[tuple[str | None, str]], conversions_ref: str | None, name: str, description: str, *,
            file: str | None = None, field_name: str = "--protocol") -> HybridTable:
    """Build a hybrid from ``(key or None, table ref)`` items; every class gets a table, every
    ordered pair of different tables a conversion (else a :class:`UserError`)."""
    keys = set(CLASSES) | set(GROUPS)
    tables: dict[str, ProtocolTable] = {}
    explicit: dict[str, str] = {}
    grouped: dict[str, str] = {}
    default: str | None = None
    spelled: list[tuple[str | None, str]] = []
    for key, ref in items:
        table = load_protocol(ref)
        tables.setdefault(table.name, table)
        spelled.append((key, table.name))
        if key is None:
            if default is not None:
                raise UserError(f"hybrid protocol gives two default tables ({default}, {table.name})", file=file,
                                field=field_name)
            default = table.name
            continue
        if key not in keys:
            close = difflib.get_close_matches(key, sorted(keys), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise UserError(f"unknown op class or group '{key}' in a hybrid protocol; {hint}classes: "
                            f"{', '.join(CLASSES)}; groups: " + "; ".join(f"{g} = {', '.join(cs)}"
                                                                            for g, cs in GROUPS.items()),
                            file=file, field=field_name)
        for cls in GROUPS.get(key, (key,)):
            target = explicit if key == cls else grouped
            if cls in target and target[cls] != table.name:
                raise UserError(f"op class '{cls}' is given two tables ({target[cls]}, {table.name})", file=file,
                                field=field_name)
            target[cls] = table.name
    by_name = {c: explicit.get(c) or grouped.get(c) or default for c in CLASSES}
    missing = [c for c, t in by_name.items() if t is None]
    if missing:
        raise UserError(f"hybrid protocol gives no table for op class(es) {', '.join(missing)}; name them, a group "
                        "(linear, nonlinear) or a default table", file=file, field=field_name)
    by_class = {c: tables[t] for c, t in by_name.items() if t is not None}
    if len(set(by_name.values())) < 2:
        raise UserError("a hybrid protocol needs at least two tables (for one, pass its name)", file=file,
                        field=field_name)
    conv = load_conversions(conversions_ref)
    parts = {t.name: t for t in by_class.values()}
    _check_transport(parts, file, field_name)
    steps = {(a, b): conversion_steps(parts[a], parts[b], conv) for a in parts for b in parts if a != b}
    settings = [t.setting for t in parts.values()]
    setting = Setting(settings[0].parties, " + ".join(dict.fromkeys(s.threat_model for s in settings)),
                      " + ".join(dict.fromkeys(s.correlated_randomness for s in settings)), None, None, {},
                      settings[0].delays_per_round, settings[0].shares, _transfer(settings))
    citations: dict[str, str] = {}
    for t in list(parts.values()) + [conv]:
        for k, v in t.citations.items():
            citations[k if citations.get(k, v) == v else f"{t.name}:{k}"] = v
    text = description or ("hybrid: " + ", ".join(f"{c} by {t.name}" for c, t in by_class.items()))
    confidence = "That of each composed table for its classes, and of the conversions table for the conversions: " + \
                 "; ".join(f"{t.name}: {t.confidence.split('. ')[0].rstrip('.')}" for t in [*parts.values(), conv])
    return HybridTable(name, text, citations, setting, confidence, {}, {}, file or "", spelled=tuple(spelled),
                       by_class=by_class, conversions=conv, steps=steps)


def _transfer(settings: list[Setting]) -> str:
    """A hybrid's transfer: ``parallel`` only if every composed table's is (the bytes of a
    serial table's rows do not overlap), else the conservative ``serial``."""
    return "parallel" if all(s.transfer == "parallel" for s in settings) else "serial"


def _check_transport(parts: Mapping[str, ProtocolTable], file: str | None, field_name: str) -> None:
    delays = {t.setting.delays_per_round for t in parts.values()}
    if len(delays) > 1:
        each = ", ".join(f"{n}: {t.setting.delays_per_round}" for n, t in parts.items())
        raise UserError(f"the tables of a hybrid must share one transport, but their delays_per_round differ ({each})",
                        file=file, field=field_name)

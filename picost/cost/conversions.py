"""Share conversions between protocol tables: what a hybrid pays between two ops costed by tables
whose activations live in different share domains.

A table's *domain* is how it holds activations between ops (``setting.sharing``, by default from
the party count: additive 2PC shares, replicated 3PC shares, plaintext), its ring
(``setting.ring_bits``) and its fixed-point precision (``setting.fractional_bits``). Between two
2PC additive domains the conversion is a short chain of steps (:func:`ring_steps`): drop
fractional bits with SIRNN's truncate-and-reduce, widen the ring with its signed extension, and
the local steps (reduce each share, shift each share). Each step's cost is an entry of the
conversions table (``protocols/conversions/conversions.yaml``, same entry rules as a protocol
table: formulas over the step's symbols, a source per entry). Any other pair of domains (3PC with
2PC, HE ciphertexts with shares, plaintext with a protocol) has no conversion here: a hybrid that
needs one is refused with a :class:`UserError` naming it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from picost.cost.protocol_table import ProtocolTable, Setting, _Validator, resolve_protocol_path
from picost.errors import UserError
from picost.model.located_yaml import load_located
from picost.shipped import shipped_dir

#: Conversion steps the planner knows, with the symbols of their formulas (``n`` = elements).
STEP_SYMBOLS: dict[str, tuple[str, ...]] = {
    "reduce": ("n", "l", "r"),           # l-bit shares -> r-bit shares, r < l (local)
    "shift_up": ("n", "r", "s"),         # (r - s)-bit shares -> r-bit shares times 2^s (local)
    "truncate_reduce": ("n", "l", "s"),  # l-bit shares -> (l - s)-bit shares, s fewer fractional bits
    "extend": ("n", "m", "r"),           # m-bit shares -> r-bit shares, same value (signed)
}
_TOP_KEYS = ("name", "description", "citations", "confidence", "params", "steps")


def shipped_conversions_path() -> Path:
    return shipped_dir("protocols") / "conversions" / "conversions.yaml"


_CACHE: dict[tuple[str, int], ProtocolTable] = {}


def load_conversions(ref: str | Path | None = None) -> ProtocolTable:
    """The conversions table (default: the shipped one), loaded and checked like a protocol table:
    its entries are keyed by step (:data:`STEP_SYMBOLS`)."""
    path = (shipped_conversions_path() if ref is None else resolve_protocol_path(ref)).resolve()
    key = (str(path), path.stat().st_mtime_ns)
    if key not in _CACHE:
        data, lines = load_located(path)
        v = _Validator(str(path), lines)
        top = v.mapping(data, (), _TOP_KEYS, _TOP_KEYS[:2] + ("confidence", "steps"))
        name = v.text(top["name"], ("name",))
        if name != path.stem:
            raise v.error(("name",), f"name '{name}' must equal the file stem '{path.stem}'")
        citations = {str(k): v.text(c, ("citations", k))
                     for k, c in v.mapping(top.get("citations", {}), ("citations",), None).items()}
        params = v.params(top.get("params", {}), citations)
        raw = v.mapping(top["steps"], ("steps",), tuple(STEP_SYMBOLS), what="conversion step")
        entries = {step: v.entry(step, e, params, citations, ("steps", step), STEP_SYMBOLS[step])
                   for step, e in raw.items()}
        setting = Setting(2, "semi-honest", "none", sharing="additive")
        _CACHE[key] = ProtocolTable(name, v.text(top["description"], ("description",)), citations, setting,
                                    v.text(top["confidence"], ("confidence",)), params, entries, str(path),
                                    base_params=params, base_entries=entries)
    return _CACHE[key]


@dataclass(frozen=True)
class Domain:
    """How a table holds activations between ops."""

    shares: str
    parties: int
    ring_bits: int | None
    fractional_bits: int | None

    @classmethod
    def of(cls, table: ProtocolTable) -> "Domain":
        s = table.setting
        return cls(s.shares, s.parties, s.ring_bits, s.fractional_bits)

    def describe(self) -> str:
        what = {"plaintext": "plaintext", "additive": "additive shares", "replicated": "replicated shares",
                "he": "HE ciphertexts"}[self.shares]
        out = f"{self.parties}PC {what}" if self.parties > 1 else what
        if self.ring_bits is not None:
            out += f" over Z_2^{self.ring_bits}"
            if self.fractional_bits is not None:
                out += f" f={self.fractional_bits}"
        return out


def ring_steps(l1: int, f1: int, l2: int, f2: int) -> list[tuple[str, dict[str, int]]]:
    """The steps from ``l1``-bit shares with ``f1`` fractional bits to ``l2``-bit shares with ``f2``
    (each ``(step, its symbols but n)``), cheapest order: reduce before truncating (a narrower
    truncate-and-reduce), extend only as far as the target needs before a local shift."""
    out: list[tuple[str, dict[str, int]]] = []
    if f2 < f1:
        s = f1 - f2
        before = l2 + s  # truncate-and-reduce by s lands on l2 bits from here
        if l1 > before:
            out.append(("reduce", {"l": l1, "r": before}))
        out.append(("truncate_reduce", {"l": min(l1, before), "s": s}))
        if l1 < before:
            out.append(("extend", {"m": l1 - s, "r": l2}))
        return out
    target = l2 - (f2 - f1)  # ring before the local shift
    if l1 > target:
        out.append(("reduce", {"l": l1, "r": target}))
    elif l1 < target:
        out.append(("extend", {"m": l1, "r": target}))
    if f2 > f1:
        out.append(("shift_up", {"r": l2, "s": f2 - f1}))
    return out


def conversion_steps(src: ProtocolTable, dst: ProtocolTable,
                     table: ProtocolTable) -> tuple[tuple[str, dict[str, int]], ...]:
    """The steps that carry activations from ``src``'s domain to ``dst``'s (none when equal), each
    costed by an entry of the conversions ``table``; a pair with no known conversion is a
    :class:`UserError` naming both tables, their domains and what is missing."""
    a, b = Domain.of(src), Domain.of(dst)
    if a == b:
        return ()
    where = f"{src.label} ({a.describe()}) to {dst.label} ({b.describe()})"
    if not (a.shares == b.shares == "additive" and a.parties == b.parties == 2):
        raise UserError(f"no conversion from {where}: the conversions table ({table.name}) converts only between "
                        "2PC additive sharings (rings and fixed-point precisions); this hybrid cannot be costed",
                        file=table.path, field="--protocol")
    for d, t in ((a, src), (b, dst)):
        if d.ring_bits is None or d.fractional_bits is None:
            raise UserError(f"cannot plan a conversion from {where}: table {t.name} states no ring_bits or "
                            "fractional_bits in its setting", file=t.path, field="setting")
    l1, f1, l2, f2 = a.ring_bits, a.fractional_bits, b.ring_bits, b.fractional_bits
    if min(l1 - max(f1 - f2, 0), l2 - max(f2 - f1, 0)) < 2:
        raise UserError(f"no conversion from {where}: the precision change leaves no integer bits",
                        field="--protocol")
    steps = tuple(ring_steps(l1, f1, l2, f2))  # type: ignore[arg-type]
    missing = [s for s, _ in steps if s not in table.entries]
    if missing:
        raise UserError(f"no conversion from {where}: the conversions table has no '{missing[0]}' step",
                        file=table.path, field="steps")
    return steps


def describe_steps(steps: Any) -> str:
    """``truncate_reduce(l=56, s=6) + reduce(...)``, or ``none`` (same domain)."""
    return " + ".join(f"{s}({', '.join(f'{k}={v}' for k, v in d.items())})" for s, d in steps) or "none"

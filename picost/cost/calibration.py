"""Compute-time calibration profiles: this machine's seconds per op kind for an engine.

A profile (YAML, written by ``picost calibrate``) gives, per row kind (an op kind or
``truncation``), ``compute_s = fixed_s + per_element_s * elements`` where ``elements`` is the
op's element count as defined in :data:`picost.model.ops.KINDS` (``n`` for a truncation row; for an
embedding, ``tokens * vocab * width``: the engine multiplies a one-hot matrix by the table)::

    schema: picost.calibration/1
    protocol: picost-2pc
    measured: "picost calibrate ... on <host>, <date>"   # how it was measured
    kinds:
      relu: {fixed_s: 0.0021, per_element_s: 3.1e-07}
      ...

:func:`apply_calibration` returns the protocol table with these ``compute_s`` formulas (source
``measured: ...``) in place of the table's own, so the estimate's compute term is this machine's.
This module is part of the analytic core: no torch, no engine.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from picost.cost import formula
from picost.errors import UserError
from picost.model.ops import KINDS
from picost.cost.protocol_table import ENTRY_SYMBOLS, TRUNCATION, ProtocolTable

SCHEMA = "picost.calibration/1"
_TOP_KEYS = ("schema", "protocol", "measured", "kinds")
_KIND_KEYS = ("fixed_s", "per_element_s")


@dataclass(frozen=True)
class KindTime:
    """Compute seconds of one row kind: ``fixed_s + per_element_s * elements``."""

    fixed_s: float
    per_element_s: float


@dataclass(frozen=True)
class Profile:
    """A calibration profile (see the module docstring)."""

    protocol: str
    measured: str
    kinds: Mapping[str, KindTime]

    def to_yaml(self) -> str:
        import yaml

        data = {"schema": SCHEMA, "protocol": self.protocol, "measured": self.measured,
                "kinds": {k: {"fixed_s": float(f"{t.fixed_s:.4g}"), "per_element_s": float(f"{t.per_element_s:.4g}")}
                          for k, t in self.kinds.items()}}
        return yaml.safe_dump(data, sort_keys=False, width=100)


def elements_expression(kind: str) -> str:
    """The element count of a row of ``kind`` as a formula over its dimension symbols."""
    if kind == TRUNCATION:
        return "n"
    if kind == "embedding":
        return "tokens*vocab*width"
    info = KINDS[kind]
    import sympy

    return str(info.elements({d: sympy.Symbol(d) for d in info.dims}))


def compute_formula(kind: str, time: KindTime) -> str:
    return f"{time.fixed_s!r} + {time.per_element_s!r} * ({elements_expression(kind)})"


def load_profile(path: str | Path) -> Profile:
    """Read and check a profile; every mistake is a :class:`UserError` with file, line, field."""
    from picost.model.located_yaml import line_of, load_located

    file = str(path)
    data, lines = load_located(path)

    def fail(message: str, key_path: tuple = ()) -> UserError:
        return UserError(message, file=file, line=line_of(lines, key_path) if key_path else None,
                         field=".".join(map(str, key_path)) or None)

    if not isinstance(data, dict):
        raise fail("a calibration profile is a mapping with schema, protocol, measured and kinds")
    for key in data:
        if key not in _TOP_KEYS:
            raise fail(f"unknown key '{key}' (allowed: {', '.join(_TOP_KEYS)})", (key,))
    for key in _TOP_KEYS:
        if key not in data:
            raise fail(f"missing '{key}'")
    if data["schema"] != SCHEMA:
        raise fail(f"schema must be '{SCHEMA}'", ("schema",))
    for key in ("protocol", "measured"):
        if not isinstance(data[key], str) or not data[key].strip():
            raise fail(f"'{key}' must be non-empty text", (key,))
    if not isinstance(data["kinds"], dict) or not data["kinds"]:
        raise fail("'kinds' must map row kinds to {fixed_s, per_element_s}", ("kinds",))
    kinds = {}
    for kind, entry in data["kinds"].items():
        where = ("kinds", kind)
        if kind not in ENTRY_SYMBOLS:
            raise fail(f"unknown row kind '{kind}' (kinds: {', '.join(ENTRY_SYMBOLS)})", where)
        if not isinstance(entry, dict) or set(entry) != set(_KIND_KEYS):
            raise fail("give exactly fixed_s and per_element_s (seconds)", where)
        for key in _KIND_KEYS:
            value = entry[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise fail(f"{key} must be a non-negative number of seconds", where + (key,))
        kinds[kind] = KindTime(float(entry["fixed_s"]), float(entry["per_element_s"]))
    return Profile(data["protocol"], data["measured"], kinds)


def apply_calibration(table: ProtocolTable, profile: Profile, profile_file: str = "") -> ProtocolTable:
    """``table`` with every profiled kind's ``compute_s`` replaced by the profile's formula.

    The profile must be for this table. Kinds it does not time keep the table's own compute
    (usually none); the estimate says for how many rows compute was modeled, so a partial
    profile shows, it is never a silent zero."""
    if profile.protocol != table.name:
        raise UserError(f"the calibration profile is for protocol '{profile.protocol}', not '{table.name}'",
                        file=profile_file or None, field="protocol")
    entries = dict(table.entries)
    for kind, entry in table.entries.items():
        if kind not in profile.kinds:
            continue
        text = compute_formula(kind, profile.kinds[kind])
        compute = formula.parse(text, ENTRY_SYMBOLS[kind], file=profile_file or None, field_name=f"kinds.{kind}")
        entries[kind] = dataclasses.replace(
            entry, formulas={**entry.formulas, "compute_s": compute}, compute_source=f"measured: {profile.measured}")
    return dataclasses.replace(table, entries=entries)


def calibrated_table(protocol: Any, calibration: str | Path | None,
                     option_texts: Sequence[str] | None = None) -> ProtocolTable:
    """Load ``protocol`` with its ``--option`` values and, when a profile file is given, apply it."""
    from picost.cost.table_options import load_tables

    table = load_tables([protocol], option_texts)[0]
    if calibration is None:
        return table
    return apply_calibration(table, load_profile(calibration), str(calibration))

"""``--option`` arguments: choose among the options a protocol table declares.

``NAME=VALUE`` applies to every table of the command (each must declare ``NAME``);
``TABLE:NAME=VALUE`` to that table only. Malformed text, an option twice, a table the command
does not use, or an unknown option or value is a :class:`~picost.errors.UserError` (exit 2).
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

from picost.cost.protocol_table import ProtocolTable
from picost.errors import UserError

OptionArgs = dict[str | None, dict[str, str]]
"""Parsed ``--option`` values: table name (``None`` = every table) -> {option: value}."""


def parse_option_args(texts: Iterable[str] | None) -> OptionArgs:
    """``["weights=public", "crypten:norm_gain=public"]`` -> ``{None: {...}, "crypten": {...}}``."""
    out: OptionArgs = {}
    for text in texts or ():
        target, sep, value = text.partition("=")
        table, colon, name = target.rpartition(":")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value or (colon and not table.strip()):
            raise UserError(f"--option '{text}' must be NAME=VALUE or TABLE:NAME=VALUE (e.g. weights=public)",
                            field="--option")
        scope = table.strip() or None
        chosen = out.setdefault(scope, {})
        if name in chosen and chosen[name] != value:
            raise UserError(f"--option {name} is given twice ({chosen[name]}, {value})", field="--option")
        chosen[name] = value
    return out


def options_for(table_name: str, args: OptionArgs) -> dict[str, str]:
    """The options given for ``table_name``: the unscoped ones, then its own (which win)."""
    return {**args.get(None, {}), **args.get(table_name, {})}


def load_tables(refs: Sequence[str], option_texts: Iterable[str] | None = None) -> list[ProtocolTable]:
    """Load each table with its ``--option`` values in force."""
    from picost.cost.hybrid import HybridTable, load_costing

    args = parse_option_args(option_texts)
    tables = []
    for ref in refs:
        base = load_costing(ref)
        if isinstance(base, HybridTable):
            if args.get(None):
                base = base.with_options(args[None])
            tables.append(base.with_part_options({n: args.get(n, {}) for n in base.parts}))
        else:
            tables.append(base.with_options(options_for(base.name, args)))
    names = [n for t in tables for n in t.table_names]
    unused = sorted(set(args) - {None} - set(names))
    if unused:
        raise UserError(f"--option names table '{unused[0]}', which this command does not use "
                        f"(tables: {', '.join(names)})", field="--option")
    return tables


def describe_options(chosen: Mapping[str, str]) -> str:
    """``weights=public, gelu=puma`` (empty when the table has no options)."""
    return ", ".join(f"{k}={v}" for k, v in chosen.items())

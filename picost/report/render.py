"""Turning results into output: rich tables, JSON, CSV, markdown. A face; the library never
imports it. Heavy modules are not imported here."""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Sequence

FORMATS = ("table", "json", "csv", "md")


def to_jsonable(value: Any) -> Any:
    """ints stay ints, sympy/numpy numbers become int or float, containers recurse."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() and abs(value) < 2**63 else value
    if hasattr(value, "is_Integer") and value.is_Integer:  # sympy
        return int(value)
    if hasattr(value, "item"):  # numpy scalar
        return to_jsonable(value.item())
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def dump_json(obj: Any) -> str:
    return json.dumps(to_jsonable(obj), indent=2)


def dump_csv(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([to_jsonable(v) for v in row])
    return buf.getvalue()


def dump_markdown(header: Sequence[str], rows: Sequence[Sequence[Any]], align_right: Sequence[bool] | None = None) -> str:
    align = align_right or [False] * len(header)
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---:" if r else "---" for r in align) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(lines) + "\n"


def rich_table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]],
               align_right: Sequence[bool] | None = None, footer: Sequence[Any] | None = None) -> Any:
    from rich.table import Table

    align = align_right or [False] * len(header)
    table = Table(title=title, show_footer=footer is not None)
    for i, name in enumerate(header):
        table.add_column(name, justify="right" if align[i] else "left",
                         footer=str(footer[i]) if footer is not None else "")
    for row in rows:
        table.add_row(*(str(c) for c in row))
    return table


def human_count(x: Any) -> str:
    """1234567 -> '1.23 M' (decimal prefixes)."""
    x = float(x)
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g} {unit}"
    return f"{x:.4g}"


def human_bytes(x: Any) -> str:
    """Bytes with decimal prefixes: 1.5e9 -> '1.50 GB'."""
    x = float(x)
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.2f} {unit}"
    return f"{x:.0f} B"


def human_seconds(x: Any) -> str:
    x = float(x)
    if x >= 120:
        return f"{x / 60:.2f} min"
    if x >= 1:
        return f"{x:.2f} s"
    return f"{x * 1e3:.2f} ms"


def human_times(x: float | None) -> str:
    """A savings factor: 2.547 -> '2.55x' ('-' when unknown, 'inf' when the cost went to zero)."""
    return "-" if x is None else ("inf" if x == float("inf") else f"{x:.2f}x")

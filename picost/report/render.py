"""Turning results into output: rich tables, JSON, CSV, markdown. A face; the library never
imports it. Heavy modules are not imported here."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Mapping, Sequence

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


#: Numbers per piece when a long array is written out (:func:`json_pieces`, :func:`csv_pieces`).
PIECE = 1 << 14


def json_pieces(obj: Any) -> Iterator[str]:
    """``obj`` as the JSON :func:`dump_json` gives, in pieces: a 1-D numpy array anywhere in it is
    written as one line of numbers, :data:`PIECE` at a time (each number as :func:`to_jsonable`
    makes it), so a million-step array never becomes a million Python objects at once."""
    import secrets

    arrays: list[Any] = []
    mark = secrets.token_hex(8)  # no text in obj can pose as an array's place

    def hold(value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k): hold(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [hold(v) for v in value]
        if hasattr(value, "shape") and hasattr(value, "dtype") and len(value.shape) == 1:
            arrays.append(value)
            return f"\0{mark}{len(arrays) - 1}\0"
        return to_jsonable(value)

    text = json.dumps(hold(obj), indent=2)
    parts = re.split(r'"\\u0000' + mark + r'(\d+)\\u0000"', text)
    yield parts[0]
    for i in range(1, len(parts), 2):
        arr = arrays[int(parts[i])]
        yield "["
        for at in range(0, len(arr), PIECE):
            yield ("" if at == 0 else ", ") + ", ".join(map(_json_number, arr[at:at + PIECE].tolist()))
        yield "]" + parts[i + 1]


def _json_number(value: Any) -> str:
    """One array element as :func:`dump_json` writes it (whole floats as ints)."""
    if type(value) is int:
        return str(value)
    if type(value) is float and math.isfinite(value):
        return str(int(value)) if value.is_integer() and abs(value) < 2**63 else repr(value)
    return json.dumps(to_jsonable(value))


def csv_pieces(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    """:func:`dump_csv`'s text in pieces of :data:`PIECE` rows (``rows`` may be a generator)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for i, row in enumerate(rows, 1):
        writer.writerow([to_jsonable(v) for v in row])
        if i % PIECE == 0:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()


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


#: Short labels of the op classes, used by tables that would not fit the terminal with the full
#: names; such a table prints the labels it used under it ("attn = attention_matmul").
CLASS_LABELS = {"embedding": "embed", "linear": "linear", "attention_matmul": "attn", "softmax": "softmax",
                "activation": "act", "norm": "norm", "elementwise": "elem", "head": "head", "truncation": "trunc",
                "conversion": "conv"}

TEXT_MIN_WIDTH = 30  # narrowest a free-text column gets before it is left out (or moved below the table)


@dataclass(frozen=True)
class Column:
    """How one column of a terminal table behaves when the terminal is narrow.

    Cells of a column that is not ``text`` never wrap (a number stays on one line with its unit);
    ``text`` cells wrap on word boundaries. When the table does not fit, it first uses the short
    labels (``short_header``, ``short``), then leaves out columns, the largest ``drop`` first
    (``drop=0``: always shown); a left-out ``spill`` column is printed below the table as
    paragraphs instead. No cell is ever cut with an ellipsis."""

    header: str
    numeric: bool = False
    text: bool = False
    drop: int = 0
    spill: bool = False
    min_width: int = TEXT_MIN_WIDTH
    short_header: str | None = None
    short: Mapping[str, str] | None = None


def rich_table(title: str, header: Sequence[str | Column], rows: Sequence[Sequence[Any]],
               align_right: Sequence[bool] | None = None, footer: Sequence[Any] | None = None,
               hint: str = "", spill_key: int = 0) -> Any:
    """A table that fits the console it is printed on (see :class:`Column`). ``header`` holds
    column names (right-aligned where ``align_right``) or :class:`Column` s; ``hint`` says how to see
    left-out columns (e.g. ``-f csv``); spilled paragraphs are keyed by the cell of column
    ``spill_key``."""
    align = align_right or [False] * len(header)
    columns = [c if isinstance(c, Column) else Column(c, numeric=align[i]) for i, c in enumerate(header)]
    cells = [["" if c is None else str(c) for c in row] for row in rows]
    foot = None if footer is None else ["" if c is None else str(c) for c in footer]
    return FitTable(title, columns, cells, foot, hint, spill_key)


def _cell_width(text: str) -> int:
    from rich.cells import cell_len

    return max((cell_len(line) for line in text.split("\n")), default=0)


class FitTable:
    """A rich renderable: the table laid out for the width it is rendered at, then the notes
    (short labels used, columns left out) and spilled paragraphs."""

    def __init__(self, title: str, columns: list[Column], rows: list[list[str]], footer: list[str] | None,
                 hint: str, spill_key: int) -> None:
        self.title, self.columns, self.rows, self.footer = title, columns, rows, footer
        self.hint, self.spill_key = hint, spill_key

    def _label(self, i: int, text: str, short: bool) -> str:
        col = self.columns[i]
        return col.short.get(text, text) if short and col.short else text

    def _header(self, i: int, short: bool) -> str:
        col = self.columns[i]
        return col.short_header if short and col.short_header else col.header

    def _natural(self, i: int, short: bool) -> int:
        """The width of the widest cell of column ``i`` (header and footer included)."""
        cells = [self._label(i, row[i], short) for row in self.rows]
        cells += [self._header(i, short)] + ([self.footer[i]] if self.footer else [])
        return max(_cell_width(c) for c in cells)

    def _width(self, i: int, short: bool) -> int:
        """The width column ``i`` needs: the widest cell, or for free text at most its ``min_width``."""
        natural = self._natural(i, short)
        return min(natural, self.columns[i].min_width) if self.columns[i].text else natural

    def layout(self, width: int) -> tuple[list[int], bool]:
        """The indices of the columns shown at ``width`` and whether short labels are used."""
        def need(shown: list[int], short: bool) -> int:  # cells + padding 2 + one rule per column, + 1
            return sum(self._width(i, short) + 3 for i in shown) + 1

        shown = list(range(len(self.columns)))
        short = need(shown, False) > width
        droppable = sorted((i for i, c in enumerate(self.columns) if c.drop), key=lambda i: -self.columns[i].drop)
        for i in droppable:
            if need(shown, short) <= width:
                break
            shown.remove(i)
        if short and need(shown, False) <= width:
            short = False
        return shown, short

    def __rich_console__(self, console: Any, options: Any) -> Any:
        from rich.table import Table
        from rich.text import Text

        width = options.max_width
        shown, short = self.layout(width)
        # a title wider than the table goes above it, wrapped to the terminal (not to the table)
        natural = sum(max(self._width(i, short), self._natural(i, short)) + 3 for i in shown) + 1
        title_inside = len(self.title) <= min(width, natural)
        if self.title and not title_inside:
            yield Text(fill(self.title, width), style="italic")
        table = Table(title=Text(self.title) if self.title and title_inside else None,
                      show_footer=self.footer is not None)
        for i in shown:
            col = self.columns[i]
            table.add_column(Text(self._header(i, short)), footer=Text(self.footer[i]) if self.footer else "",
                             justify="right" if col.numeric else "left", no_wrap=not col.text, overflow="fold")
        for row in self.rows:
            table.add_row(*(Text(self._label(i, row[i], short)) for i in shown))
        yield table
        notes = []
        if short:
            used = {full: s for i in shown for full, s in self._short_pairs(i) if full != s}
            if used:
                notes.append("short labels: " + ", ".join(f"{s}{_NBSP}={_NBSP}{full}" for full, s in used.items()))
        left_out = [self.columns[i].header for i in range(len(self.columns))
                    if i not in shown and not self.columns[i].spill]
        if left_out:
            hint = self.hint.replace("-f ", f"-f{_NBSP}")  # an option and its value stay on one line
            notes.append(f"not shown at {width} columns: {', '.join(left_out)}"
                         + (f"; {hint}" if hint else "; a wider terminal shows them"))
        for note in notes:
            yield Text(fill(note, width))
        for i in range(len(self.columns)):
            if i not in shown and self.columns[i].spill:
                yield from self._spill(i, width)

    def _short_pairs(self, i: int) -> list[tuple[str, str]]:
        col = self.columns[i]
        pairs = [(col.header, col.short_header)] if col.short_header else []
        if col.short:
            pairs += [(row[i], col.short[row[i]]) for row in self.rows if row[i] in col.short]
        return pairs

    def _spill(self, i: int, width: int) -> Any:
        """Column ``i`` as paragraphs ``key: text``, one per distinct pair, wrapped on words."""
        from rich.text import Text

        key = self.spill_key
        one_line = ("; ".join(" ".join(line.split()) for line in row[i].splitlines() if line.strip())
                    for row in self.rows)
        pairs = dict.fromkeys((row[key], text) for row, text in zip(self.rows, one_line) if text)
        if not pairs:
            return
        by = f" (by {self.columns[key].header})" if key != 0 else ""
        yield Text(f"{self.columns[i].header}{by}:", style="bold")
        for name, text in pairs:
            yield Text(fill(f"{name}: {text}", width, "  ", "    "))


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
    """Seconds in the largest unit that keeps two or more of it: d, h, min, s or ms."""
    x = float(x)
    if x >= 2 * 86400:
        return f"{x / 86400:.2f} d"
    if x >= 2 * 3600:
        return f"{x / 3600:.2f} h"
    if x >= 120:
        return f"{x / 60:.2f} min"
    if x >= 1:
        return f"{x:.2f} s"
    return f"{x * 1e3:.2f} ms"


def human_times(x: float | None) -> str:
    """A savings factor: 2.547 -> '2.55x' ('-' when unknown, 'inf' when the cost went to zero)."""
    return "-" if x is None else ("inf" if x == float("inf") else f"{x:.2f}x")


def terminal_width() -> int:
    """The width rich prints at: the terminal's, or ``COLUMNS``, or 80 when not a terminal."""
    from rich.console import Console

    return Console().width


# Spaces that must not break a line: between a number and its unit, and after an operator (so a
# wrapped formula continues with "+ ...").
_GLUE = re.compile(r"(?<=\d) (?=(?:[kMGT]?B|[kMGT]?bit/s|ms|s|min|[kMGT]|x)\b)|(?<= [-+*/]) ")
_NBSP = "\x00"


def fill(text: str, width: int, indent: str = "", subsequent_indent: str = "") -> str:
    """``text`` wrapped on spaces to ``width``, never between a number and its unit; a word longer
    than a line is folded, never cut."""
    import textwrap

    glued = _GLUE.sub(_NBSP, text)
    return textwrap.fill(glued, width, initial_indent=indent, subsequent_indent=subsequent_indent,
                         break_on_hyphens=False).replace(_NBSP, " ")


def wrap_lines(lines: Sequence[str], width: int | None = None) -> str:
    """Plain text lines wrapped on spaces to ``width`` (default: :func:`terminal_width`); a wrapped
    line continues under the text after its first ``=`` or ``:`` (or its indent plus 4)."""
    width = width or terminal_width()
    out = []
    for line in "\n".join(lines).split("\n"):
        if len(line) <= width:
            out.append(line)
            continue
        lead = len(line) - len(line.lstrip())
        mark = re.search(r" = |: ", line[lead:])
        indent = lead + mark.end() if mark and lead + mark.end() <= width // 2 else min(lead + 4, width // 2)
        out.append(fill(line[lead:], width, " " * lead, " " * indent))
    return "\n".join(out)


class Paragraphs:
    """Plain text lines as a rich renderable, wrapped by :func:`wrap_lines` at the width it is
    printed at."""

    def __init__(self, lines: Sequence[str]) -> None:
        self.lines = list(lines)

    def __rich_console__(self, console: Any, options: Any) -> Any:
        from rich.text import Text

        yield Text(wrap_lines(self.lines, options.max_width))

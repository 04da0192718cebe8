"""Load YAML (and JSON, which YAML reads) while remembering the line of every key.

``load_located(path)`` returns ``(data, lines)`` where ``lines`` maps a key path
(a tuple such as ``("norm", "kind")``) to the 1-based line where that key is written.
Syntax errors and duplicate keys become :class:`~picost.errors.UserError` with file and line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from picost.errors import UserError

KeyPath = tuple[Any, ...]


def _walk(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int], file: str) -> Any:
    """Build Python data from a composed node, recording each key's line into ``lines``."""
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise UserError("mapping keys must be plain scalars", file=file,
                                line=key_node.start_mark.line + 1)
            key = _scalar(key_node)
            child = path + (key,)
            if key in out:
                raise UserError(f"duplicate key '{key}'", file=file,
                                line=key_node.start_mark.line + 1, field=_dotted(child))
            lines[child] = key_node.start_mark.line + 1
            out[key] = _walk(value_node, child, lines, file)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for i, item in enumerate(node.value):
            lines[path + (i,)] = item.start_mark.line + 1
            items.append(_walk(item, path + (i,), lines, file))
        return items
    return _scalar(node)


_CONSTRUCTOR = yaml.SafeLoader("")


def _scalar(node: yaml.Node) -> Any:
    """A scalar's value as the safe loader types it (int, float, bool, null, str)."""
    return _CONSTRUCTOR.construct_object(node, deep=True)


def _dotted(path: KeyPath) -> str:
    return ".".join(str(p) for p in path)


def loads_located(text: str, file: str) -> tuple[Any, dict[KeyPath, int]]:
    """Parse ``text`` (YAML or JSON); return the data and the line of every key path."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or "syntax error"
        raise UserError(f"malformed YAML: {problem}", file=file, line=line) from None
    except yaml.YAMLError as exc:  # pragma: no cover - unmarked errors are rare
        raise UserError(f"malformed YAML: {exc}", file=file) from None
    lines: dict[KeyPath, int] = {}
    if node is None:
        return None, lines
    return _walk(node, (), lines, file), lines


def load_located(path: Path | str) -> tuple[Any, dict[KeyPath, int]]:
    """Read and parse a YAML/JSON file; see :func:`loads_located`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError("file not found", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read file: {exc}", file=str(path)) from None
    return loads_located(text, str(path))


def line_of(lines: dict[KeyPath, int], path: KeyPath) -> int | None:
    """The line of ``path``, or of its nearest written ancestor."""
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return None

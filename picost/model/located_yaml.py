"""Load YAML (and JSON, which YAML reads) while remembering the line of every key.

``load_located(path)`` returns ``(data, lines)`` where ``lines`` maps a key path
(a tuple such as ``("norm", "kind")``) to the 1-based line where that key is written.
Syntax errors and duplicate keys become :class:`~picost.errors.UserError` with file and line.

The loader is safe by construction: it builds only plain data (mappings, lists, strings,
integers, finite floats, booleans, null). Tags other than those (``!foo``, ``!!timestamp``,
``!!binary``, ...), merge keys (``<<``), integers beyond :data:`~picost.model.limits.MAX_INT_BITS`,
non-finite floats, files over :data:`~picost.model.limits.MAX_FILE_BYTES`, nesting deeper than
:data:`~picost.model.limits.MAX_YAML_DEPTH` (which also stops recursive aliases) and more than
:data:`~picost.model.limits.MAX_YAML_NODES` nodes after alias expansion (alias bombs) are
located errors, never a traceback or unbounded work.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from picost.errors import UserError
from picost.model import limits

KeyPath = tuple[Any, ...]


_PLAIN_TAGS = frozenset(f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null"))
_MAP_TAG, _SEQ_TAG = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"


class _Budget:
    """Nodes left to build (alias expansion counts again) for one file."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.left = limits.MAX_YAML_NODES

    def take(self, node: yaml.Node, depth: int) -> None:
        line = node.start_mark.line + 1
        self.left -= 1
        if self.left < 0:
            raise UserError(f"more than {limits.MAX_YAML_NODES} YAML nodes after expanding aliases "
                            "(an alias bomb?); see docs/limits.md", file=self.file, line=line)
        if depth > limits.MAX_YAML_DEPTH:
            raise UserError(f"nesting deeper than {limits.MAX_YAML_DEPTH} levels (or a recursive alias); "
                            "see docs/limits.md", file=self.file, line=line)


def _walk(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int], budget: _Budget) -> Any:
    """Build Python data from a composed node, recording each key's line into ``lines``."""
    file = budget.file
    budget.take(node, len(path))
    if isinstance(node, yaml.MappingNode):
        _expect_tag(node, _MAP_TAG, file)
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise UserError("mapping keys must be plain scalars", file=file,
                                line=key_node.start_mark.line + 1)
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise UserError("merge keys ('<<') are not supported; write the keys out", file=file,
                                line=key_node.start_mark.line + 1)
            key = _scalar(key_node, file)
            child = path + (key,)
            if key in out:
                raise UserError(f"duplicate key '{key}'", file=file,
                                line=key_node.start_mark.line + 1, field=_dotted(child))
            lines[child] = key_node.start_mark.line + 1
            out[key] = _walk(value_node, child, lines, budget)
        return out
    if isinstance(node, yaml.SequenceNode):
        _expect_tag(node, _SEQ_TAG, file)
        items = []
        for i, item in enumerate(node.value):
            lines[path + (i,)] = item.start_mark.line + 1
            items.append(_walk(item, path + (i,), lines, budget))
        return items
    return _scalar(node, file, _dotted(path) or None)


def _expect_tag(node: yaml.Node, tag: str, file: str) -> None:
    if node.tag != tag:
        raise UserError(f"YAML tag '{node.tag}' is not allowed (plain data only)", file=file,
                        line=node.start_mark.line + 1)


_CONSTRUCTOR = yaml.SafeLoader("")
#: libyaml's composer where PyYAML was built with it (about 5x faster on the large tables), else
#: PyYAML's own: the same nodes, tags and marks; plain scalars have style '' instead of None.
_COMPOSER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_NUMBER_TAGS = frozenset(("tag:yaml.org,2002:int", "tag:yaml.org,2002:float"))


def _check_number_spelling(text: str, file: str, line: int, field: str | None = None) -> None:
    """Refuse the YAML 1.1 number spellings that YAML 1.2 (and JSON, and a reader's eye) reads
    otherwise: base 60 (``1:30`` is 90 to PyYAML, text in YAML 1.2) and a leading zero (``010`` is
    8 to PyYAML, 10 in YAML 1.2). Silently picking one reading would be a silently wrong number."""
    body = text.lstrip("+-").replace("_", "")
    if ":" in body:
        raise UserError(f"'{text}' is a base-60 number in YAML 1.1 (1:30 means 90) and text in YAML 1.2; "
                        "write the number out, or quote it to make it text", file=file, line=line, field=field)
    if len(body) > 1 and body[0] == "0" and body.isdigit():
        raise UserError(f"'{text}' has a leading zero: YAML 1.1 reads it as octal, YAML 1.2 as {int(body)}; "
                        f"write {int(body)} (or quote it to make it text)", file=file, line=line, field=field)


def _scalar(node: yaml.Node, file: str, field: str | None = None) -> Any:
    """A scalar's value as the safe loader types it (int, float, bool, null, str); other tags,
    malformed tagged values, huge integers and non-finite floats are errors."""
    line = node.start_mark.line + 1
    if node.tag not in _PLAIN_TAGS:
        what = "dates are" if node.tag.endswith(":timestamp") else f"YAML tag '{node.tag}' is"
        raise UserError(f"{what} not allowed (plain data only); quote the value to make it text",
                        file=file, line=line)
    if node.tag in _NUMBER_TAGS and not node.style:  # plain: None from PyYAML's composer, '' from libyaml's
        _check_number_spelling(node.value, file, line, field)
    try:
        value = _CONSTRUCTOR.yaml_constructors[node.tag](_CONSTRUCTOR, node)  # no cache kept per node
    except (yaml.YAMLError, ValueError, TypeError, OverflowError, KeyError):
        raise UserError(f"cannot read {node.value[:40]!r} as {node.tag.rsplit(':', 1)[-1]}", file=file,
                        line=line) from None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and not limits.number_ok(value):
        raise UserError(f"number {limits.short(value)} is not finite or exceeds {limits.MAX_INT_BITS} bits; "
                        "see docs/limits.md", file=file, line=line)
    return value


def _dotted(path: KeyPath) -> str:
    return ".".join(str(p) for p in path)


def loads_located(text: str, file: str) -> tuple[Any, dict[KeyPath, int]]:
    """Parse ``text`` (YAML or JSON); return the data and the line of every key path."""
    if len(text) > limits.MAX_FILE_BYTES:
        raise UserError(f"file larger than {limits.MAX_FILE_BYTES} bytes; see docs/limits.md", file=file)
    try:
        node = yaml.compose(text, Loader=_COMPOSER)
    except RecursionError:
        raise UserError(f"nesting deeper than {limits.MAX_YAML_DEPTH} levels; see docs/limits.md",
                        file=file) from None
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
    return _walk(node, (), lines, _Budget(file)), lines


def load_located(path: Path | str) -> tuple[Any, dict[KeyPath, int]]:
    """Read and parse a YAML/JSON file; see :func:`loads_located`."""
    path = Path(path)
    try:
        if path.exists() and not path.is_file():  # a FIFO or a device would be read without end
            raise UserError("not a regular file (a directory, FIFO or device cannot be read as YAML)", file=str(path))
        with path.open("rb") as f:
            data = f.read(limits.MAX_FILE_BYTES + 1)  # never more than the limit, whatever stat says
        if len(data) > limits.MAX_FILE_BYTES:
            raise UserError(f"file larger than {limits.MAX_FILE_BYTES} bytes; see docs/limits.md", file=str(path))
        text = data.decode("utf-8")
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

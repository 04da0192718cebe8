"""User-facing errors: one clear message naming the file, the line and the field.

Every mistake a user can make (bad YAML, unknown key, wrong type, impossible shape, unknown
protocol, an op a protocol cannot cost, a bad unit) is raised as :class:`UserError`. The CLI
prints ``str(error)`` and exits with code 2; it never shows a traceback for one of these.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the user's input, located as precisely as we can.

    ``file`` is the path of the offending file (or None for command-line input), ``line`` its
    1-based line number (or None), ``field`` the dotted path of the offending field (or None).
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.field = field

    def __str__(self) -> str:
        where = ""
        if self.file is not None:
            where = str(self.file)
            if self.line is not None:
                where += f":{self.line}"
        parts = [where] if where else []
        if self.field:
            parts.append(f"field '{self.field}'")
        prefix = ", ".join(parts)
        text = f"{prefix}: {self.message}" if prefix else self.message
        return text.replace("\r", "\\r").replace("\n", "\\n")  # one line, whatever the user typed

"""Atomic file writing: a file is either fully written or not touched.

Content goes to a temporary file in the target's directory, is flushed to disk, then renamed
over the target with :func:`os.replace` (atomic on POSIX and Windows). On any error the
temporary file is removed and the target is left as it was.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: str | Path, data: bytes | str) -> None:
    """Write ``data`` (text is UTF-8 encoded) to ``path`` atomically."""
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_all_atomic(files: dict[Path, bytes | str]) -> None:
    """Write several files, each atomically, creating parent directories; the last item is
    written last (put the file that references the others there)."""
    for path in files:
        path.parent.mkdir(parents=True, exist_ok=True)
    for path, data in files.items():
        write_atomic(path, data)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask

"""Atomic file writing: a file is either fully written or not touched.

:func:`write_all_atomic` (one file, or several, e.g. a report and its plots): every file is first
staged, complete and flushed, in a temporary directory beside the first target; only then are
they renamed into place with :func:`os.replace` (atomic on POSIX and Windows), the last one (the report that references the others) last. A failure
while staging leaves nothing behind; each rename is itself atomic, so no file is ever
half-written. Directories created for the targets are removed again if nothing lands in them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def write_all_atomic(files: dict[Path, bytes | str]) -> None:
    """Write several files: stage them all, then rename each into place in order (see module)."""
    if not files:
        return
    targets = [Path(p) for p in files]
    stage = Path(tempfile.mkdtemp(prefix=".picost-stage-", dir=targets[-1].parent))
    created: list[Path] = []
    try:
        staged = []
        for i, (path, data) in enumerate(zip(targets, files.values())):
            tmp = stage / f"{i}{path.suffix}"
            _fill(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), str(tmp), data)
            staged.append((tmp, path))
        for tmp, path in staged:
            created += _make_parents(path.parent)
            os.replace(tmp, path)
    except BaseException:
        for directory in reversed(created):
            if directory.is_dir() and not any(directory.iterdir()):
                directory.rmdir()
        raise
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _fill(fd: int, tmp: str, data: bytes | str) -> None:
    """Write ``data`` to the open descriptor, flush it to disk, give it the usual file mode."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with os.fdopen(fd, "wb") as fh:
        fh.write(payload)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, 0o666 & ~_umask())  # temporary files are 0600; a report is an ordinary file


def _make_parents(directory: Path) -> list[Path]:
    """Create ``directory`` and missing parents; return the ones created, outermost first."""
    missing = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for d in reversed(missing):
        d.mkdir()
    return list(reversed(missing))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask

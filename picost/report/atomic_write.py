"""Atomic writing of a set of files (a report and its plots and CSVs): all of them, or none.

:func:`write_all_atomic` works in two phases:

1. **Stage**: every file is written, complete and flushed, into one temporary folder
   (``.picost-stage-*``) beside the last target. A failure or an interrupt (SIGINT, and SIGTERM
   when nobody else handles it) removes the folder; no target has been touched.
2. **Swap**: each target is renamed into place with :func:`os.replace` (atomic on POSIX), the
   previous version first moved aside into the staging folder. If any rename fails (the target
   became a directory, an immutable file, a full disk), the swap is undone: earlier targets get
   their previous version back, new files and new directories are removed. SIGINT and SIGTERM
   are held back during the swap (milliseconds) and delivered right after, so an interrupt never
   leaves new plots beside an old report.

Targets that cannot be written at all (a directory, a parent that is a file) are refused before
anything is staged. Errors are :class:`OSError`/:class:`IsADirectoryError`; the caller turns
them into user messages.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def write_all_atomic(files: dict[Path, bytes | str]) -> None:
    """Write several files as one unit: stage them all, then swap them in, or write nothing
    (see module)."""
    if not files:
        return
    targets = [Path(p) for p in files]
    for path in targets:
        _check_target(path)
    clean_stale_stages(targets[-1].parent)
    with _interrupts_raise():
        stage = Path(tempfile.mkdtemp(prefix=f"{STAGE_PREFIX}{os.getpid()}-", dir=targets[-1].parent))
        try:
            staged = []
            for i, (path, data) in enumerate(zip(targets, files.values())):
                tmp = stage / f"{i}{path.suffix}"
                _fill(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), str(tmp), data)
                staged.append((tmp, path))
            with _signals_held():
                _swap(staged, stage)
        finally:
            shutil.rmtree(stage, ignore_errors=True)


STAGE_PREFIX = ".picost-stage-"
"""Staging folders are ``.picost-stage-<pid>-<random>``: the pid says whether their writer lives."""
STALE_UNNAMED_S = 3600.0
"""A staging folder without a pid in its name (older picost) is stale after this long."""


def clean_stale_stages(directory: Path) -> list[Path]:
    """Remove staging folders in ``directory`` left by a writer that was killed outright (SIGKILL:
    no handler ran): those whose pid is no longer alive, and unnamed ones over an hour old.
    Returns what was removed."""
    import time

    removed = []
    try:
        candidates = [p for p in directory.iterdir() if p.name.startswith(STAGE_PREFIX) and p.is_dir()]
    except OSError:
        return removed
    for stage in candidates:
        pid_text = stage.name[len(STAGE_PREFIX):].split("-", 1)[0]
        if pid_text.isdigit():
            stale = not _alive(int(pid_text))
        else:
            try:
                stale = time.time() - stage.stat().st_mtime > STALE_UNNAMED_S
            except OSError:
                continue
        if stale:
            shutil.rmtree(stage, ignore_errors=True)
            removed.append(stage)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def _check_target(path: Path) -> None:
    """Refuse a target that can never be a file: an existing directory, or a parent that is a file."""
    if path.is_dir():
        raise IsADirectoryError(21, "the target is a directory", str(path))
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise NotADirectoryError(20, "a parent of the target is not a directory", str(parent))


def _swap(staged: list[tuple[Path, Path]], stage: Path) -> None:
    """Rename every staged file into place, keeping the previous versions in ``stage/old``; on any
    failure put everything back as it was."""
    old_dir = stage / "old"
    old_dir.mkdir()
    done: list[tuple[Path, Path | None]] = []  # (target, its previous version or None)
    created: list[Path] = []
    try:
        for i, (tmp, path) in enumerate(staged):
            created += _make_parents(path.parent)
            previous = None
            if path.exists() or path.is_symlink():
                previous = old_dir / str(i)
                os.replace(path, previous)
            done.append((path, previous))
            os.replace(tmp, path)
    except BaseException:
        for path, previous in reversed(done):
            try:
                if previous is not None:
                    os.replace(previous, path)
                elif path.exists():
                    path.unlink()
            except OSError:  # best effort: the old version stays in the staging folder's place
                pass
        for directory in reversed(created):
            if directory.is_dir() and not any(directory.iterdir()):
                directory.rmdir()
        raise


@contextmanager
def _interrupts_raise() -> Iterator[None]:
    """While staging, SIGTERM raises :class:`KeyboardInterrupt` (if it still has the default
    action, which would kill the process before the staging folder is removed)."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(signum)

    signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back: record them during the block, deliver them when it ends
    (Python handlers run in the main thread, whichever thread the signal reached)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: pending.append(signum)) for sig in _SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sig in dict.fromkeys(pending):
            signal.raise_signal(sig)


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

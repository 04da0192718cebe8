"""Reports are written as one unit: on an error or an interrupt at any moment, the previous
report (markdown, plots, CSVs) stays exactly as it was, or the new one is complete; nothing
staged is left behind."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

import picost.report.atomic_write as atomic
from picost.errors import UserError
from picost.report.markdown_report import ReportConfig, build_report, write_report

FIXTURE = str(Path(__file__).parent / "data" / "protocols" / "sweepfix.yaml")


def _built(md: Path, title: str):
    return build_report(ReportConfig(name="r", specs=("tiny",), protocols=(FIXTURE,), networks=("lan",), context=16,
                                     sweep="4,8", title=title), md, plots=False)


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def old(tmp_path):
    """A previous report on disk, and the new one built in memory."""
    md = tmp_path / "r.md"
    write_report(_built(md, "old"))
    return md, _snapshot(tmp_path), _built(md, "new")


def _interrupt_on(monkeypatch, name: str, nth: int, sig: int = signal.SIGINT) -> None:
    """Send ``sig`` to this process at the ``nth`` call of ``atomic.<name>`` (then carry on)."""
    real, calls = getattr(atomic, name) if name != "replace" else atomic.os.replace, [0]

    def wrapped(*args):
        calls[0] += 1
        if calls[0] == nth:
            os.kill(os.getpid(), sig)
        return real(*args)

    if name == "replace":
        monkeypatch.setattr(atomic.os, "replace", wrapped)
    else:
        monkeypatch.setattr(atomic, name, wrapped)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_while_staging_keeps_the_old_report(old, tmp_path, monkeypatch, sig):
    md, before, new = old
    _interrupt_on(monkeypatch, "_fill", 2, sig)
    with pytest.raises(KeyboardInterrupt):
        write_report(new)
    assert _snapshot(tmp_path) == before  # no new asset, no staging folder
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_an_interrupt_while_swapping_is_held_until_the_new_report_is_complete(old, tmp_path, monkeypatch):
    md, before, new = old
    _interrupt_on(monkeypatch, "replace", 1)
    with pytest.raises(KeyboardInterrupt):
        write_report(new)
    after = _snapshot(tmp_path)
    assert after == {str(p.relative_to(tmp_path)): (c.encode() if isinstance(c, str) else c)
                     for p, c in new.files.items()}
    assert after != before and not list(tmp_path.glob(".picost-stage-*"))


def test_a_failed_swap_restores_every_file(old, tmp_path, monkeypatch):
    md, before, new = old
    real, calls = atomic.os.replace, [0]

    def fail_at_markdown(src, dst):
        calls[0] += 1
        if Path(dst) == md and "old" not in str(Path(dst).parent):
            if Path(src).parent.name != "old":
                raise PermissionError(1, "Operation not permitted (immutable)", str(dst))
        return real(src, dst)

    monkeypatch.setattr(atomic.os, "replace", fail_at_markdown)
    with pytest.raises(UserError, match="immutable"):
        write_report(new)
    assert _snapshot(tmp_path) == before


def test_unwritable_targets_are_one_message(tmp_path):
    (tmp_path / "d.md").mkdir()
    with pytest.raises(UserError, match="directory"):
        write_report(_built(tmp_path / "d.md", "x"))
    with pytest.raises(UserError, match="cannot write"):
        write_report(_built(Path("/proc/picost-report.md"), "x"))
    assert [p.name for p in tmp_path.iterdir()] == ["d.md"]


def test_calibrate_out_refuses_a_directory_without_a_launch(cli, tmp_path):
    res = cli("calibrate", "--out", str(tmp_path), timeout=60)
    assert res.returncode == 2 and "directory" in res.stderr and "Traceback" not in res.stderr
    assert list(tmp_path.iterdir()) == []

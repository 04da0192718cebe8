"""The launcher owns its parties and its secrets: killing it (even with SIGKILL) leaves no party
process and no job file; two runs on one port never join each other."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from conftest import run_cli

REPO = Path(__file__).resolve().parents[1]
CLEANUP_BOUND_S = 10.0


def _children(pid: int) -> set[int]:
    """Live processes whose parent is ``pid`` (from /proc)."""
    out = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                out.add(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_for(predicate, bound_s: float, step_s: float = 0.1) -> bool:
    end = time.monotonic() + bound_s
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step_s)
    return predicate()


def _env(tmp: Path) -> dict[str, str]:
    return {**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": str(REPO)}


def test_sigkill_to_the_launcher_leaves_no_party_and_no_job_file(tmp_path):
    launcher = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        from picost.mpc.launcher import model_job, run_local
        job = {**model_job("tiny-relu", [1, 2]), "debug_stall": {"role": "server", "seconds": 300}}
        run_local(job, timeout_s=120)
        """)], env=_env(tmp_path), cwd=REPO)
    try:
        assert _wait_for(lambda: len(_children(launcher.pid)) == 3, 60), "the three parties never started"
        parties = _children(launcher.pid)
        time.sleep(1.0)  # let them read their jobs and rendezvous
        launcher.send_signal(signal.SIGKILL)
        launcher.wait()
        start = time.monotonic()
        assert _wait_for(lambda: not any(_alive(p) for p in parties), CLEANUP_BOUND_S), "a party outlived the launcher"
        assert time.monotonic() - start < CLEANUP_BOUND_S
        assert list(tmp_path.iterdir()) == []  # no job file (private token ids), no result file
    finally:
        for pid in _children(launcher.pid):
            os.kill(pid, signal.SIGKILL)


def test_sigterm_to_the_cli_stops_the_parties(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "picost", "mpc", "run", "tiny", "--tokens", "1,2", "--timeout", "120"],
                            env=_env(tmp_path), cwd=REPO, stderr=subprocess.PIPE, text=True)
    try:
        assert _wait_for(lambda: len(_children(proc.pid)) == 3, 60)
        parties = _children(proc.pid)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=CLEANUP_BOUND_S)
        assert proc.returncode == 128 + signal.SIGTERM and "interrupted" in err and "Traceback" not in err
        assert _wait_for(lambda: not any(_alive(p) for p in parties), CLEANUP_BOUND_S)
        assert list(tmp_path.iterdir()) == []
    finally:
        if proc.poll() is None:
            proc.kill()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_a_second_run_on_the_same_port_is_refused_and_the_first_completes(tmp_path):
    from picost.mpc.launcher import model_job, run_local

    port = _free_port()
    first: dict[str, object] = {}
    job = {**model_job("tiny-relu", [1, 2]), "debug_stall": {"role": "server", "seconds": 6}}

    def run_first() -> None:
        try:
            first["run"] = run_local(job, port=port, timeout_s=60)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            first["error"] = exc

    thread = threading.Thread(target=run_first)
    thread.start()
    try:
        assert _wait_for(lambda: _listening(port), 60), "the first run never hosted its rendezvous"
        # a whole second run: refused before any party starts
        second = run_cli("mpc", "run", "tiny", "--tokens", "1,2", "--port", str(port), timeout=60)
        assert second.returncode == 2 and f"port {port}" in second.stderr and "in use" in second.stderr
        assert "Traceback" not in second.stderr
        # a lone party of another run (another nonce): refused by the handshake, not joined
        stray = subprocess.run([sys.executable, "-m", "picost.mpc.party", "--role", "server", "--port", str(port),
                                "--job", "-", "--out", "-", "--timeout", "3", "--connect-timeout", "3"],
                               input=json.dumps({"kind": "batch", "jobs": [], "nonce": "another-run"}),
                               capture_output=True, text=True, env=_env(tmp_path), cwd=REPO, timeout=60)
        assert stray.returncode == 3 and "refused the rendezvous" in stray.stderr
    finally:
        thread.join(timeout=120)
    assert "error" not in first, first.get("error")
    assert first["run"].results["client"]["next_token"] is not None

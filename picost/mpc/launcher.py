"""Start the three parties as local OS processes, wait (bounded), collect their measurements.

Only processes started here are ever stopped (by their own handles), also on errors.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from picost.errors import UserError

ROLE_ORDER = ("client", "server", "dealer")
_REPO = Path(__file__).resolve().parents[2]


class MpcRunError(RuntimeError):
    """A party failed; the message carries each failed party's error."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class RunResult:
    """Per-party measurements and the client's results of one job."""

    stats: dict[str, dict[str, dict[str, Any]]]
    """role -> op -> {bytes_sent, rounds, offline_bytes, wall_s}."""
    results: dict[str, dict[str, Any]]
    """role -> what the party returned (client: outputs; server: its weights in op jobs)."""
    wall_s: float
    """Wall time of the whole launch (process start to finish)."""
    stderr: dict[str, str] = field(default_factory=dict)
    views: dict[str, list[tuple[str, Any]]] = field(default_factory=dict)
    """role -> online messages it received (op, tensor), when the job set ``record_views``."""
    preprocess_s: dict[str, float] = field(default_factory=dict)
    """role -> seconds of its offline rehearsal (receiving or drawing the dealer's material)."""


def run_local(job: dict[str, Any], host: str = "127.0.0.1", port: int | None = None, timeout_s: float = 60.0
              ) -> RunResult:
    """Run ``job`` with three local processes (job options such as ``debug_crash`` apply)."""
    return run_batch([job], host, port, timeout_s, extra=job)[0]


def run_batch(jobs: list[dict[str, Any]], host: str = "127.0.0.1", port: int | None = None,
              timeout_s: float = 60.0, extra: dict[str, Any] | None = None, run_limit_s: float = 1800.0,
              on_progress: Callable[[int, int], None] | None = None,
              role_prefix: dict[str, list[str]] | None = None) -> list[RunResult]:
    """Run several jobs one after the other in one launch of the three parties.

    ``timeout_s`` bounds every wait for a message (a silent party fails the run after it);
    ``run_limit_s`` bounds the whole launch. ``on_progress(done, total)`` is called as the
    client finishes each job. With ``port`` None a free port is picked, and picked again once
    if another program took it before the parties could rendezvous. ``role_prefix`` puts a
    command before a role's party command, e.g. ``ip netns exec NS env GLOO_SOCKET_IFNAME=IF``
    to start it in a network namespace (``picost.netlab``)."""
    args = (jobs, host, timeout_s, extra, run_limit_s, on_progress, role_prefix)
    if port is not None:
        return _launch(port, *args)
    try:
        return _launch(free_port(host), *args)
    except MpcRunError as exc:
        if "could not reach the other parties" not in str(exc):
            raise
        return _launch(free_port(host), *args)


def _launch(port: int, jobs: list[dict[str, Any]], host: str, timeout_s: float,
            extra: dict[str, Any] | None, run_limit_s: float,
            on_progress: Callable[[int, int], None] | None,
            role_prefix: dict[str, list[str]] | None = None) -> list[RunResult]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(_REPO) + os.pathsep + env.get("PYTHONPATH", "")
    options = {k: v for k, v in (extra or {}).items() if k in ("record_views", "debug_stall", "debug_crash", "frac_bits")}
    procs: dict[str, subprocess.Popen] = {}
    errors: dict[str, list[str]] = {}
    readers: list[threading.Thread] = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="picost-mpc-") as tmp:
        out = {}
        try:
            for role in ROLE_ORDER:
                mine = [dict(j) for j in jobs]
                if role != "client":
                    for j in mine:
                        j.pop("client_input", None)
                job_file = Path(tmp) / f"{role}.json"
                job_file.write_text(json.dumps({**options, "kind": "batch", "jobs": mine}))
                out[role] = Path(tmp) / f"{role}.pt"
                procs[role] = subprocess.Popen(
                    [*(role_prefix or {}).get(role, []), sys.executable, "-m", "picost.mpc.party", "--role", role, "--host", host, "--port",
                     str(port), "--job", str(job_file), "--out", str(out[role]), "--timeout", str(timeout_s)],
                    stdout=subprocess.PIPE if role == "client" else subprocess.DEVNULL, stderr=subprocess.PIPE,
                    text=True, env=env)
                readers.append(_drain(procs[role].stderr, errors.setdefault(role, [])))
                if role == "client":
                    readers.append(_follow(procs[role], len(jobs), on_progress))
            notes = _wait_all(procs, deadline=time.monotonic() + run_limit_s, grace_s=timeout_s + 2)
        finally:
            for p in procs.values():
                if p.poll() is None:
                    p.kill()
                    p.wait()
            for t in readers:
                t.join(timeout=5)
        stderr = {r: "".join(errors.get(r, [])) + notes.get(r, "") for r in procs}
        failed = {r: stderr[r] for r, p in procs.items() if p.returncode != 0}
        if failed:
            lines = [f"{role} (exit {procs[role].returncode}): {(msg.strip().splitlines() or ['killed'])[-1]}"
                     for role, msg in failed.items()]
            raise MpcRunError("MPC run failed: " + "; ".join(lines))
        import torch

        loaded = {r: torch.load(out[r], weights_only=False)["runs"] for r in ROLE_ORDER}
    wall = time.perf_counter() - start
    return [RunResult({r: loaded[r][i]["stats"] for r in ROLE_ORDER},
                      {r: loaded[r][i]["results"] for r in ROLE_ORDER}, wall, stderr,
                      {r: loaded[r][i]["views"] for r in ROLE_ORDER},
                      {r: loaded[r][i]["preprocess_s"] for r in ROLE_ORDER})
            for i in range(len(jobs))]


def _follow(proc: subprocess.Popen, total: int, on_progress: Callable[[int, int], None] | None
            ) -> threading.Thread:
    """Read the client's ``progress <done>`` lines in a thread and report them."""

    def read() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            if line.startswith("progress ") and on_progress is not None:
                on_progress(int(line.split()[1]), total)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def _drain(stream: Any, into: list[str]) -> threading.Thread:
    """Collect a party's stderr in a thread (so a chatty party never blocks on a full pipe)."""
    thread = threading.Thread(target=lambda: into.extend(stream), daemon=True)
    thread.start()
    return thread


def _wait_all(procs: dict[str, subprocess.Popen], deadline: float, grace_s: float) -> dict[str, str]:
    """Wait for every party; once one has failed, give the others ``grace_s`` to report their
    own error, then stop them. Nothing runs past ``deadline``. Returns notes per stopped party."""
    while time.monotonic() < deadline and any(p.poll() is None for p in procs.values()):
        if any(p.poll() not in (None, 0) for p in procs.values()):
            deadline = min(deadline, time.monotonic() + grace_s)
        time.sleep(0.05)
    notes = {}
    for role, p in procs.items():
        if p.poll() is None:
            p.kill()
            p.wait()
            notes[role] = f"error: {role} was stopped by the launcher (still running after the others ended)\n"
    return notes


def model_job(spec_ref: str, ids: list[int], seed: int = 0, frac_bits: int = 16,
              cached: int | None = None) -> dict[str, Any]:
    """A job that runs the whole model ``spec_ref`` on the client's token ids: the prompt
    (prefill), or one new token after ``cached`` cached tokens (decode specs)."""
    from picost.mpc.model import check_supported
    from picost.model.load import load_spec

    spec = load_spec(spec_ref)
    check_supported(spec)
    if not ids:
        raise UserError("give at least one token id", field="--tokens")
    bad = [t for t in ids if not 0 <= t < spec.vocab_size]
    if bad:
        raise UserError(f"token ids must be in 0..{spec.vocab_size - 1} (got {bad[0]})", field="--tokens")
    if spec.phase == "decode":
        if len(ids) != 1:
            raise UserError(f"spec '{spec.name}' decodes one token: give one id (got {len(ids)})", field="--tokens")
        context = spec.context_length if cached is None else cached
        if context < 1:
            raise UserError("a decode run needs at least one cached token", field="--cached")
    else:
        context = len(ids)
    positions = context + 1 if spec.phase == "decode" else context
    if spec.positional == "learned" and positions > spec.context_length:
        raise UserError(f"{positions} positions exceed the learned ones ({spec.context_length})", field="--tokens")
    return {"kind": "model", "spec": str(spec_ref), "context": context, "seed": seed, "frac_bits": frac_bits,
            "client_input": {"ids": list(ids)}}

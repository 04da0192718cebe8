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
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


def run_local(job: dict[str, Any], host: str = "127.0.0.1", port: int | None = None, timeout_s: float = 60.0,
              kill: str | None = None, kill_after_s: float = 0.0) -> RunResult:
    """Run ``job`` with three local processes. ``kill`` (a role) is for tests: that party is
    killed ``kill_after_s`` seconds after the start, to check the others fail cleanly."""
    return run_batch([job], host, port, timeout_s, kill, kill_after_s, extra=job)[0]


def run_batch(jobs: list[dict[str, Any]], host: str = "127.0.0.1", port: int | None = None,
              timeout_s: float = 60.0, kill: str | None = None, kill_after_s: float = 0.0,
              extra: dict[str, Any] | None = None) -> list[RunResult]:
    """Run several jobs one after the other in one launch of the three parties."""
    port = port or free_port(host)
    env = dict(os.environ)
    env["PYTHONPATH"] = str(_REPO) + os.pathsep + env.get("PYTHONPATH", "")
    options = {k: v for k, v in (extra or {}).items() if k in ("record_views", "debug_stall", "frac_bits")}
    procs: dict[str, subprocess.Popen] = {}
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
                    [sys.executable, "-m", "picost.mpc.party", "--role", role, "--host", host, "--port",
                     str(port), "--job", str(job_file), "--out", str(out[role]), "--timeout", str(timeout_s)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
            if kill is not None:
                time.sleep(kill_after_s)
                procs[kill].kill()
            stderr = _wait_all(procs, deadline=time.monotonic() + 4 * timeout_s + 30)
        finally:
            for p in procs.values():
                if p.poll() is None:
                    p.kill()
                    p.wait()
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
                      {r: loaded[r][i]["views"] for r in ROLE_ORDER})
            for i in range(len(jobs))]


def _wait_all(procs: dict[str, subprocess.Popen], deadline: float) -> dict[str, str]:
    stderr = {}
    for role, p in procs.items():
        remaining = max(0.1, deadline - time.monotonic())
        try:
            _, err = p.communicate(timeout=remaining)
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
            err = (err or "") + f"\nerror: {role} did not finish in time and was stopped"
        stderr[role] = err or ""
    return stderr


def model_job(spec_ref: str, ids: list[int], seed: int = 0, frac_bits: int = 16) -> dict[str, Any]:
    """A job that runs the whole model ``spec_ref`` on the client's token ids."""
    from picost.mpc.model import check_supported
    from picost.spec import load_spec

    spec = load_spec(spec_ref)
    check_supported(spec)
    if not ids:
        raise UserError("give at least one token id", field="--tokens")
    bad = [t for t in ids if not 0 <= t < spec.vocab_size]
    if bad:
        raise UserError(f"token ids must be in 0..{spec.vocab_size - 1} (got {bad[0]})", field="--tokens")
    if spec.positional == "learned" and len(ids) > spec.context_length:
        raise UserError(f"{len(ids)} tokens exceed the learned positions ({spec.context_length})", field="--tokens")
    return {"kind": "model", "spec": str(spec_ref), "context": len(ids), "seed": seed, "frac_bits": frac_bits,
            "client_input": {"ids": list(ids)}}

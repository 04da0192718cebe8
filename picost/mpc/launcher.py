"""Start the three parties as local OS processes, wait (bounded), collect their measurements.

Only processes started here are ever stopped (their own process group and handles), also on
errors and signals; see :func:`run_batch` for ownership, secrets and timeouts.
"""

from __future__ import annotations

import base64
import errno
import io
import json
import os
import secrets
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from picost.errors import UserError
from picost.model import limits

ROLE_ORDER = ("client", "server", "dealer")
_REPO = Path(__file__).resolve().parents[2]


class MpcRunError(RuntimeError):
    """A party failed; the message carries each failed party's error."""


def free_port(host: str = "127.0.0.1") -> int:
    """A free TCP port on ``host``, which must be an IPv4 address of this machine (:class:`UserError`
    otherwise: the local launcher starts every party here)."""
    with socket.socket() as s:
        try:
            s.bind((host, 0))
        except (OSError, UnicodeError) as exc:
            raise UserError(f"cannot listen on '{host}' ({getattr(exc, 'strerror', None) or exc}): picost mpc run starts "
                            "all three parties on this machine, so --host must be one of its IPv4 addresses (for "
                            "parties on other machines use `picost mpc party`)", field="--host") from None
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
    """role -> seconds of its offline rehearsals (receiving or drawing the dealer's material)."""
    peak_rss_bytes: dict[str, int] = field(default_factory=dict)
    """role -> the party process's peak resident memory (bytes) when this job ended."""


def run_local(job: dict[str, Any], host: str = "127.0.0.1", port: int | None = None, timeout_s: float = 60.0
              ) -> RunResult:
    """Run ``job`` with three local processes (job options such as ``debug_crash`` apply)."""
    return run_batch([job], host, port, timeout_s, extra=job)[0]


def check_launch(host: str, port: int | None, timeout_s: float) -> None:
    """Argument errors before any party starts (:class:`UserError`, exit 2): ``timeout_s``
    positive and finite, ``port`` in 1..65535 and free on this machine, ``host`` resolvable."""
    limits.finite(timeout_s, "--timeout", 0.0, limits.MAX_TIMEOUT_S)
    if timeout_s < limits.MIN_TIMEOUT_S:
        raise UserError(f"--timeout must be at least {limits.MIN_TIMEOUT_S:g} s: the parties need longer than that to "
                        f"meet (got {timeout_s:g})", field="--timeout")
    try:
        socket.getaddrinfo(host, None)
    except (socket.gaierror, UnicodeError, ValueError) as exc:
        raise UserError(f"cannot resolve host '{host}' ({exc})", field="--host") from None
    if port is None:
        return
    limits.whole(port, "--port", 1, 65535)
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UserError(f"port {port} on {host} is in use (another picost run or another program); "
                                "choose another --port or leave it out", field="--port") from None
            # not a local address (a multi-host rendezvous): the parties report what they find


def run_batch(jobs: list[dict[str, Any]], host: str = "127.0.0.1", port: int | None = None,
              timeout_s: float = 60.0, extra: dict[str, Any] | None = None, run_limit_s: float = 1800.0,
              on_progress: Callable[[int, int], None] | None = None,
              role_prefix: dict[str, list[str]] | None = None) -> list[RunResult]:
    """Run several jobs one after the other in one launch of the three parties.

    ``timeout_s`` bounds every wait: for the parties to join, for any message, and for the others
    once one party has ended; ``run_limit_s`` bounds the whole launch. ``on_progress(done,
    total)`` is called as the client finishes each job. With ``port`` None a free port is picked,
    and picked again once if another program took it before the client could host the
    rendezvous. ``role_prefix`` puts a command before a role's party command, e.g. ``ip netns
    exec NS env GLOO_SOCKET_IFNAME=IF`` to start it in a network namespace (``picost.netlab``).

    The parties run in one process group owned by this launcher: they are stopped on every exit
    path (errors, SIGINT, SIGTERM), and without a ``role_prefix`` they also die with it (SIGKILL
    included). Jobs go to the parties on stdin and results come back on stdout: no job file with
    private inputs is ever written. Each run has a secret nonce (on the parties' stdin, never on
    the wire) that keys the authenticated rendezvous (:mod:`picost.mpc.rendezvous`): parties of
    two runs on one port never join each other, and no other program joins either."""
    check_launch(host, port, timeout_s)
    args = (jobs, host, timeout_s, extra, run_limit_s, on_progress, role_prefix)
    if port is not None:
        return _launch(port, *args)
    try:
        return _launch(free_port(host), *args)
    except MpcRunError as exc:
        if "cannot host the rendezvous" not in str(exc):
            raise
        return _launch(free_port(host), *args)


class _Stop(BaseException):
    """SIGTERM (or SIGHUP) arrived while the parties ran: stop them, then end."""


@contextmanager
def _stop_on_signals() -> Iterator[None]:
    """Turn SIGTERM/SIGHUP into :class:`_Stop` while the parties run (main thread only), so that
    the launcher's cleanup runs; restores the previous handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        raise _Stop(signum)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _launch(port: int, jobs: list[dict[str, Any]], host: str, timeout_s: float,
            extra: dict[str, Any] | None, run_limit_s: float,
            on_progress: Callable[[int, int], None] | None,
            role_prefix: dict[str, list[str]] | None = None) -> list[RunResult]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(_REPO) + os.pathsep + env.get("PYTHONPATH", "")
    options = {k: v for k, v in (extra or {}).items() if k in ("record_views", "debug_stall", "debug_crash", "frac_bits")}
    nonce = secrets.token_hex(16)
    procs: dict[str, subprocess.Popen] = {}
    errors: dict[str, list[str]] = {}
    outputs: dict[str, list[str]] = {}
    readers: list[threading.Thread] = []
    start = time.perf_counter()
    group: int | None = None
    notes: dict[str, str] = {}
    try:
        with _stop_on_signals():
            for role in ROLE_ORDER:
                mine = [dict(j) for j in jobs]
                if role != "client":
                    for j in mine:
                        j.pop("client_input", None)
                prefix = (role_prefix or {}).get(role, [])
                owner = [] if prefix else ["--parent-pid", str(os.getpid())]
                procs[role] = subprocess.Popen(
                    [*prefix, sys.executable, "-m", "picost.mpc.party", "--role", role, "--host", host, "--port",
                     str(port), "--job", "-", "--out", "-", "--timeout", str(timeout_s), "--connect-timeout",
                     str(timeout_s), *owner],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                    process_group=0 if group is None else group)
                group = procs[role].pid if group is None else group
                _hand_over(procs[role], json.dumps({**options, "kind": "batch", "jobs": mine, "nonce": nonce}))
                readers.append(_drain(procs[role].stderr, errors.setdefault(role, [])))
                readers.append(_follow(procs[role], len(jobs), on_progress if role == "client" else None,
                                       outputs.setdefault(role, [])))
            notes = _wait_all(procs, deadline=time.monotonic() + run_limit_s, grace_s=timeout_s + 2)
    except _Stop as stop:  # the parties are stopped, the caller's handlers back: deliver the signal to it
        _stop_group(procs, group)
        signal.raise_signal(stop.args[0])
        raise KeyboardInterrupt from None  # a handler that returned: still, this launch is over
    finally:
        _stop_group(procs, group)
        for t in readers:
            t.join(timeout=5)
    stderr = {r: "".join(errors.get(r, [])) + notes.get(r, "") for r in procs}
    failed = {r: stderr[r] for r, p in procs.items() if p.returncode != 0}
    if failed:
        lines = [f"{role} (exit {procs[role].returncode}): {(msg.strip().splitlines() or ['killed'])[-1]}"
                 for role, msg in failed.items()]
        raise MpcRunError("MPC run failed: " + "; ".join(lines))
    import torch

    loaded = {r: _result(outputs[r], torch)["runs"] for r in ROLE_ORDER}
    wall = time.perf_counter() - start
    return [RunResult({r: loaded[r][i]["stats"] for r in ROLE_ORDER},
                      {r: loaded[r][i]["results"] for r in ROLE_ORDER}, wall, stderr,
                      {r: loaded[r][i]["views"] for r in ROLE_ORDER},
                      {r: loaded[r][i]["preprocess_s"] for r in ROLE_ORDER},
                      {r: loaded[r][i]["peak_rss_bytes"] for r in ROLE_ORDER})
            for i in range(len(jobs))]


def _hand_over(proc: subprocess.Popen, job: str) -> None:
    """Write the job to the party's stdin and close it (in a thread: a big job must not block)."""

    def write() -> None:
        try:
            proc.stdin.write(job.encode("utf-8"))  # type: ignore[union-attr]
            proc.stdin.close()  # type: ignore[union-attr]
        except (BrokenPipeError, OSError, ValueError):  # the party died first: its exit code tells
            pass

    threading.Thread(target=write, daemon=True).start()


def _result(lines: list[str], torch: Any) -> dict[str, Any]:
    """A party's result from its ``result <base64>`` stdout line."""
    for line in lines:
        if line.startswith("result "):
            return torch.load(io.BytesIO(base64.b64decode(line[len("result "):])), weights_only=False)
    raise MpcRunError("MPC run failed: a party ended without a result")


def _stop_group(procs: dict[str, subprocess.Popen], group: int | None) -> None:
    """Kill the parties' process group (only processes this launcher started), then reap them."""
    if group is not None and any(p.poll() is None for p in procs.values()):
        try:
            os.killpg(group, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    for p in procs.values():
        if p.poll() is None:
            p.kill()
        p.wait()


def _follow(proc: subprocess.Popen, total: int, on_progress: Callable[[int, int], None] | None,
            into: list[str]) -> threading.Thread:
    """Read a party's stdout in a thread: report the client's ``progress <done>`` lines, keep the
    complete ``result`` line. Raw reads of the pipe (a result is megabytes long), robust to a
    descriptor someone made non-blocking."""

    def handle(line: bytes) -> None:
        if line.startswith(b"progress "):
            if on_progress is not None:
                on_progress(int(line.split()[1]), total)
        elif line.startswith(b"result "):
            into.append(line.decode("ascii"))

    def read() -> None:
        fd, buf = proc.stdout.fileno(), bytearray()  # type: ignore[union-attr]
        while True:
            try:
                chunk = os.read(fd, 1 << 16)
            except BlockingIOError:
                select.select([fd], [], [], 1.0)
                continue
            if not chunk:
                return  # an unterminated last line is an incomplete result: dropped
            buf += chunk
            while (end := buf.find(b"\n")) >= 0:
                handle(bytes(buf[:end]))
                del buf[:end + 1]

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def _drain(stream: Any, into: list[str]) -> threading.Thread:
    """Collect a party's stderr in a thread (so a chatty party never blocks on a full pipe)."""
    thread = threading.Thread(target=lambda: into.extend(line.decode("utf-8", "replace") for line in stream),
                              daemon=True)
    thread.start()
    return thread


def _wait_all(procs: dict[str, subprocess.Popen], deadline: float, grace_s: float) -> dict[str, str]:
    """Wait for every party; once one has ended (failed or done), give the others ``grace_s``
    to finish or report their own error, then stop them. Nothing runs past ``deadline``.
    Returns notes per stopped party."""
    while time.monotonic() < deadline and any(p.poll() is None for p in procs.values()):
        if any(p.poll() is not None for p in procs.values()):
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
              cached: int | None = None, force: bool = False, options: dict[str, str] | None = None) -> dict[str, Any]:
    """A job that runs the whole model ``spec_ref`` on the client's token ids: the prompt
    (prefill), or one new token after ``cached`` cached tokens (decode specs), with the engine
    settings of the ``picost-2pc`` ``options`` (:func:`engine_settings`). Refused up front when the
    run would need more memory than the machine has, unless ``force``."""
    from picost.mpc.memory import check_memory
    from picost.mpc.model import check_supported
    from picost.model.load import load_spec

    spec = load_spec(spec_ref)
    check_supported(spec)
    limits.whole(seed, "--seed", 0, limits.MAX_SEED)
    if not ids:
        raise UserError("give at least one token id", field="--tokens")
    bad = [t for t in ids if not 0 <= t < spec.vocab_size]
    if bad:
        raise UserError(f"token ids must be in 0..{spec.vocab_size - 1} (got {bad[0]})", field="--tokens")
    if spec.phase == "decode":
        if len(ids) != 1:
            raise UserError(f"spec '{spec.name}' decodes one token: give one id (got {len(ids)})", field="--tokens")
        context = spec.context_length if cached is None else cached
        limits.whole(context, "--cached", 1, limits.MAX_TOKENS)
    else:
        context = len(ids)
    positions = context + 1 if spec.phase == "decode" else context
    if spec.positional == "learned" and positions > spec.context_length:
        raise UserError(f"{positions} positions exceed the learned ones ({spec.context_length})", field="--tokens")
    check_memory(spec, context, force, options)
    return {"kind": "model", "spec": str(spec_ref), "context": context, "seed": seed, "frac_bits": frac_bits,
            **engine_settings(options), "client_input": {"ids": list(ids)}}


def engine_settings(options: dict[str, str] | None) -> dict[str, str]:
    """The job fields that make the engine run what ``picost-2pc`` with ``options`` costs: its
    ``comparison`` (``tables`` unless chosen), ``truncation`` (``exact``) and ``exp`` (``spline``)."""
    options = options or {}
    return {"comparison": options.get("comparison", "tables"), "truncation": options.get("truncation", "exact"),
            "exp": options.get("exp", "spline")}

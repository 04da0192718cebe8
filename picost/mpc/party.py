"""One party's entry point: ``python -m picost.mpc.party --role client|server|dealer ...``.

For multi-host runs start the three roles on their hosts with the same ``--host``/``--port``
(the client's address: rank 0 hosts the rendezvous, on that address only) and the same job
file (keep it private: mode 0600; only the client's job file needs the token ids). The job's
``nonce`` is the run's secret, the same in all three job files and fresh per run
(``--new-secret`` prints one); a job without one is refused (exit 2), and the parties join only
by proving they know it (:mod:`picost.mpc.rendezvous`). Each party writes its measurements (and
the client its result) to ``--out`` as a torch file. Exit code 0 on success, 2 for bad
arguments, 3 when a peer failed, went silent or was refused (the rendezvous).

The local launcher (:mod:`picost.mpc.launcher`) passes the job on stdin (``--job -``), reads the
result from stdout (``--out -``) so that no private input or output touches the disk, and gives
``--parent-pid``: the party then dies with the launcher (Linux parent-death signal, and a
watchdog on every platform).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import math
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import torch

from picost.model import limits
from picost.mpc import transport
from picost.mpc.transport import PartyError

ROLES = {"client": transport.CLIENT, "server": transport.SERVER, "dealer": transport.DEALER}


def run_job(rank: int, host: str, port: int, job: dict[str, Any], timeout_s: float,
            connect_timeout_s: float = 60.0) -> dict[str, Any]:
    """Join the parties, run ``job`` (or each job of a ``batch``) and return this party's
    measurements and results: ``{"runs": [{"stats", "results", "views", "preprocess_s"}, ...]}``.
    Client and server run each op twice (``ops_exec.stage``): an offline rehearsal that receives
    and keeps the dealer's material for that op, then the online run (whose wall times are online
    only)."""
    from picost.mpc.dealer import Correlations
    from picost.mpc.protocols import COMPARISONS, EXPS, TRUNCATIONS, Ctx

    from picost.mpc.heap import keep_freed_memory

    torch.set_num_threads(1)
    keep_freed_memory()
    tx = transport.init(rank, host, port, timeout_s, connect_timeout_s, job.get("nonce"))
    try:
        stall = job.get("debug_stall")
        if stall and ROLES[stall["role"]] == rank:  # tests: a party that stops answering
            time.sleep(float(stall["seconds"]))
        crash = job.get("debug_crash")
        if crash and ROLES[crash["role"]] == rank:  # tests: a party that dies mid-run
            tx.crash_at = crash["op"]
        tx.record_views = bool(job.get("record_views", False))
        ctx = Ctx(tx, Correlations(tx), int(job.get("frac_bits", 16)))
        runs = []
        for sub in job["jobs"] if job["kind"] == "batch" else [job]:
            ctx.frac_bits = int(sub.get("frac_bits", job.get("frac_bits", 16)))
            ctx.comparison = str(sub.get("comparison", job.get("comparison", "tables")))
            if ctx.comparison not in COMPARISONS:
                raise ValueError(f"unknown comparison {ctx.comparison!r}; choose from {', '.join(COMPARISONS)}")
            ctx.truncation = str(sub.get("truncation", job.get("truncation", "exact")))
            if ctx.truncation not in TRUNCATIONS:
                raise ValueError(f"unknown truncation {ctx.truncation!r}; choose from {', '.join(TRUNCATIONS)}")
            ctx.exp = str(sub.get("exp", job.get("exp", "spline")))
            if ctx.exp not in EXPS:
                raise ValueError(f"unknown exp {ctx.exp!r}; choose from {', '.join(EXPS)}")
            ctx.pre.new_model()  # each job sets its model's weights up afresh
            ctx.preprocess_s = 0.0
            tx.sync()  # both ready: the clocks start together
            tx.stats, tx.views = {}, []
            results = _run_one(ctx, sub, rank)  # op by op: offline rehearsal, then online
            runs.append({"stats": {name: vars(s) for name, s in tx.stats.items()}, "results": results,
                         "views": tx.views, "preprocess_s": ctx.preprocess_s, "peak_rss_bytes": peak_rss_bytes()})
            if rank == transport.CLIENT:
                emit(f"progress {len(runs)}".encode())
        tx.finish()
        return {"role": rank, "runs": runs}
    finally:
        transport.close()


def peak_rss_bytes() -> int:
    """This process's peak resident memory so far (bytes): ``VmHWM`` of /proc/self/status, whose
    count starts at this program's exec (``ru_maxrss`` keeps the high-water mark of the process it
    was forked from, so a party started by a large launcher would report the launcher's memory);
    ``ru_maxrss`` where /proc is missing."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _run_one(ctx: Any, job: dict[str, Any], rank: int) -> dict[str, Any]:
    if job["kind"] == "ops":
        from picost.mpc.oplab import run_op

        return {op["name"]: run_op(ctx, op["name"], op["kind"], op["dims"], int(job["seed"]) * 1000 + i)
                for i, op in enumerate(job["ops"])}
    if job["kind"] == "model":
        from picost.mpc.model import run_model
        from picost.model.load import load_spec

        spec = load_spec(job["spec"])
        tokens = 1 if spec.phase == "decode" else job["context"]
        ids = job.get("client_input", {}).get("ids") if rank == transport.CLIENT else [0] * tokens
        if ids is None or len(ids) != tokens:
            raise ValueError(f"the client's job needs client_input.ids with {tokens} token ids")
        return run_model(ctx, spec, int(job["seed"]), ids, int(job["context"]))
    if job["kind"] == "generate":
        from picost.mpc.generate import run_generation_job

        return run_generation_job(ctx, job, rank)
    raise ValueError(f"unknown job kind {job['kind']!r}")


def emit(line: bytes) -> None:
    """Write one whole line to stdout. Raw, blocking writes: ``print`` can silently drop part of a
    long line when a library has made the descriptor non-blocking."""
    sys.stdout.flush()
    os.set_blocking(1, True)
    view = memoryview(line + b"\n")
    while view:
        view = view[os.write(1, view):]


def die_with_parent(parent_pid: int) -> None:
    """End this process when ``parent_pid`` (the launcher) dies: the kernel's parent-death signal
    on Linux, and a watchdog thread (every 0.2 s) everywhere."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the watchdog alone
        pass
    if os.getppid() != parent_pid:  # the launcher died before the signal was armed
        os._exit(4)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.2)
        os._exit(4)

    threading.Thread(target=watch, daemon=True).start()


MIN_SECRET_CHARS = 16
MAX_SECRET_CHARS = 1024
SECRET_HINT = ("a fresh random one in all three job files (`picost mpc party --new-secret`, or "
               "`python -c \"import secrets; print(secrets.token_hex(16))\"`)")


def new_secret() -> str:
    """A fresh per-run secret for the jobs' ``nonce``: 128 random bits as 32 hex digits."""
    import secrets

    return secrets.token_hex(16)


def secret_problem(nonce: Any) -> str | None:
    """Why ``nonce`` cannot key a run's rendezvous (None: it can). There is no default: a run
    without its own secret would be open to anyone who knows the default."""
    if nonce is None:
        return f"has no 'nonce': the run's secret, the same in the three parties' jobs; put {SECRET_HINT}"
    if not isinstance(nonce, str) or not nonce.strip():
        return f"has a 'nonce' that is not a non-empty string: put {SECRET_HINT}"
    if len(nonce) > MAX_SECRET_CHARS:
        return f"has a 'nonce' of {len(nonce)} characters (at most {MAX_SECRET_CHARS})"
    return None


def _read_job_file(path: Path) -> str:
    """A job file's text: a regular file of at most ``MAX_FILE_BYTES``; a warning when other
    users may read it (its nonce is the run's secret, and the client's holds the token ids)."""
    import stat

    from picost.model.limits import MAX_FILE_BYTES

    info = path.stat()
    if not stat.S_ISREG(info.st_mode):
        raise ValueError("not a regular file (a directory, FIFO or device cannot be a job)")
    if info.st_mode & 0o077:
        sys.stderr.write(f"warning: the job {path} may be read by other users (mode {stat.S_IMODE(info.st_mode):04o}): "
                         f"it holds the run's secret; chmod 600 {path}\n")
    with path.open("rb") as handle:
        data = handle.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"larger than {MAX_FILE_BYTES} bytes")
    return data.decode("utf-8")


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Run one party of a picost MPC job.")
    ap.add_argument("--new-secret", action="store_true",
                    help="print a fresh secret for the jobs' 'nonce' (32 hex digits) and exit")
    ap.add_argument("--role", choices=sorted(ROLES))
    ap.add_argument("--host", default="127.0.0.1", help="address of the client (rank 0 rendezvous)")
    ap.add_argument("--port", type=int, default=29500)
    ap.add_argument("--job", help="job JSON file (mode 0600: its 'nonce' is the run's secret), or - for stdin")
    ap.add_argument("--out", help="where to write this party's results (.pt), or - for stdout")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for any message")
    ap.add_argument("--connect-timeout", type=float, default=60.0, help="seconds to wait for the others to join")
    ap.add_argument("--parent-pid", type=int, default=None, help="exit when this process (the launcher) dies")
    args = ap.parse_args(argv)
    if args.new_secret:
        return args
    missing = [f"--{name}" for name in ("role", "job", "out") if getattr(args, name) is None]
    if missing:
        ap.error(f"the following arguments are required: {', '.join(missing)}")
    if not 1 <= args.port <= 65535:
        ap.error(f"--port must be in 1..65535 (got {args.port})")
    for name in ("timeout", "connect_timeout"):
        value = getattr(args, name)
        if not (math.isfinite(value) and limits.MIN_TIMEOUT_S <= value <= limits.MAX_TIMEOUT_S):
            ap.error(f"--{name.replace('_', '-')} must be a finite number of seconds from {limits.MIN_TIMEOUT_S:g} to "
                     f"{limits.MAX_TIMEOUT_S:g} (got {value})")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    if args.new_secret:
        emit(new_secret().encode())
        return 0
    if args.parent_pid is not None:
        die_with_parent(args.parent_pid)
    try:
        job = json.loads(sys.stdin.read() if args.job == "-" else _read_job_file(Path(args.job)))
        if not isinstance(job, dict) or "kind" not in job:
            raise ValueError("a job is a JSON object with a 'kind'")
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"error: cannot read the job {args.job}: {exc}\n")
        return 2
    problem = secret_problem(job.get("nonce"))
    if problem:
        sys.stderr.write(f"error: the job {args.job} {problem}\n")
        return 2
    if len(job["nonce"]) < MIN_SECRET_CHARS:
        sys.stderr.write(f"warning: the job's nonce has only {len(job['nonce'])} characters: a short secret can be "
                         f"guessed; use {SECRET_HINT}\n")
    try:
        result = run_job(ROLES[args.role], args.host, args.port, job, args.timeout, args.connect_timeout)
    except PartyError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 3
    except Exception:  # noqa: BLE001 - report, then fail the party
        sys.stderr.write(f"error: {args.role} failed:\n{traceback.format_exc()}")
        return 1
    if args.out == "-":
        buffer = io.BytesIO()
        torch.save(result, buffer)
        emit(b"result " + base64.b64encode(buffer.getvalue()))
    else:
        out = Path(args.out)
        tmp = out.with_suffix(".tmp")
        torch.save(result, tmp)
        tmp.replace(out)
    for run in result["runs"]:
        if "next_token" in run["results"]:
            emit(f"next_token {run['results']['next_token']}".encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""One party's entry point: ``python -m picost.mpc.party --role client|server|dealer ...``.

For multi-host runs start the three roles on their hosts with the same ``--host``/``--port``
(the client's address: rank 0 hosts the rendezvous) and the same job file; only the client's
job file needs the token ids. Each party writes its measurements (and the client its result) to
``--out`` as a torch file. Exit code 0 on success, 3 when a peer failed or went silent.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import torch

from picost.mpc import transport
from picost.mpc.transport import PartyError

ROLES = {"client": transport.CLIENT, "server": transport.SERVER, "dealer": transport.DEALER}


def run_job(rank: int, host: str, port: int, job: dict[str, Any], timeout_s: float,
            connect_timeout_s: float = 120.0) -> dict[str, Any]:
    """Join the parties, run ``job`` (or each job of a ``batch``) and return this party's
    measurements and results: ``{"runs": [{"stats", "results", "views", "preprocess_s"}, ...]}``.
    Client and server run each job twice: an offline rehearsal that receives and keeps the
    dealer's material, then the online run (whose wall times are online only)."""
    from picost.mpc.dealer import Correlations
    from picost.mpc.protocols import Ctx

    torch.set_num_threads(1)
    tx = transport.init(rank, host, port, timeout_s, connect_timeout_s)
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
            preprocess_s = 0.0
            tx.views = []  # a fresh list: the previous job's views stay as they were
            if rank != transport.DEALER:  # offline: rehearse the program, taping the dealer's values
                start = time.perf_counter()
                tx.rehearsal = True
                ctx.pre.record()
                _run_one(ctx, sub, rank)
                tx.rehearsal = False
                ctx.pre.replay()
                preprocess_s = time.perf_counter() - start
                tx.sync()  # both ready: the online clock starts together
            tx.stats, tx.views = {}, []
            results = _run_one(ctx, sub, rank)  # online (the dealer: its only pass)
            ctx.pre.live()
            runs.append({"stats": {name: vars(s) for name, s in tx.stats.items()}, "results": results,
                         "views": tx.views, "preprocess_s": preprocess_s})
            if rank == transport.CLIENT:
                print(f"progress {len(runs)}", flush=True)
        tx.finish()
        return {"role": rank, "runs": runs}
    finally:
        transport.close()


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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Run one party of a picost MPC job.")
    ap.add_argument("--role", choices=sorted(ROLES), required=True)
    ap.add_argument("--host", default="127.0.0.1", help="address of the client (rank 0 rendezvous)")
    ap.add_argument("--port", type=int, default=29500)
    ap.add_argument("--job", type=Path, required=True, help="job JSON")
    ap.add_argument("--out", type=Path, required=True, help="where to write this party's results (.pt)")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for any message")
    ap.add_argument("--connect-timeout", type=float, default=120.0, help="seconds to wait for the others to join")
    args = ap.parse_args(argv)
    job = json.loads(args.job.read_text())
    try:
        result = run_job(ROLES[args.role], args.host, args.port, job, args.timeout, args.connect_timeout)
    except PartyError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 3
    except Exception:  # noqa: BLE001 - report, then fail the party
        sys.stderr.write(f"error: {args.role} failed:\n{traceback.format_exc()}")
        return 1
    tmp = args.out.with_suffix(".tmp")
    torch.save(result, tmp)
    tmp.replace(args.out)
    for run in result["runs"]:
        if "next_token" in run["results"]:
            print(f"next_token {run['results']['next_token']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Engine parties as separate processes in a netlab, each op timed at several one-way delays.

An engine's party script (SPU: ``picost/spu/multiproc.py``; CrypTen: ``benchmarks/crypten_ops.py
depth-party``) runs once per party in its own namespace and speaks a line protocol on
stdin/stdout: a first line with the JSON request; per case it prepares and warms up, prints
``@@READY i``, answers ``run LABEL N`` with ``@@TIMES {"walls_s": [...], "send_actions": [...],
...}`` (N timed runs, each after a barrier) and moves on at ``next``; ``@@FAILED "..."`` ends it.

:func:`time_cases` drives them: every case runs ``repeats`` times at each delay, the delays
interleaved (d0, d1, d2, d0, d1, ...: slow drifts of the machine's load spread over all of them),
the delay line changed between runs (:meth:`~picost.netlab.lab.Netlab.set_delay`). Bandwidth
is unshaped, so time grows with the delay only through the op's sequential crossings:
:mod:`picost.netlab.depth` turns the walls (the slowest party's per run) into a depth. TCP's
slow start after idle is off in the parties' namespaces (``net.ipv4.tcp_slow_start_after_idle =
0``), so a congestion window grown in the warm-up is not reset between the op's messages.
"""

from __future__ import annotations

import json
import select
import statistics
import subprocess
from typing import Any, Callable, Mapping, Sequence

from picost.netlab.depth import summarize
from picost.netlab.lab import LinkShape, Netlab, NetlabError, run_cmd

STEP_TIMEOUT_S = 3600.0


def read_marker(proc: subprocess.Popen, want: str, timeout_s: float) -> Any:
    """The payload of the next ``@@WANT`` line of ``proc`` (a ``@@FAILED`` line raises)."""
    while True:
        ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
        if not ready:
            raise NetlabError(f"no @@{want} from a party within {timeout_s} s")
        line = proc.stdout.readline()
        if not line:
            raise NetlabError(f"a party exited (code {proc.wait()}) before @@{want}")
        marker, _, payload = line.strip().partition(" ")
        if marker == "@@FAILED":
            raise NetlabError(f"a party failed: {json.loads(payload)}")
        if marker == f"@@{want}":
            return json.loads(payload)


def single_delay(walls_s: Sequence[float]) -> dict:
    """The summary of runs at one delay: the fastest (other tenants of a shared machine only
    ever add time) and the median wall, seconds."""
    return {"min_wall_s": round(min(walls_s), 6), "median_wall_s": round(statistics.median(walls_s), 6)}


def tell(procs: Sequence[subprocess.Popen], line: str) -> None:
    for proc in procs:
        proc.stdin.write(line + "\n")
        proc.stdin.flush()


def time_cases(parties: Sequence[str], argv: Callable[[Netlab, int], list[str]], env: Mapping[str, str],
               request: dict, cases: list[dict], delays_s: Sequence[float], repeats: int = 3,
               timeout_s: float = STEP_TIMEOUT_S, label: Mapping[str, Any] | None = None,
               on_result: Callable[[dict], None] | None = None, rate_bps: float | None = None,
               delay_line: bool = True) -> list[dict]:
    """Start ``argv(lab, rank)`` for every party (by rank) in a lab, send ``request`` and time
    every case at every delay. One dict per case: the case, ``label``, the slowest party's wall
    per run and delay, each rank's send actions and bytes per run, and with two or more delays
    :func:`summarize`'s depth, with one delay ``min_wall_s`` and ``median_wall_s`` (the compute
    and the latency checks); ``on_result`` gets each as it finishes. ``rate_bps`` shapes every
    party's incoming link (bits per second on the wire; ``None``: unshaped). ``delay_line=False``:
    a lab without a delay line (delay 0 only; no lab process competes for the CPU), where
    compute is measured."""
    delays = [float(d) for d in delays_s]
    results = []
    with Netlab.uniform(LinkShape(rate_bps, delays[0]), parties, delay_line) as lab:
        for party in parties:
            run_cmd(["ip", "netns", "exec", lab.namespace(party), "sysctl", "-qw",
                     "net.ipv4.tcp_slow_start_after_idle=0"])
        procs = [lab.popen(p, argv(lab, r), env=dict(env), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                 for r, p in enumerate(parties)]
        tell(procs, json.dumps(request))
        for case in cases:
            for proc in procs:
                read_marker(proc, "READY", timeout_s)
            walls: dict[float, list[float]] = {d: [] for d in delays}
            ranks: list[dict] = [{"send_actions": [], "send_bytes": []} for _ in parties]
            for _ in range(repeats):
                for d in delays:
                    for party in parties if delay_line else ():
                        lab.set_delay(party, d)
                    tell(procs, f"run {d!r} 1")
                    times = [read_marker(proc, "TIMES", timeout_s) for proc in procs]
                    walls[d].append(max(t["walls_s"][0] for t in times))
                    for r, t in enumerate(times):
                        ranks[r]["send_actions"] += t.get("send_actions", [None])
                        ranks[r]["send_bytes"] += t.get("send_bytes", [None])
            tell(procs, "next")
            counted = [a for r in ranks for a in r["send_actions"] if a is not None]
            result = {**case, **(label or {}), "delays_s": delays, "walls_s": [walls[d] for d in delays],
                      "ranks": ranks, "max_send_actions": max(counted) if counted else None,
                      **(summarize(walls) if len(delays) > 1 else single_delay(walls[delays[0]]))}
            results.append(result)
            if on_result is not None:
                on_result(result)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    return results

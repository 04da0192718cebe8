"""SPU's parties as separate processes in a netlab, timed at several one-way delays.

Each party runs ``picost/spu/multiproc.py`` under the SPU interpreter in its own namespace and
links to the others with SPU's brpc transport at their lab addresses. For every op the parties
compile and warm up once; then the op runs ``repeats`` times at each delay, the delays
interleaved (d0, d1, d2, d0, d1, ...: slow drifts of the machine's load spread over all of them),
the delay line changed between runs (:meth:`~picost.netlab.lab.Netlab.set_delay`). Bandwidth
is unshaped, so time grows with the delay only through the op's sequential crossings:
:mod:`picost.netlab.depth` turns the walls into a depth. TCP's slow start after idle is off in
the parties' namespaces (``net.ipv4.tcp_slow_start_after_idle = 0``), so a congestion window
grown in the warm-up is not reset between the op's messages (that would add round trips that
are TCP's, not the protocol's).
"""

from __future__ import annotations

import json
import select
import subprocess
from pathlib import Path
from typing import Any, Sequence

from picost.netlab.depth import summarize
from picost.netlab.lab import LinkShape, Netlab, NetlabError, run_cmd

MULTIPROC = Path(__file__).resolve().parents[1] / "spu" / "multiproc.py"
PARTIES = ("alice", "bob", "carol")  # by rank
NPARTIES = {"SEMI2K": 2, "CHEETAH": 2, "ABY3": 3}
BASE_PORT = 41000
STEP_TIMEOUT_S = 3600.0


def _marker(proc: subprocess.Popen, want: str, timeout_s: float) -> Any:
    """The payload of the next ``@@WANT`` line of ``proc`` (a ``@@FAILED`` line raises)."""
    while True:
        ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
        if not ready:
            raise NetlabError(f"no @@{want} from an SPU party within {timeout_s} s")
        line = proc.stdout.readline()
        if not line:
            raise NetlabError(f"an SPU party exited (code {proc.wait()}) before @@{want}")
        marker, _, payload = line.strip().partition(" ")
        if marker == "@@FAILED":
            raise NetlabError(f"an SPU party failed: {json.loads(payload)}")
        if marker == f"@@{want}":
            return json.loads(payload)


def _tell(procs: Sequence[subprocess.Popen], line: str) -> None:
    for proc in procs:
        proc.stdin.write(line + "\n")
        proc.stdin.flush()


def measure_depths(protocol: str, cases: list[dict], delays_s: Sequence[float], spu_python: str,
                   repeats: int = 3, warmup: int = 1, timeout_s: float = STEP_TIMEOUT_S,
                   on_result=None) -> list[dict]:
    """Time every case of ``cases`` (measurements as ``runner.py ops`` takes them, without the
    protocol) at every delay; one dict per case: the case, the slowest party's wall per run and
    delay, each rank's send actions and bytes per run, and :func:`summarize`'s depth.
    ``on_result(dict)`` is called as each case finishes (to save incrementally)."""
    parties = PARTIES[: NPARTIES[protocol]]
    delays = [float(d) for d in delays_s]
    results = []
    with Netlab.uniform(LinkShape(None, delays[0]), parties) as lab:
        addresses = ",".join(lab.address(p) for p in parties)
        for party in parties:
            run_cmd(["ip", "netns", "exec", lab.namespace(party), "sysctl", "-qw",
                     "net.ipv4.tcp_slow_start_after_idle=0"])
        procs = [lab.popen(p, [spu_python, str(MULTIPROC), "--rank", str(r), "--addresses", addresses,
                               "--port", str(BASE_PORT)], env={"JAX_PLATFORMS": "cpu"},
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                 for r, p in enumerate(parties)]
        _tell(procs, json.dumps({"protocol": protocol, "cases": cases, "warmup": warmup}))
        for i, case in enumerate(cases):
            for proc in procs:
                _marker(proc, "READY", timeout_s)
            walls: dict[float, list[float]] = {d: [] for d in delays}
            ranks: list[dict] = [{"send_actions": [], "send_bytes": []} for _ in parties]
            for _ in range(repeats):
                for d in delays:
                    for party in parties:
                        lab.set_delay(party, d)
                    _tell(procs, f"run {d!r} 1")
                    times = [_marker(proc, "TIMES", timeout_s) for proc in procs]
                    walls[d].append(max(t["walls_s"][0] for t in times))
                    for r, t in enumerate(times):
                        ranks[r]["send_actions"] += t["send_actions"]
                        ranks[r]["send_bytes"] += t["send_bytes"]
            _tell(procs, "next")
            result = {**case, "protocol": protocol, "delays_s": delays,
                      "walls_s": [walls[d] for d in delays], "ranks": ranks,
                      "max_send_actions": max((max(a for a in r["send_actions"] if a is not None)
                                               for r in ranks if any(a is not None for a in r["send_actions"])),
                                              default=None),
                      **summarize(walls)}
            results.append(result)
            if on_result is not None:
                on_result(result)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    return results

"""One SPU party as its own process, talking to the others over SPU's brpc links (real sockets).

Runs inside the SPU virtualenv and imports nothing but jax, numpy, spu, the standard library and
its siblings (``runner.py``, ``jax_ops.py``), never picost. ``picost/netlab/spu_runs.py`` starts
one of these per party, each in its own network namespace, and drives them over stdin/stdout::

    .venv-spu/bin/python picost/spu/multiproc.py --rank R --addresses A0,A1[,A2] --port P [--cpus 0]

``--cpus`` pins the process (and every thread it starts: SPU's, brpc's, XLA's) to those cores
(``os.sched_setaffinity``, before SPU is imported); the core-scaling runs of
``benchmarks/spu_compute.py --scaling`` place the parties with it.

Protocol (one line each way at a time):

* stdin, first line: ``{"protocol": ..., "cases": [measurement, ...], "warmup": W}`` (a
  measurement as in ``runner.py ops``, or a whole model: a request of ``runner.py model``, which
  has a ``spec``);
* per case the party compiles the op, shares its inputs (each process makes its own shares with
  its own randomness: the values are meaningless, the costs and the timing are value-independent),
  links to the others at ``A_rank:P+case`` (``libspu.link.create_brpc``; SPU's default transport
  options), makes a runtime, runs the op ``W`` times untimed (setup, OT and HE keys) and prints
  ``@@READY i``;
* ``run LABEL N``: N timed runs (before each: inputs set, then a link barrier); prints
  ``@@TIMES {"case", "rank", "label", "walls_s", "send_actions", "send_bytes"}`` -- the wall time of
  every run on this party and its own send actions and sent bytes per run (from SPU's profile);
* ``next``: close this case's link and go on; after the last case the process exits.

Failures print ``@@FAILED "message"`` and exit 1. SPU's C++ log goes to a temporary file (read
for the profile's ``Link details``), so stdout carries only these markers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import runner  # noqa: E402  (sibling, by path)

CONNECT_RETRIES = 120  # parties start (and compile) at different times


class Log:
    """The process's fds 1 and 2 point at a temporary file; :meth:`new` returns what was added."""

    def __init__(self) -> None:
        self.out = os.fdopen(os.dup(1), "w", buffering=1)
        self.file = tempfile.TemporaryFile()
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(self.file.fileno(), 1)
        os.dup2(self.file.fileno(), 2)
        self.pos = 0

    def new(self) -> str:
        sys.stdout.flush()
        sys.stderr.flush()
        self.file.seek(self.pos)
        text = self.file.read().decode(errors="replace")
        self.pos += len(text.encode(errors="replace"))
        return text

    def say(self, marker: str, payload) -> None:
        self.out.write(f"@@{marker} {json.dumps(payload)}\n")
        self.out.flush()


def link_for(protocol: str, rank: int, addresses: list[str], port: int, case: int):
    import spu.libspu as libspu

    desc = libspu.link.Desc()
    desc.id = f"picost-depth-{case}"
    desc.recv_timeout_ms = runner.CHILD_TIMEOUT_S * 1000
    desc.connect_retry_times = CONNECT_RETRIES
    for r, address in enumerate(addresses[: runner.PROTOCOLS[protocol]]):
        desc.add_party(f"id_{r}", f"{address}:{port + case}")
    return libspu.link.create_brpc(desc, rank)


def serve_case(log: Log, protocol: str, rank: int, addresses: list[str], port: int, case: int, m: dict,
               warmup: int) -> None:
    import spu.api as api
    import spu.libspu as libspu

    if "spec" in m:  # a whole model (a request of runner.py model)
        program = runner.build_model(m)
        weights, input = m.get("weights", "server-private"), m.get("input", "client-private")
    else:
        program, opts = runner.build_case({**m, "protocol": protocol})
        weights, input = opts["weights"], opts["input"]
    prep = runner.prepare(protocol, program.fun, program.args, program.roles, weights, input)
    link = link_for(protocol, rank, addresses, port, case)
    runtime = api.Runtime(link, libspu.RuntimeConfig(prep.cfg))

    def one_run() -> float:
        for name, share in zip(prep.names, prep.shares):
            runtime.set_var(name, share[rank])
        link.barrier()
        start = time.perf_counter()
        runtime.run(prep.exe)
        return time.perf_counter() - start

    for _ in range(warmup):
        one_run()
    log.new()
    log.say("READY", case)
    for line in sys.stdin:
        verb, *args = line.split()
        if verb == "next":
            break
        if verb != "run":
            raise ValueError(f"unknown command {line.strip()!r}")
        label, n = args[0], int(args[1])
        walls, actions, sent = [], [], []
        for _ in range(n):
            walls.append(round(one_run(), 6))
            links = [tuple(int(g) for g in mt.groups()) for mt in runner._LINK.finditer(log.new())]
            actions.append(links[-1][2] if links else None)
            sent.append(links[-1][0] if links else None)
        log.say("TIMES", {"case": case, "rank": rank, "label": label, "walls_s": walls,
                          "send_actions": actions, "send_bytes": sent})
    link.barrier()
    link.stop_link()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rank", type=int, required=True)
    parser.add_argument("--addresses", required=True, help="every party's IP address, by rank, comma-separated")
    parser.add_argument("--port", type=int, required=True, help="case i listens on port + i")
    parser.add_argument("--cpus", help="pin this party to these cores (comma-separated ids); default: unpinned")
    ns = parser.parse_args(argv)
    if ns.cpus:
        os.sched_setaffinity(0, {int(c) for c in ns.cpus.split(",")})
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    log = Log()
    try:
        request = json.loads(sys.stdin.readline())
        addresses = ns.addresses.split(",")
        for i, m in enumerate(request["cases"]):
            serve_case(log, request["protocol"], ns.rank, addresses, ns.port, i, m, int(request.get("warmup", 1)))
    except BaseException as exc:  # noqa: BLE001 - reported to the orchestrator
        log.say("FAILED", (repr(exc) + "\n" + log.new()[-3000:])[-4000:])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

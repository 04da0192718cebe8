"""Measure the round depth of SPU 0.9.5 ops: wall time over injected one-way delay (needs root).

Each protocol's parties run as separate processes in netlab namespaces, linked by SPU's brpc
transport (``picost/netlab/spu_runs.py``, ``picost/spu/multiproc.py``); every op runs at each
one-way delay of ``--delays`` (default 0, 20 and 40 ms, unshaped bandwidth), ``--repeats`` times
per delay, and the slope of the slowest party's wall time over the delay is its depth in one-way
delays (``picost/netlab/depth.py``). The SPU tables keep ``delays_per_round`` at 1, so
``benchmarks/spu_tables.py`` writes this depth as ``rounds`` (and SPU's send actions, the
message count, as ``messages``).

Appends one JSON line per op to ``benchmarks/results/spu/depth-<protocol>.jsonl`` (ops already
there are skipped: an interrupted run resumes). The SPU interpreter is ``$PICOST_SPU_PYTHON`` or
``.venv-spu/bin/python``::

    sudo .venv/bin/python benchmarks/spu_depth.py --protocol SEMI2K
    sudo .venv/bin/python benchmarks/spu_depth.py --protocol CHEETAH --part core --repeats 3
    .venv/bin/python benchmarks/spu_depth.py --protocol ABY3 --list

Plan (two sizes per op, smaller under CHEETAH; row ops at two row lengths, so a depth growing
with log2(cols) shows):
``core`` = ReLU, GELU (stock erf, stock tanh, PUMA), softmax (stock, PUMA), LayerNorm, a linear
and a batched matmul; ``rest`` = the other kinds with messages (mul, truncation, scale,
weight_mul, rope, SiLU, argmax, RMSNorm, the embedding).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from picost.netlab.lab import netlab_unavailable_reason  # noqa: E402
from picost.netlab.spu_runs import NPARTIES, time_spu_cases  # noqa: E402
from picost.spu.bridge import spu_python  # noqa: E402

OUT = REPO / "benchmarks" / "results" / "spu"
KEY_FIELDS = ("series", "kind", "dims")


def _op(series: str, kind: str, sizes: list[dict], **opts) -> list[dict]:
    return [{"series": series, "kind": kind, "dims": d, **opts} for d in sizes]


def plan(part: str, protocol: str = "SEMI2K") -> list[dict]:
    small = protocol == "CHEETAH"  # OT and HE: slow on 2 cores, and deep
    n2 = [{"n": 1024}, {"n": 4096 if small else 16384}]
    rows2 = [{"rows": 4 if small else 8, "cols": 16}, {"rows": 4 if small else 8, "cols": 256}]
    core = (_op("relu", "relu", n2)
            + _op("gelu.stock_erf", "gelu", n2, construction="stock_erf")
            + _op("gelu.stock_tanh", "gelu_tanh", n2, construction="stock_tanh")
            + _op("gelu.puma", "gelu", n2, construction="puma")
            + _op("softmax.stock", "softmax", rows2, construction="stock")
            + _op("softmax.puma", "softmax", rows2, construction="puma")
            + _op("layernorm.server-private", "layernorm", [{"rows": 4, "cols": 64}, {"rows": 4, "cols": 1024}])
            + _op("linear.server-private", "linear", [{"m": 16, "k": 64, "n": 64},
                                                       {"m": 16 if small else 64, "k": 256, "n": 256}])
            + _op("matmul", "matmul", [{"b": 1, "m": 16, "k": 64, "n": 16},
                                       {"b": 2 if small else 4, "m": 16, "k": 64, "n": 16}]))
    rest = (_op("mul", "mul", n2) + _op("truncation", "truncation", n2) + _op("scale", "scale", n2)
            + _op("weight_mul.server-private", "weight_mul", n2) + _op("rope", "rope", [{"n": 1024}, {"n": 16384}])
            + _op("silu", "silu", n2) + _op("argmax", "argmax", [{"rows": 1, "cols": 16}, {"rows": 1, "cols": 256}])
            + _op("rmsnorm.server-private", "rmsnorm", [{"rows": 4, "cols": 64}, {"rows": 4, "cols": 1024}])
            + _op("embedding.client-private.server-private", "embedding",
                  [{"tokens": 4, "vocab": 256, "width": 64}, {"tokens": 16, "vocab": 1024, "width": 64}]))
    return {"core": core, "rest": rest, "all": core + rest}[part]


def _key(m: dict) -> str:
    return json.dumps([m.get(k) for k in KEY_FIELDS], sort_keys=True)


def append_row(out: Path, row: dict) -> None:
    """Append one JSON line (``row`` and the machine's load average) to ``out``."""
    with out.open("a") as f:
        f.write(json.dumps({**row, "loadavg": [round(x, 2) for x in os.getloadavg()]}) + "\n")


def campaign_todo(cases: list[dict], ns: argparse.Namespace, out: Path, key) -> list[dict] | None:
    """The cases of a campaign still to run (``--only`` applied, resuming ``out``); ``None``
    after printing the plan for ``--list``; exits if the netlab cannot run here."""
    cases = [m for m in cases if not ns.only or m["series"].startswith(ns.only)]
    todo = pending(cases, out, key, ns.list)
    if ns.list:
        return None
    reason = netlab_unavailable_reason()
    if reason:
        raise SystemExit(reason)
    return todo


def pending(cases: list[dict], out: Path, key, show: bool = False) -> list[dict]:
    """The cases whose ``key`` has no line in ``out`` yet (a campaign resumes where it stopped);
    with ``show``, every case is printed as ``todo`` or ``done``."""
    done = {key(json.loads(line)) for line in out.read_text().splitlines() if line.strip()} if out.is_file() else set()
    todo = [m for m in cases if key(m) not in done]
    if show:
        for m in cases:
            print(("done " if key(m) in done else "todo ") + json.dumps(m))
    return todo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--protocol", choices=sorted(NPARTIES), required=True)
    parser.add_argument("--part", choices=("core", "rest", "all"), default="all")
    parser.add_argument("--delays", default="0,0.02,0.04", help="one-way delays in seconds, comma-separated")
    parser.add_argument("--repeats", type=int, default=3, help="runs per delay (median taken)")
    parser.add_argument("--only", help="run only series whose name starts with this")
    parser.add_argument("--list", action="store_true", help="print the plan and exit")
    ns = parser.parse_args(argv)
    out = OUT / f"depth-{ns.protocol.lower()}.jsonl"
    todo = campaign_todo(plan(ns.part, ns.protocol), ns, out, _key)
    if todo is None:
        return 0
    run = {"run": f"benchmarks/spu_depth.py --protocol {ns.protocol} --delays {ns.delays} --repeats {ns.repeats}",
           "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    delays = [float(d) for d in ns.delays.split(",")]

    def save(result: dict) -> None:
        append_row(out, {**run, **result})
        print(f"{result['series']:40} {json.dumps(result['dims']):40} depth {result['depth_delays']:7.2f} "
              f"(min {result['depth_delays_min']:7.2f}) messages {result['max_send_actions']}", flush=True)

    start = time.time()
    time_spu_cases(ns.protocol, todo, delays, str(spu_python()), repeats=ns.repeats, on_result=save)
    print(f"{len(todo)} ops in {time.time() - start:.0f} s -> {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

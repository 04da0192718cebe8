"""Measure SPU 0.9.5's compute time per op: wall time with the parties as processes, no delay (root).

The compute term of the spu-* tables (``compute_s``, seconds on the machine named in each run's
``host`` field). Each protocol's parties run as separate processes in netlab namespaces linked
by SPU's brpc transport (``picost/netlab/spu_runs.py``), on unshaped links through a lab without
a delay line (the middle namespace's kernel forwards the packets: no lab process competes for
the CPU); every op is warmed up once and then run ``--repeats`` times, and its time is the
fastest run of the slowest party (other tenants of a shared machine only ever add time). Moving
the op's bytes over the veths (several Gbit/s) and its round trips (tens of microseconds each)
count in this time, so it slightly overstates compute. (Not loopback: its 64 KiB MTU meets
Nagle's algorithm and delayed ACKs in SPU's transport, 40 ms stalls.)

The ops are the series of ``benchmarks/spu_campaign.py`` that the tables use
(``spu_tables.ENTRIES`` and ``OPTIONS``), at up to :data:`SIZES_PER_SERIES` of the campaign's
fitted sizes spread over the op's work (and its held-out size, to check the fit), leaving out
sizes whose in-process warm run took more than :data:`SLOW_S`. ``benchmarks/spu_fit.py`` fits
``compute_s`` per series from these runs; ``benchmarks/spu_tables.py`` writes it.

Appends one JSON line per op to ``benchmarks/results/spu/compute-<protocol>.jsonl`` (ops already
there are skipped: an interrupted run resumes)::

    sudo .venv/bin/python benchmarks/spu_compute.py --protocol SEMI2K
    .venv/bin/python benchmarks/spu_compute.py --protocol CHEETAH --list
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from picost.netlab.spu_runs import NPARTIES, time_spu_cases  # noqa: E402
from picost.spu.bridge import spu_python  # noqa: E402
from spu_depth import append_row, campaign_todo  # noqa: E402

OUT = REPO / "benchmarks" / "results" / "spu"
SIZES_PER_SERIES = 4
SLOW_S = 15.0
"""Sizes whose in-process warm run took longer than this (seconds) are left out: each is run
``1 + repeats`` times here."""
KEY_FIELDS = ("series", "dims")


def host() -> str:
    """What the times were measured on: CPU model and cores."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]
        model = names[0] if names else model
    return f"{model}, {os.cpu_count()} cores"


def work(kind: str, dims: dict) -> int:
    """The size measure sizes are spread over: elements, or multiply-accumulates of a product."""
    from spu_fit import _elements

    if kind == "embedding":
        return dims["tokens"] * dims["vocab"] * dims["width"]
    return _elements(kind, dims)


def _spread(points: list[dict], count: int) -> list[dict]:
    """``count`` of ``points`` spread evenly over their work (smallest and largest included)."""
    points = sorted(points, key=lambda m: work(m["kind"], m["dims"]))
    if len(points) <= count:
        return points
    step = (len(points) - 1) / (count - 1)
    return [points[round(i * step)] for i in range(count)]


def default_series() -> set[str]:
    """The series of the tables' default entries, of the construction options and of the
    ``shared`` weights and ids (what the stock-SPU tables use by default, and ``bumblebee`` and
    ``puma``, whose defaults share the weights and the ids)."""
    from spu_tables import ENTRIES, OPTIONS

    chosen = [("gelu", c) for c in OPTIONS["gelu"][2]] + [("softmax", c) for c in OPTIONS["softmax"][2]]
    chosen += [("weights", "shared"), ("input", "shared")]
    return set(ENTRIES.values()) | {s for name, choice in chosen for s in OPTIONS[name][2][choice][1].values()}


def plan(protocol: str, defaults_only: bool = False) -> list[dict]:
    """The measurements of ``protocol`` (the campaign's, without its byte-counting fields); with
    ``defaults_only`` only :func:`default_series`."""
    import spu_campaign
    from spu_tables import _used_series

    used = default_series() if defaults_only else _used_series()
    warm = {}
    campaign = OUT / f"{protocol.lower()}.jsonl"
    for line in campaign.read_text().splitlines():
        r = json.loads(line)
        warm[json.dumps([r["series"], r["dims"]], sort_keys=True)] = r.get("warm_s") or 0.0
    by_series: dict[str, list[dict]] = {}
    for m in spu_campaign.plan(protocol):
        if m["series"] in used and warm.get(json.dumps([m["series"], m["dims"]], sort_keys=True), 0.0) <= SLOW_S:
            by_series.setdefault(m["series"], []).append(m)
    out = []
    for series, ms in by_series.items():
        chosen = _spread([m for m in ms if not m["heldout"]], SIZES_PER_SERIES) + [m for m in ms if m["heldout"]]
        out += [{k: v for k, v in m.items() if k not in ("protocol", "runs")} for m in chosen]
    return out


def _key(m: dict) -> str:
    return json.dumps([m.get(k) for k in KEY_FIELDS], sort_keys=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--protocol", choices=sorted(NPARTIES), required=True)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per op (the fastest taken)")
    parser.add_argument("--only", help="run only series whose name starts with this")
    parser.add_argument("--defaults-only", action="store_true",
                        help="only the series of the default entries and the gelu/softmax constructions")
    parser.add_argument("--list", action="store_true", help="print the plan and exit")
    ns = parser.parse_args(argv)
    out = OUT / f"compute-{ns.protocol.lower()}.jsonl"
    todo = campaign_todo(plan(ns.protocol, ns.defaults_only), ns, out, _key)
    if todo is None:
        return 0
    run = {"run": f"benchmarks/spu_compute.py --protocol {ns.protocol} --repeats {ns.repeats}"
                  + (" --defaults-only" if ns.defaults_only else ""),
           "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "host": host()}

    def save(result: dict) -> None:
        append_row(out, {**run, **result})
        print(f"{result['series']:40} {json.dumps(result['dims']):40} {result['min_wall_s']:9.4f} s "
              f"(median {result['median_wall_s']:.4f})", flush=True)

    start = time.time()
    time_spu_cases(ns.protocol, todo, [0.0], str(spu_python()), repeats=ns.repeats, on_result=save, delay_line=False)
    print(f"{len(todo)} ops in {time.time() - start:.0f} s -> {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

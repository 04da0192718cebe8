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

At scale (``--at-scale``): the same method at the sizes users ask about (:data:`AT_SCALE`: GPT-2
small / BERT-base at T = 128, the embedding at intermediate and real vocabularies, one
Llama-7B-sized op), one lab per op, each step of an op (compile and warm-up, then each run) under
``--timeout``; an op that does not finish is written as a row with ``timeout_s`` and no time. With ``--placement``
the parties are pinned (core scaling, issue 20): **X** each party on its own core, **Y**
unpinned (the reference runs; written to ``compute-<protocol>.jsonl`` too), **Z** both on core 0;
every placement's row goes to ``scaling-<protocol>.jsonl``. ``--scaling`` takes only the ops of
:data:`SCALING` (at least one per op kind)::

    sudo .venv/bin/python benchmarks/spu_compute.py --protocol CHEETAH --at-scale --repeats 2
    sudo .venv/bin/python benchmarks/spu_compute.py --protocol CHEETAH --at-scale --scaling --placement X
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
SCALING_KEY_FIELDS = ("series", "dims", "placement")

#: Where the two parties run, by placement: per rank the cores it is pinned to (None: unpinned).
PLACEMENTS = {"X": ("0", "1"), "Y": (None, None), "Z": ("0", "0")}

GPT2_T = 128
#: The sizes users ask about: (series, dims); the series' options come from the campaign's plan.
#: GPT-2 small / BERT-base at T = 128 (d 768, 12 heads, d_ff 3072), the lm head and argmax over
#: GPT-2's vocabulary, the embedding as SPU computes it (one_hot(ids) @ wte) at growing
#: vocabularies up to BERT's and GPT-2's, and Llama-7B-sized ops (d 4096, d_ff 11008).
AT_SCALE: tuple[tuple[str, dict], ...] = (
    ("add.secret", {"n": 98304}),
    ("add.weight.server-private", {"n": 98304}),
    ("scale", {"n": 196608}),
    ("truncation", {"n": 393216}),
    ("mul", {"n": 393216}),
    ("layernorm.server-private", {"rows": 128, "cols": 768}),
    ("matmul", {"b": 12, "m": 128, "k": 64, "n": 128}),
    ("matmul", {"b": 12, "m": 128, "k": 128, "n": 64}),
    ("linear.server-private", {"m": 128, "k": 768, "n": 768}),
    ("linear.server-private", {"m": 128, "k": 768, "n": 2304}),
    ("linear.server-private", {"m": 128, "k": 768, "n": 3072}),
    ("linear.server-private", {"m": 128, "k": 3072, "n": 768}),
    ("gelu.stock_tanh", {"n": 393216}),
    ("softmax.stock", {"rows": 1536, "cols": 128}),
    ("argmax", {"rows": 1, "cols": 50257}),
    ("linear.server-private", {"m": 1, "k": 768, "n": 50257}),
    ("gelu.stock_erf", {"n": 393216}),
    ("embedding.client-private.server-private", {"tokens": 128, "vocab": 1024, "width": 768}),
    ("embedding.client-private.server-private", {"tokens": 128, "vocab": 2048, "width": 768}),
    ("embedding.client-private.server-private", {"tokens": 128, "vocab": 4096, "width": 768}),
    ("embedding.client-private.server-private", {"tokens": 128, "vocab": 8192, "width": 768}),
    ("embedding.client-private.server-private", {"tokens": 128, "vocab": 16384, "width": 768}),
    ("embedding.client-private.server-private", {"tokens": 128, "vocab": 30522, "width": 768}),
    ("embedding.client-private.server-private", {"tokens": 128, "vocab": 50257, "width": 768}),
    ("silu", {"n": 128 * 11008}),
    ("linear.server-private", {"m": 128, "k": 4096, "n": 4096}),
)
#: The at-scale ops timed in every placement (core scaling): at least one per op kind (GELU and
#: softmax at a quarter of GPT-2's size: 128 x 768 and 3 heads, CHEETAH's take a minute a run at
#: full size; the unpinned runs of these two are fit points too).
SCALING: tuple[tuple[str, dict], ...] = (
    ("truncation", {"n": 393216}),
    ("mul", {"n": 393216}),
    ("layernorm.server-private", {"rows": 128, "cols": 768}),
    ("matmul", {"b": 12, "m": 128, "k": 64, "n": 128}),
    ("linear.server-private", {"m": 128, "k": 768, "n": 768}),
    ("linear.server-private", {"m": 128, "k": 768, "n": 3072}),
    ("gelu.stock_tanh", {"n": 98304}),
    ("softmax.stock", {"rows": 384, "cols": 128}),
)


def host() -> str:
    """What the times were measured on: CPU model and cores (as ``picost calibrate --engine`` records it)."""
    from picost.netlab.calibrate_machine import host_name

    return host_name()


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


def _scaling_key(m: dict) -> str:
    return json.dumps([m.get(k) for k in SCALING_KEY_FIELDS], sort_keys=True)


def at_scale_plan(protocol: str, scaling: bool = False, placement: str = "Y") -> list[dict]:
    """The at-scale measurements of ``protocol`` (:data:`AT_SCALE`, or :data:`SCALING`), each
    with its series' options as the campaign measures them and ``placement``."""
    import spu_campaign

    base = {}
    for m in spu_campaign.plan(protocol):
        base.setdefault(m["series"], {k: v for k, v in m.items() if k not in ("protocol", "runs", "dims", "heldout")})
    return [{**base[series], "dims": dict(dims), "heldout": False, "at_scale": True, "placement": placement}
            for series, dims in (SCALING if scaling else AT_SCALE)]


def _indices(text: str) -> set[int]:
    """``"0-3,7"`` -> {0, 1, 2, 3, 7}."""
    out: set[int] = set()
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out |= set(range(int(lo), int(hi or lo) + 1))
    return out


def run_at_scale(ns: argparse.Namespace) -> int:
    """Time :func:`at_scale_plan` one op per lab (a timeout ends only that op)."""
    from picost.netlab.lab import NetlabError

    scaling_out = OUT / f"scaling-{ns.protocol.lower()}.jsonl"
    compute_out = OUT / f"compute-{ns.protocol.lower()}.jsonl"
    cases = [m for i, m in enumerate(at_scale_plan(ns.protocol, ns.scaling, ns.placement))
             if (ns.max_work is None or work(m["kind"], m["dims"]) <= ns.max_work)
             and (ns.cases is None or i in _indices(ns.cases))]
    todo = campaign_todo(cases, ns, scaling_out, (lambda m: "") if ns.rerun else _scaling_key)
    if todo is None:
        return 0
    if ns.rerun:  # run again what is there (the fits take each size's fastest run)
        todo = cases
    elif ns.placement == "Y":  # also skip what the reference file has (a run resumed after a crash)
        done = {_key(json.loads(line)) for line in compute_out.read_text().splitlines() if line.strip()}
        todo = [m for m in todo if _key(m) not in done]
    cpus = PLACEMENTS[ns.placement]
    run = {"run": (f"benchmarks/spu_compute.py --protocol {ns.protocol} --at-scale"
                   + (" --scaling" if ns.scaling else "") + f" --placement {ns.placement} --repeats {ns.repeats}"
                   + (" --rerun" if ns.rerun else "")),
           "host": host(), "cpus": list(cpus)}
    for m in todo:
        start = time.time()
        row = {**run, "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               "loadavg_before": [round(x, 2) for x in os.getloadavg()]}
        try:
            results = time_spu_cases(ns.protocol, [m], [0.0], str(spu_python()), repeats=ns.repeats,
                                     timeout_s=ns.timeout, delay_line=False, cpus=cpus)
            result = {**row, **results[0]}
            print(f"{ns.placement} {m['series']:40} {json.dumps(m['dims']):44} {result['min_wall_s']:9.4f} s "
                  f"(walls {result['walls_s'][0]})", flush=True)
        except NetlabError as exc:
            if "within" not in str(exc):
                raise
            result = {**row, **m, "protocol": ns.protocol, "timeout_s": ns.timeout,
                      "note": (f"a step did not finish within {ns.timeout:g} s (the timeout holds for compile and "
                               f"warm-up together, then for each of the {ns.repeats} runs): {exc}")}
            print(f"{ns.placement} {m['series']:40} {json.dumps(m['dims']):44} TIMEOUT after {time.time() - start:.0f} s",
                  flush=True)
        append_row(scaling_out, result)
        if ns.placement == "Y":
            append_row(compute_out, result)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--protocol", choices=sorted(NPARTIES), required=True)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per op (the fastest taken)")
    parser.add_argument("--only", help="run only series whose name starts with this")
    parser.add_argument("--defaults-only", action="store_true",
                        help="only the series of the default entries and the gelu/softmax constructions")
    parser.add_argument("--list", action="store_true", help="print the plan and exit")
    parser.add_argument("--at-scale", action="store_true", help="the at-scale plan (AT_SCALE), one lab per op")
    parser.add_argument("--scaling", action="store_true", help="with --at-scale: only the SCALING ops")
    parser.add_argument("--placement", choices=sorted(PLACEMENTS), default="Y",
                        help="with --at-scale: X each party on its own core, Y unpinned, Z both on core 0")
    parser.add_argument("--timeout", type=float, default=1200.0,
                        help="with --at-scale: seconds a step may take (compile and warm-up, then each run)")
    parser.add_argument("--max-work", type=float,
                        help="with --at-scale: leave out ops whose work (work()) is larger than this")
    parser.add_argument("--rerun", action="store_true",
                        help="with --at-scale: run the plan's ops again, done or not (a quieter time; fits take the fastest)")
    parser.add_argument("--cases", help="with --at-scale: only these plan indices (e.g. 0-16,18)")
    ns = parser.parse_args(argv)
    if ns.at_scale:
        return run_at_scale(ns)
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

"""``picost calibrate --engine spu|crypten``: this machine's per-core speed against the tables'
reference machine, from a short run of representative ops in SPU (SEMI2K) or CrypTen.

Each op runs as the reference campaign ran it (``benchmarks/spu_compute.py``,
``benchmarks/crypten_compute.py``): the parties as processes in a netlab (network namespaces: root
needed), unshaped links, no delay line, one warm-up and ``repeats`` timed runs, the fastest of the
slowest party. Each op's time beside its table's ``compute_s`` at the same size gives the per-core
speed at which the machine model (:mod:`picost.cost.machine`) predicts it on this host (all parties
sharing its cores, as in the reference); the profile's speed is their median. The sizes lie inside
the tables' measured ranges, so the tables are not extrapolated there.
"""

from __future__ import annotations

import os
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from picost.cost.machine import Machine, SpeedPoint, fit_speed
from picost.cost.protocol_table import load_protocol
from picost.errors import UserError

ENGINES = ("spu", "crypten")

#: SPU SEMI2K cases (as ``benchmarks/spu_campaign.py`` writes them), with the spu-semi2k entry
#: that costs each: GPT-2/BERT-base sizes at T = 128 (linear, GELU, softmax, LayerNorm, products).
SPU_CASES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("linear", {"kind": "linear", "weights": "server-private", "series": "linear.server-private",
                "dims": {"m": 128, "k": 768, "n": 768}}),
    ("gelu_tanh", {"kind": "gelu", "construction": "stock_tanh", "series": "gelu.stock_tanh", "dims": {"n": 98304}}),
    ("softmax", {"kind": "softmax", "construction": "stock", "series": "softmax.stock",
                 "dims": {"rows": 1536, "cols": 128}}),
    ("layernorm", {"kind": "layernorm", "weights": "server-private", "series": "layernorm.server-private",
                   "dims": {"rows": 128, "cols": 768}}),
    ("matmul", {"kind": "matmul", "series": "matmul", "dims": {"b": 12, "m": 128, "k": 64, "n": 128}}),
    ("mul", {"kind": "mul", "series": "mul", "dims": {"n": 98304}}),
)
#: CrypTen cases (``crypten_ops.py`` ops over a rows x cols input, as ``benchmarks/crypten_compute.py``
#: runs them) with the crypten entry and its dims: sizes inside the measured range.
CRYPTEN_CASES: tuple[tuple[str, dict[str, Any], dict[str, int]], ...] = (
    ("linear", {"kind": "linear", "op": "linear", "rows": 64, "cols": 512}, {"m": 64, "k": 512, "n": 512}),
    ("gelu", {"kind": "gelu", "op": "gelu", "rows": 128, "cols": 512}, {"n": 65536}),
    ("softmax", {"kind": "softmax", "op": "softmax_row", "rows": 64, "cols": 256}, {"rows": 64, "cols": 256}),
    ("layernorm", {"kind": "layernorm", "op": "layernorm_row", "rows": 64, "cols": 256}, {"rows": 64, "cols": 256}),
    ("mul", {"kind": "mul", "op": "mul", "rows": 128, "cols": 512}, {"n": 65536}),
)


def host_name() -> str:
    """CPU model and core count, as the campaigns record ``host``."""
    cpuinfo = Path("/proc/cpuinfo")
    model = platform.processor() or platform.machine()
    if cpuinfo.is_file():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]
        model = names[0] if names else model
    return f"{model}, {os.cpu_count()} cores"


def _table_point(table: Any, kind: str, dims: dict[str, int], measured_s: float) -> SpeedPoint:
    entry = table.entries[kind]
    table_s = table.values(entry, dims, kind).get("compute_s")
    if table_s is None:
        raise UserError(f"table {table.name} has no compute_s for {kind}: cannot calibrate against it")
    return SpeedPoint(kind, dims, measured_s, table_s, table.scaling_of(entry))


def run_cases(engine: str, repeats: int) -> list[tuple[str, dict[str, int], float]]:
    """``(table kind, dims, fastest wall s)`` of every case of ``engine`` on this machine."""
    from picost.netlab.lab import netlab_unavailable_reason

    reason = netlab_unavailable_reason()
    if reason:
        raise UserError(f"picost calibrate --engine {engine} runs the parties in network namespaces: {reason}",
                        field="--engine")
    if engine == "spu":
        from picost.netlab.spu_runs import time_spu_cases
        from picost.spu.bridge import spu_python

        cases = [{**case, "heldout": False} for _, case in SPU_CASES]
        results = time_spu_cases("SEMI2K", cases, [0.0], str(spu_python()), repeats=repeats, delay_line=False)
        return [(kind, case["dims"], r["min_wall_s"]) for (kind, case), r in zip(SPU_CASES, results)]
    from picost.crypten_engine.bridge import crypten_python
    from picost.netlab.crypten_runs import time_crypten_cases

    cases = [dict(case) for _, case, _ in CRYPTEN_CASES]
    results = time_crypten_cases(cases, [0.0], str(crypten_python()), repeats=repeats, delay_line=False)
    return [(kind, dims, r["min_wall_s"]) for (kind, _, dims), r in zip(CRYPTEN_CASES, results)]


def calibrate_machine(engine: str, repeats: int = 3,
                      runner: Callable[[str, int], list[tuple[str, dict[str, int], float]]] = run_cases) -> Machine:
    """This machine as a :class:`Machine` (all parties on it, its cores, the fitted per-core speed)."""
    if engine not in ENGINES:
        raise UserError(f"unknown engine '{engine}'; choose from {', '.join(ENGINES)} (or leave --engine out: "
                        "picost-2pc's calibration profile)", field="--engine")
    table = load_protocol("spu-semi2k" if engine == "spu" else "crypten")
    timed = runner(engine, repeats)
    points = [_table_point(table, kind, dims, t) for kind, dims, t in timed]
    threads = os.cpu_count() or 1
    speed, speeds = fit_speed(points, threads, table.setting.parties)
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    each = "; ".join(f"{p.kind} {'x'.join(str(v) for v in p.dims.values())}: {p.measured_s:.3g} s measured, "
                     f"{p.table_s:.3g} s in {table.name} ({s:.2f}x)" for p, s in zip(points, speeds))
    return Machine(f"calibrated-{platform.node() or 'host'}",
                   f"{host_name()}, all parties on this host (as measured); for one such machine per party set "
                   "parties_share_host: false and threads_per_party to the cores each party gets",
                   threads, True, round(speed, 3),
                   f"measured: picost calibrate --engine {engine} --repeats {repeats} ({date}; {host_name()}): {each}; "
                   f"per-core speed = median {speed:.3f} (range {min(speeds):.2f}..{max(speeds):.2f})")

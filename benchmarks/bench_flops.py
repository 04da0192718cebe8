"""Speed of `picost flops` on this machine (a report, not a timed test).

(a) Cold start: wall time of ``python -m picost flops gpt2`` in a fresh interpreter, over several
    runs (target: median <= 0.5 s), the bare interpreter start for comparison, and the import-time
    breakdown from ``python -X importtime`` (top modules by cumulative and by own time). Also
    lists any heavy module (torch, pandas, matplotlib, sympy, numpy) that the command imported: it
    must import none of them.
(b) In process: lowering + FLOPs (total and by group) of Llama-2-70B at T = 131072, median over
    many runs (target: < 20 ms).

Run from the repository root::

    python benchmarks/bench_flops.py [--runs 10] [--inproc-runs 200]

Exit code 1 if a target is missed or a heavy module was imported.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COLD_TARGET_S = 0.5
INPROC_TARGET_S = 0.020
HEAVY_MODULES = ("torch", "pandas", "matplotlib", "sympy", "numpy")
CLI_ARGS = ("-m", "picost", "flops", "gpt2")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _wall_times(args: tuple[str, ...], runs: int) -> list[float]:
    """Wall seconds of ``python ARGS`` in fresh interpreters (output discarded)."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, *args], env=_env(), cwd=REPO, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return times


def import_times() -> list[tuple[str, int, int, int]]:
    """(module, own us, cumulative us, nesting depth) of every import of the CLI command."""
    done = subprocess.run([sys.executable, "-X", "importtime", *CLI_ARGS], env=_env(), cwd=REPO,
                          check=True, capture_output=True, text=True)
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, cumulative, name = line[len("import time:"):].split("|")
        depth = (len(name) - len(name.lstrip(" "))) // 2
        rows.append((name.strip(), int(own), int(cumulative), depth))
    return rows


def inproc_times(runs: int) -> list[float]:
    """Seconds to lower Llama-2-70B at T = 131072 and count its FLOPs (total and by group)."""
    sys.path.insert(0, str(REPO))
    from picost.model.flops import count_flops
    from picost.model.load import load_spec

    spec = load_spec("llama2-70b")
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        report = count_flops(spec, 131072)
        report.total, report.by_group()
        times.append(time.perf_counter() - start)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="cold CLI runs")
    parser.add_argument("--inproc-runs", type=int, default=200, help="in-process lowering runs")
    parser.add_argument("--top", type=int, default=12, help="modules shown in the import breakdown")
    opts = parser.parse_args()
    ok = True

    bare = _wall_times(("-c", "pass"), opts.runs)
    cold = _wall_times(CLI_ARGS, opts.runs)
    met = statistics.median(cold) <= COLD_TARGET_S
    ok &= met
    print(f"(a) cold `python {' '.join(CLI_ARGS)}` over {opts.runs} runs: median {statistics.median(cold):.3f} s, "
          f"min {min(cold):.3f} s (target median <= {COLD_TARGET_S} s: {'met' if met else 'MISSED'}); "
          f"bare interpreter: median {statistics.median(bare):.3f} s")
    rows = import_times()
    total_us = sum(own for _, own, _, _ in rows)
    print(f"    imports: {len(rows)} modules, {total_us / 1e3:.0f} ms in total (own times summed)")
    print("    top-level imports by cumulative time:")
    for name, _, cumulative, _ in sorted((r for r in rows if r[3] == 0), key=lambda r: -r[2])[:opts.top]:
        print(f"      {cumulative / 1e3:8.1f} ms  {name}")
    print("    modules by own time:")
    for name, own, _, _ in sorted(rows, key=lambda r: -r[1])[:opts.top]:
        print(f"      {own / 1e3:8.1f} ms  {name}")
    heavy = sorted({name for name, *_ in rows if name.split(".")[0] in HEAVY_MODULES})
    ok &= not heavy
    print(f"    heavy modules imported: {', '.join(heavy) if heavy else 'none'}")

    inproc = inproc_times(opts.inproc_runs)
    met = statistics.median(inproc) < INPROC_TARGET_S
    ok &= met
    print(f"(b) lowering + FLOPs of llama2-70b at T=131072 over {opts.inproc_runs} runs: "
          f"median {statistics.median(inproc) * 1e3:.2f} ms, min {min(inproc) * 1e3:.2f} ms "
          f"(target < {INPROC_TARGET_S * 1e3:.0f} ms: {'met' if met else 'MISSED'})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

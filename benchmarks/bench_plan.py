"""Speed of `picost plan`: the issue's command, a 50 x 50 grid (bandwidth x RTT) of GPT-2 at
T = 128 under three tables, end to end through the CLI (a fresh process each run).

    .venv/bin/python benchmarks/bench_plan.py [--runs N] [--format table|json|csv|md]

Budget (issue 25): under 1 s. Prints every run's wall time, the median, the budget, and the
in-process split (loading the spec and tables, planning: one estimate per table, the grid, the
exact regions) of one run.
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
sys.path.insert(0, str(REPO))

COMMAND = ["plan", "gpt2", "-p", "bumblebee,puma,crypten", "-T", "128"]
BUDGET_S = 1.0


def cli_runs(runs: int, fmt: str) -> list[float]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "80"}
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "picost", *COMMAND, "-f", fmt], capture_output=True, text=True,
                              cwd=REPO, env=env)
        times.append(time.perf_counter() - t)
        if done.returncode != 0:
            raise SystemExit(done.stderr)
    return times


def split() -> dict[str, float]:
    """Seconds of each in-process stage of one plan (imports included in the first)."""
    t0 = time.perf_counter()
    from picost.analysis.plan import DEFAULT_POINTS, parse_axis, plan_deployment, plan_machines
    from picost.cost.table_options import load_tables
    from picost.model.load import load_spec

    spec, tables = load_spec("gpt2"), load_tables(["bumblebee", "puma", "crypten"])
    t1 = time.perf_counter()
    plan = plan_deployment(spec, tables, plan_machines(), parse_axis("10Mbps..10Gbps", "--bandwidth", DEFAULT_POINTS),
                           parse_axis("0.1ms..200ms", "--rtt", DEFAULT_POINTS), 128)
    t2 = time.perf_counter()
    plan.winners()
    t3 = time.perf_counter()
    return {"imports, spec and tables": t1 - t0, "plan (estimates, regions)": t2 - t1, "grid latencies and winners": t3 - t2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--format", default="table", choices=("table", "json", "csv", "md"))
    args = parser.parse_args()
    times = cli_runs(args.runs, args.format)
    print(f"picost {' '.join(COMMAND)} -f {args.format} (50 x 50 grid), {args.runs} cold runs:")
    print("  " + ", ".join(f"{t:.3f} s" for t in times))
    median = statistics.median(times)
    print(f"  median {median:.3f} s; budget {BUDGET_S:.1f} s: {'within' if median <= BUDGET_S else 'OVER'}")
    print(f"  load average {os.getloadavg()[0]:.2f}")
    print("in process, one run:")
    for stage, seconds in split().items():
        print(f"  {stage}: {seconds * 1e3:.0f} ms")


if __name__ == "__main__":
    main()

"""Benchmark: picost's cold CLI against llm-analysis's, paired (issue 24: at most 0.5x).

    .venv/bin/python benchmarks/bench_cold_cli.py [--runs N]

Times, alternating so that both see the same machine, ``picost estimate gpt2 -p bumblebee -n wan -T 128
-f json`` (this repository's .venv) and ``python -m llm_analysis.analysis infer --model_name gpt2
--seq_len 128`` (llm-analysis 0.2.2 in its own environment, ``.venv-llm-analysis``, made here on
first use with pip, as the SPU and CrypTen environments are: never a dependency of picost).
Prints each side's median wall time, their ratio and the budget; exit code 1 over budget.
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
LLM_VENV = REPO / ".venv-llm-analysis"
LLM_ANALYSIS = "llm-analysis==0.2.2"
BUDGET_RATIO = 0.5


def llm_python() -> Path:
    """The llm-analysis environment's python (made and installed on first use)."""
    python = LLM_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(LLM_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", LLM_ANALYSIS], check=True)
    return python


def wall_s(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, cwd=cwd, env=dict(os.environ, COLUMNS="120"))
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    runs = parser.parse_args().runs
    picost = [sys.executable, "-m", "picost", "estimate", "gpt2", "-p", "bumblebee", "-n", "wan", "-T", "128", "-f",
              "json"]
    llm = [str(llm_python()), "-m", "llm_analysis.analysis", "infer", "--model_name", "gpt2", "--seq_len", "128"]
    scratch = REPO / "benchmarks" / "results"  # llm-analysis writes nothing unless asked; run it off the repo root
    wall_s(picost, REPO), wall_s(llm, scratch)  # warm the file cache for both
    ours, theirs = [], []
    for _ in range(runs):
        ours.append(wall_s(picost, REPO))
        theirs.append(wall_s(llm, scratch))
    a, b = statistics.median(ours), statistics.median(theirs)
    ratio = a / b
    print(f"picost estimate gpt2 -p bumblebee -n wan -T 128 -f json: median {a:.3f} s "
          f"(runs {', '.join(f'{t:.3f}' for t in ours)})")
    print(f"llm-analysis infer --model_name gpt2 --seq_len 128: median {b:.3f} s "
          f"(runs {', '.join(f'{t:.3f}' for t in theirs)})")
    print(f"ratio {ratio:.2f}x (budget {BUDGET_RATIO}x): {'within' if ratio <= BUDGET_RATIO else 'OVER BUDGET'}; "
          f"load average {os.getloadavg()[0]:.2f}")
    return 0 if ratio <= BUDGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())

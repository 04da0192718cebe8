"""Speed of `picost estimate`: in-process after the first load, and the cold CLI.

    .venv/bin/python benchmarks/bench_estimate.py [--protocol P] [--runs N]

Targets (issue 3): in-process estimate of GPT-2 after first load <= 10 ms; cold CLI
`picost estimate gpt2 --protocol bumblebee --network wan` median <= 1.0 s. Prints the medians,
and the import-time breakdown of the CLI (``python -X importtime``, in import order).
Uses ``bumblebee`` when shipped, else the first shipped table (says which); if the table leaves
ops of GPT-2 uncosted, every run passes ``--allow-uncosted`` (and says so).
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


def in_process(protocol: str, runs: int) -> tuple[dict[str, float], bool]:
    """Medians in ms, and whether the table leaves ops of GPT-2 uncosted (then runs allow them)."""
    t0 = time.perf_counter()
    from picost import estimate, load_spec

    allow = estimate("gpt2", protocol, "wan", context=128, allow_uncosted=True).totals.uncosted > 0
    first = time.perf_counter() - t0
    spec = load_spec("gpt2")

    def median_ms(fn) -> float:
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return 1e3 * statistics.median(times)

    return {"first call incl. imports (ms)": 1e3 * first,
            "warm, spec object (ms)": median_ms(lambda: estimate(spec, protocol, "wan", context=128,
                                                                  allow_uncosted=allow)),
            "warm, spec by name (ms)": median_ms(lambda: estimate("gpt2", protocol, "wan", context=128,
                                                                  allow_uncosted=allow))}, allow


def cli_command(protocol: str, allow: bool) -> list[str]:
    return ([sys.executable, "-m", "picost", "estimate", "gpt2", "--protocol", protocol, "--network", "wan"]
            + (["--allow-uncosted"] if allow else []))


def cold_cli(protocol: str, runs: int, allow: bool) -> tuple[float, list[float]]:
    env = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="120")
    cmd = cli_command(protocol, allow)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env=env, cwd=REPO)
        times.append(time.perf_counter() - t)
    return statistics.median(times), times


def import_breakdown(protocol: str, allow: bool, min_ms: float = 4.0) -> list[tuple[str, float]]:
    """Cumulative import time (ms) of the modules the CLI imports, to depth 6, those above
    ``min_ms``, in ``-X importtime`` order: a module's own imports come just above it, deeper."""
    env = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="120")
    cmd = cli_command(protocol, allow)
    cmd.insert(1, "-X")
    cmd.insert(2, "importtime")
    err = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env, cwd=REPO).stderr
    out = []
    for line in err.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _self_us, cumulative_us, name = line[len("import time:"):].split("|")
        depth = (len(name) - len(name.lstrip()) - 1) // 2
        ms = float(cumulative_us) / 1e3
        if depth <= 5 and ms >= min_ms:
            out.append(("  " * depth + name.strip(), ms))
    return out


def main() -> None:
    from picost.cost.protocol_table import shipped_protocol_names

    parser = argparse.ArgumentParser()
    names = shipped_protocol_names()
    parser.add_argument("--protocol", default="bumblebee" if "bumblebee" in names else names[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    timings, allow = in_process(args.protocol, max(args.runs, 30))
    print(f"protocol: {args.protocol}{' (leaves ops of GPT-2 uncosted: run with --allow-uncosted)' if allow else ''}"
          f"   python: {sys.version.split()[0]}   cpus: {os.cpu_count()}")
    for label, ms in timings.items():
        print(f"in-process {label:34s} {ms:8.2f}")
    median, times = cold_cli(args.protocol, args.runs, allow)
    print(f"cold CLI median over {args.runs} runs: {median:.3f} s  (runs: {', '.join(f'{t:.3f}' for t in times)})")
    print("import-time breakdown of the CLI (cumulative ms; a module's imports are listed above it, indented):")
    for name, ms in import_breakdown(args.protocol, allow):
        print(f"  {name:28s} {ms:8.1f}")


if __name__ == "__main__":
    main()

"""Speed of a generation estimate (`picost estimate ... --new-tokens N`), in process.

    .venv/bin/python benchmarks/bench_generation.py [--protocol P] [--new-tokens N] [--runs R]

Target (issue 12): GPT-2, T = 128, N = 1024 decode steps under 50 ms after the first load -- the
decode phase is lowered once with the cache length as an array (a closed form in the cache
length), not N lowerings. Prints the median and the number it produced.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--protocol", default="bumblebee")
    ap.add_argument("--new-tokens", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    from picost import estimate, load_spec

    spec = load_spec("gpt2")
    t0 = time.perf_counter()
    estimate(spec, args.protocol, "wan", 128, new_tokens=8)
    first = time.perf_counter() - t0
    times = []
    for _ in range(args.runs):
        t = time.perf_counter()
        gen = estimate(spec, args.protocol, "wan", 128, new_tokens=args.new_tokens)
        times.append(time.perf_counter() - t)
    med = statistics.median(times)
    print(f"first load + N=8: {first * 1e3:.1f} ms")
    print(f"gpt2 T=128 --new-tokens {args.new_tokens} under {args.protocol}: median {med * 1e3:.1f} ms over "
          f"{args.runs} runs (target < 50 ms): {'OK' if med < 0.05 else 'SLOW'}")
    print(f"  ttft {gen.ttft_s:.1f} s, mean per-token {gen.mean_token_s:.2f} s, total {gen.totals()['latency_s']:.1f} s")


if __name__ == "__main__":
    main()

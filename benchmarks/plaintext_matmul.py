"""Measure plaintext float32 matmul throughput (FLOP/s) on this machine, one CPU thread.

Regenerates the ``flops_per_s`` parameter of ``protocols/plaintext.yaml``::

    .venv/bin/python benchmarks/plaintext_matmul.py

Times ``x @ W`` for x 128x768 and W 768x768 (a GPT-2 projection at T = 128), 5 warm-up calls then
200 timed calls, and prints the median over 5 repetitions of 2*m*k*n / seconds per call.
"""

from __future__ import annotations

import statistics
import time


def main() -> None:
    import torch

    torch.set_num_threads(1)
    m, k, n = 128, 768, 768
    x, w = torch.randn(m, k), torch.randn(k, n)
    for _ in range(5):
        x @ w
    rates = []
    for _ in range(5):
        calls = 200
        start = time.perf_counter()
        for _ in range(calls):
            x @ w
        rates.append(2 * m * k * n * calls / (time.perf_counter() - start))
    print(f"median {statistics.median(rates):.4g} FLOP/s (1 thread, float32, {m}x{k} @ {k}x{n})")


if __name__ == "__main__":
    main()

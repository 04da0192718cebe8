"""Benchmark: a vectorized sweep of 10,000 points must take <= 2 s (picost issue 5).

Run from the repository root:  python benchmarks/bench_sweep.py
The one-time import of sympy and numpy is timed apart; each case is then timed end to end
through the library (load spec and table, lower once with a symbolic T, sum per class,
lambdify, evaluate, latency per network). Exit code 1 if any case, plus the imports, exceeds
the budget.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

BUDGET_S = 2.0
CASES = [
    # (spec, protocols, networks, contexts)
    ("gpt2", ["crypten"], ["wan"], list(range(2, 10_002))),
    ("gpt2", ["crypten"], ["lan", "wan"], list(range(2, 5_002))),
    ("llama3-8b", ["crypten"], ["lan", "wan"], list(range(2, 5_002))),
    ("llama3-8b", ["bumblebee", "puma"], ["wan"], list(range(1, 5_001))),
]


def main() -> int:
    start = time.perf_counter()
    import numpy  # noqa: F401
    import sympy  # noqa: F401

    imports = time.perf_counter() - start
    print(f"imports of sympy and numpy: {imports:.3f} s")
    from picost.cost.network import get_network
    from picost.cost.protocol_table import load_protocol
    from picost.model.load import load_spec
    from picost.analysis.sweep import sweep

    worst = 0.0
    for spec_name, protocols, networks, contexts in CASES:
        start = time.perf_counter()
        result = sweep(load_spec(spec_name), contexts, [load_protocol(p) for p in protocols],
                       [get_network(n) for n in networks])
        elapsed = time.perf_counter() - start
        worst = max(worst, elapsed)
        print(f"{spec_name:>10} x {','.join(protocols)} x {','.join(networks):>7}: {len(result):>6} points "
              f"in {elapsed:.3f} s")
    total = worst + imports
    print(f"worst case {worst:.3f} s, with the imports {total:.3f} s (budget {BUDGET_S} s): "
          f"{'OK' if total <= BUDGET_S else 'TOO SLOW'}")
    return 0 if total <= BUDGET_S else 1


if __name__ == "__main__":
    sys.exit(main())

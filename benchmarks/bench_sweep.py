"""Benchmark: a vectorized sweep of 10,000 points must take <= 2 s (picost issue 5).

Run from the repository root:  python benchmarks/bench_sweep.py
``--every-table [SPEC]``: instead, 10,000 contexts of SPEC (default gpt2) over ``wan`` under every
shipped table at its defaults and with each other value of each of its options, one at a time
(uncosted rows allowed: a table that cannot cost an op still sweeps the rest); budget 1 s each
(issue 24), the imports apart.
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


EVERY_TABLE_BUDGET_S = 1.0


def every_table(spec_name: str) -> int:
    """The ``--every-table`` run (see the module doc); exit code 1 if any case is over budget."""
    import numpy  # noqa: F401
    import sympy  # noqa: F401

    from picost.analysis.sweep import sweep
    from picost.cost.network import get_network
    from picost.cost.protocol_table import load_protocol, shipped_protocol_names
    from picost.model.load import load_spec

    spec, wan, contexts = load_spec(spec_name), get_network("wan"), list(range(1, 10_001))
    start = time.perf_counter()  # one-time costs of the process (sympy's caches, first lambdify), timed apart
    sweep(load_spec("tiny"), contexts[:100], [load_protocol("spu-cheetah")], [wan], allow_uncosted=True)
    print(f"{'warm-up (tiny x spu-cheetah, 100 contexts)':>40}: {time.perf_counter() - start:.3f} s")
    over = []
    for name in shipped_protocol_names():
        base = load_protocol(name)
        variants = [{}] + [{opt: value} for opt, o in base.options.items() for value in o.choices if value != o.default]
        for chosen in variants:
            table = base.with_options(chosen)
            start = time.perf_counter()
            sweep(spec, contexts, [table], [wan], allow_uncosted=True)
            elapsed = time.perf_counter() - start
            flag = "" if elapsed <= EVERY_TABLE_BUDGET_S else "  OVER BUDGET"
            print(f"{table.label:>40}: {elapsed:.3f} s{flag}", flush=True)
            if flag:
                over.append(table.label)
    print(f"{len(over)} over the {EVERY_TABLE_BUDGET_S} s budget: {', '.join(over) or 'none'}")
    return 1 if over else 0


def main() -> int:
    if sys.argv[1:2] == ["--every-table"]:
        return every_table(sys.argv[2] if len(sys.argv) > 2 else "gpt2")
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

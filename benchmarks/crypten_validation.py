"""The CrypTen validation matrix: whole tiny models in CrypTen 0.4.1 vs picost's crypten table.

Runs ``picost validate --against crypten`` (:func:`picost.crypten_engine.validate.check`) for 4
architectures (tiny: GELU-tanh + LayerNorm; tiny-relu; tiny-smonly-fused: Softmax-only, FFN fused,
learned temperature; tiny-llama: SwiGLU, RMSNorm, RoPE, GQA) x 3 contexts x 2 holdings (the model
encrypted: ``weights=shared norm_gain=shared``; left unencrypted: both ``public``) and writes
``benchmarks/results/crypten/validation.jsonl`` (one check per line: per-op counts, per-class
measured and estimated bytes and rounds, logits error). ``tests/test_crypten_engine.py``
re-estimates every committed run with today's crypten table (no CrypTen needed) and requires it
to stay exact. Run with picost's interpreter (CrypTen in .venv-crypten, or PICOST_CRYPTEN_PYTHON)::

    python benchmarks/crypten_validation.py
    python benchmarks/crypten_validation.py --spec tiny --context 4     # a part of it (printed, not written)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from picost.crypten_engine import validate as crypten_validate  # noqa: E402
from picost.model.load import load_spec  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "crypten" / "validation.jsonl"
SPECS = ("tiny", "tiny-relu", "tiny-smonly-fused", "tiny-llama")
CONTEXTS = (4, 8, 16)
HOLDINGS = {"shared": {"weights": "shared", "norm_gain": "shared"},
            "public": {"weights": "public", "norm_gain": "public"}}


def run(specs: tuple[str, ...], contexts: tuple[int, ...], holdings: tuple[str, ...]
        ) -> list[crypten_validate.CryptenCheck]:
    checks = []
    for holding in holdings:
        for name in specs:
            for context in contexts:
                check = crypten_validate.check(load_spec(name), context, HOLDINGS[holding])
                print(f"{name} T={context} {holding}: {check.measured_total['comm_bytes']} B "
                      f"{check.measured_total['rounds']} rounds (estimate {check.estimated_total['comm_bytes']:.0f} B "
                      f"{check.estimated_total['rounds']:.0f}) {'ok' if check.ok else 'MISS'}", flush=True)
                checks.append(check)
    return checks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spec", nargs="+", default=SPECS)
    parser.add_argument("--context", nargs="+", type=int, default=CONTEXTS)
    parser.add_argument("--holding", nargs="+", choices=tuple(HOLDINGS), default=tuple(HOLDINGS))
    ns = parser.parse_args()
    checks = run(tuple(ns.spec), tuple(ns.context), tuple(ns.holding))
    if (tuple(ns.spec), tuple(ns.context), tuple(ns.holding)) == (SPECS, CONTEXTS, tuple(HOLDINGS)):
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(crypten_validate.dumps(checks))
        print(f"wrote {RESULTS.relative_to(REPO)}")
    if not all(c.ok for c in checks):
        raise SystemExit(1)


if __name__ == "__main__":
    main()

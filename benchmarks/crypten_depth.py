"""Measure CrypTen 0.4.1's depth: wall time over injected one-way delay, against its counters (root).

The two parties run as separate processes in netlab namespaces (``picost/netlab/crypten_runs.py``,
CrypTen's distributed communicator over gloo); every op runs ``--repeats`` times at each delay and
the slope of the slower party's wall time over the delay is its depth in one-way delays
(``picost/netlab/depth.py``), next to CrypTen's ``rounds`` counter. Writes
``benchmarks/results/crypten_depth.jsonl``. The CrypTen interpreter is ``$PICOST_CRYPTEN_PYTHON``
or ``.venv-crypten/bin/python`` (``bash scripts/setup-crypten.sh``)::

    sudo .venv/bin/python benchmarks/crypten_depth.py mul exp relu --shape 4x128
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from picost.netlab.crypten_runs import time_crypten_cases  # noqa: E402
from picost.netlab.lab import netlab_unavailable_reason  # noqa: E402

OUT = REPO / "benchmarks" / "results" / "crypten_depth.jsonl"


def crypten_python() -> str:
    path = Path(os.environ.get("PICOST_CRYPTEN_PYTHON", REPO / ".venv-crypten" / "bin" / "python"))
    if not path.exists():
        raise SystemExit(f"CrypTen interpreter {path} missing: bash scripts/setup-crypten.sh or set PICOST_CRYPTEN_PYTHON")
    return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("ops", nargs="+", help="op names of benchmarks/crypten_ops.py")
    parser.add_argument("--shape", default="4x128")
    parser.add_argument("--delays", default="0,0.02,0.04")
    parser.add_argument("--repeats", type=int, default=3)
    ns = parser.parse_args(argv)
    reason = netlab_unavailable_reason()
    if reason:
        raise SystemExit(reason)
    rows, cols = (int(v) for v in ns.shape.lower().split("x"))
    run = {"run": f"benchmarks/crypten_depth.py {' '.join(ns.ops)} --shape {ns.shape} --delays {ns.delays} "
                  f"--repeats {ns.repeats}", "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}

    def save(result: dict) -> None:
        with OUT.open("a") as f:
            f.write(json.dumps({**run, **result, "loadavg": [round(x, 2) for x in os.getloadavg()]}) + "\n")
        print(f"{result['op']:12} {rows}x{cols}  depth {result['depth_delays']:7.2f} one-way delays "
              f"(min {result['depth_delays_min']:.2f}); CrypTen rounds {result['max_send_actions']}", flush=True)

    time_crypten_cases([{"op": op, "rows": rows, "cols": cols} for op in ns.ops],
                   [float(d) for d in ns.delays.split(",")], crypten_python(), repeats=ns.repeats, on_result=save)
    return 0


if __name__ == "__main__":
    sys.exit(main())

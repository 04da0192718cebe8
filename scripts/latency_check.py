"""Modeled latency vs measured wall time on netlab links (the check of docs/latency-model-check.md).

Usage (root), picost's own engine: ``python scripts/latency_check.py (--calibration PROFILE.yaml |
--fresh-calibration OUT.yaml) [RATE_MBPS/RTT_MS ...] [--no-model] [--repeats N] [--context T]``;
default settings ``1000/1 100/20 20/80``. ``--fresh-calibration`` first runs ``picost calibrate``
(all kinds) and writes the profile. Prints a markdown table (one row per op and setting, and the
tiny model) and the load average; exit code 1 if any figure is outside ±20 %.

Engines picost did not write: ``python scripts/latency_check.py --engine ENGINE [SETTINGS ...]
[--spec small-d128] [--context 32] [--repeats 3] [--compute-only]`` with ENGINE one of spu-semi2k, spu-aby3,
spu-cheetah, crypten; default settings ``1000/1 100/20 100/80``; the whole model under the
engine against ``picost estimate`` with the engine's table (``picost/netlab/engine_latency.py``);
each point is appended to ``benchmarks/results/latency-engines.jsonl``; exit code 1 if any is
outside ±25 %. ``--report`` prints every recorded point against today's tables (no root, no
engine): the table of docs/latency-model-check.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from picost.cost.calibration import load_profile  # noqa: E402
from picost.netlab.latency_check import Setting, check_setting, markdown  # noqa: E402


ENGINES = ("picost-2pc", "spu-semi2k", "spu-aby3", "spu-cheetah", "crypten")


def engine_main(args: argparse.Namespace) -> int:
    """The check of an engine picost did not write (see the module doc)."""
    from datetime import datetime, timezone

    from picost.model.load import load_spec
    from picost.netlab.engine_latency import RECORDS, EngineRun, check

    run = EngineRun(args.engine, load_spec(args.spec), args.context or 32)
    if args.compute_only:
        from picost.netlab.engine_latency import compute_check

        from picost.netlab.engine_latency import WHOLE_MODEL_COMPUTE

        modeled, measurement = compute_check(run, args.repeats)
        measured = measurement["min_wall_s"]
        print(f"{args.engine} {args.spec} T={run.context}, no delay, unshaped: table compute {modeled:.3f} s, "
              f"measured {measured:.3f} s ({100 * (modeled / measured - 1):+.1f} %)")
        record = {"engine": args.engine, "spec": args.spec, "context": run.context,
                  "modeled_compute_s": modeled,
                  "measured": {k: measurement[k] for k in ("walls_s", "min_wall_s", "median_wall_s")},
                  "run": f"scripts/latency_check.py --engine {args.engine} --spec {args.spec} --context {run.context} "
                         f"--repeats {args.repeats} --compute-only",
                  "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                  "loadavg": [round(x, 2) for x in os.getloadavg()]}
        with WHOLE_MODEL_COMPUTE.open("a") as f:
            f.write(json.dumps(record) + "\n")
        return 0
    comparisons = []
    for text in args.settings or ["1000/1", "100/20", "100/80"]:
        rate_mbps, rtt_ms = (float(x) for x in text.split("/"))
        comparison, record = check(run, Setting(rate_mbps * 1e6, rtt_ms / 1e3), repeats=args.repeats)
        comparisons.append(comparison)
        record.update({"run": f"scripts/latency_check.py --engine {args.engine} {text} --spec {args.spec} "
                              f"--context {run.context} --repeats {args.repeats}",
                       "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                       "loadavg": [round(x, 2) for x in os.getloadavg()]})
        with RECORDS.open("a") as f:
            f.write(json.dumps(record) + "\n")
        print(markdown([comparison]), file=sys.stderr, flush=True)
    print(markdown(comparisons))
    return 0 if all(c.ok for c in comparisons) else 1


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("settings", nargs="*")
    parser.add_argument("--engine", choices=ENGINES, default="picost-2pc")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--calibration")
    source.add_argument("--fresh-calibration")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--context", type=int, default=None)
    parser.add_argument("--spec", default="small-d128", help="(independent engines) the model to run")
    parser.add_argument("--no-model", action="store_true")
    parser.add_argument("--compute-only", action="store_true",
                        help="(independent engines) the whole model unshaped with no delay line: its compute "
                             "against the table's compute_s summed")
    parser.add_argument("--report", action="store_true",
                        help="print the recorded independent-engine points against today's model (markdown) and exit")
    args = parser.parse_args(argv)
    if args.report:
        from picost.netlab.engine_latency import latest_records, report

        print(report(latest_records()))
        return 0
    if args.engine != "picost-2pc":
        args.repeats = args.repeats or 3
        return engine_main(args)
    if not (args.calibration or args.fresh_calibration):
        parser.error("picost-2pc needs --calibration or --fresh-calibration")
    args.settings = args.settings or ["1000/1", "100/20", "20/80"]
    args.repeats, args.context = args.repeats or 2, args.context or 8
    if args.fresh_calibration:
        from picost.mpc.measure_compute import calibrate

        Path(args.fresh_calibration).write_text(calibrate(repeats=args.repeats).to_yaml())
    profile = load_profile(args.calibration or args.fresh_calibration)
    comparisons = []
    for text in args.settings:
        rate_mbps, rtt_ms = (float(x) for x in text.split("/"))
        comparisons += check_setting(Setting(rate_mbps * 1e6, rtt_ms / 1e3), profile, repeats=args.repeats,
                                     model=None if args.no_model else "tiny", context=args.context)
        print(markdown(comparisons[-1:]), file=sys.stderr, flush=True)
    print(markdown(comparisons))
    print(f"\nload average after the run (1/5/15 min): {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0 if all(c.ok for c in comparisons) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Modeled latency vs measured wall time on netlab links (the check of docs/latency-model-check.md).

Usage (root): ``python scripts/latency_check.py (--calibration PROFILE.yaml | --fresh-calibration
OUT.yaml) [RATE_MBPS/RTT_MS ...] [--no-model] [--repeats N] [--context T]``; default settings
``1000/1 100/20 20/80``. ``--fresh-calibration`` first runs ``picost calibrate`` (all kinds) and
writes the profile. Prints a markdown table (one row per op and setting, and the tiny model) and
the load average; exit code 1 if any figure is outside ±20 %.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from picost.cost.calibration import load_profile  # noqa: E402
from picost.netlab.latency_check import Setting, check_setting, markdown  # noqa: E402


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("settings", nargs="*", default=["1000/1", "100/20", "20/80"])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--calibration")
    source.add_argument("--fresh-calibration")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--context", type=int, default=8)
    parser.add_argument("--no-model", action="store_true")
    args = parser.parse_args(argv)
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

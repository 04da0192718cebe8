"""Measure the netlab harness's own accuracy: configured vs measured RTT and goodput.

Usage (root): ``python scripts/netlab_bench.py [RATE_MBPS/ONE_WAY_MS ...]``, e.g.
``python scripts/netlab_bench.py 1000/1 100/20 20/80``. Prints one row per setting and exits
non-zero if any row is outside the tolerances stated in :mod:`picost.netlab.verify`.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from picost.netlab.lab import LinkShape, Netlab, cleanup_stale  # noqa: E402
from picost.netlab.verify import base_rtt_s, check_link  # noqa: E402

DEFAULT_SETTINGS = ("1000/1", "100/20", "20/80")


def main(settings: list[str]) -> int:
    cleanup_stale()
    floor_s = base_rtt_s()
    print(f"base RTT (unshaped, no delay): {floor_s * 1e3:.3f} ms")
    print("| rate Mbit/s | one-way ms | RTT expected ms | RTT measured ms | goodput expected Mbit/s"
          " | goodput measured Mbit/s | ok |")
    print("|---|---|---|---|---|---|---|")
    all_ok = True
    for setting in settings:
        rate_mbps, delay_ms = (float(x) for x in setting.split("/"))
        with Netlab.uniform(LinkShape(rate_mbps * 1e6, delay_ms / 1e3), ("client", "server")) as lab:
            check = check_link(lab, "client", "server", floor_s)
        all_ok &= check.ok
        print(f"| {rate_mbps:g} | {delay_ms:g} | {check.rtt_expected_s * 1e3:.3f} | "
              f"{check.rtt_measured_s * 1e3:.3f} | {check.goodput_expected_bps / 1e6:.2f} | "
              f"{check.goodput_measured_bps / 1e6:.2f} | {'yes' if check.ok else 'NO'} |")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or list(DEFAULT_SETTINGS)))

"""CrypTen's two parties as separate processes in a netlab, timed at several one-way delays.

Each party runs ``benchmarks/crypten_ops.py depth-party`` under the CrypTen interpreter in its
own namespace; CrypTen's distributed communicator (torch.distributed, gloo) is set up from the
environment its multiprocess launcher would set, with rank 0's lab address as the rendezvous.
The timing is :func:`picost.netlab.party_runs.time_cases`'s; ``max_send_actions`` is CrypTen's
``rounds`` counter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from picost.netlab.lab import Netlab
from picost.netlab.party_runs import STEP_TIMEOUT_S, time_cases

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "crypten_ops.py"
PARTIES = ("alice", "bob")
RENDEZVOUS_PORT = 29500


def time_crypten_cases(cases: list[dict], delays_s: Sequence[float], crypten_python: str, repeats: int = 3,
                       warmup: int = 1, timeout_s: float = STEP_TIMEOUT_S, on_result=None,
                       rate_bps: float | None = None, delay_line: bool = True,
                       cpus: Sequence[str | None] | None = None) -> list[dict]:
    """Time CrypTen cases -- ops ``{"op": name (crypten_ops.py), "rows", "cols"}`` or whole models
    (a request of ``runner.py model``, which has an ``arch``) -- at every delay on links of
    ``rate_bps``, one dict each (:func:`~picost.netlab.party_runs.time_cases`). ``cpus``: per rank,
    the cores that party is pinned to (``taskset -c``; ``None``: unpinned)."""
    def argv(lab: Netlab, rank: int) -> list[str]:
        env = {"RANK": rank, "WORLD_SIZE": len(PARTIES), "DISTRIBUTED_BACKEND": "gloo",
               "RENDEZVOUS": f"tcp://{lab.address(PARTIES[0])}:{RENDEZVOUS_PORT}"}
        pin = cpus[rank] if cpus else None
        return ((["taskset", "-c", pin] if pin else [])
                + ["env", *(f"{k}={v}" for k, v in env.items()), crypten_python, str(SCRIPT), "depth-party"])

    request = {"cases": cases, "warmup": warmup}
    return time_cases(PARTIES, argv, {}, request, cases, delays_s, repeats, timeout_s, {"engine": "crypten"},
                      on_result, rate_bps, delay_line)

"""SPU's parties as separate processes in a netlab, timed at several one-way delays.

Each party runs ``picost/spu/multiproc.py`` under the SPU interpreter in its own namespace and
links to the others with SPU's brpc transport at their lab addresses; the timing is
:func:`picost.netlab.party_runs.time_cases`'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from picost.netlab.lab import Netlab
from picost.netlab.party_runs import time_cases

MULTIPROC = Path(__file__).resolve().parents[1] / "spu" / "multiproc.py"
PARTIES = ("alice", "bob", "carol")  # by rank
NPARTIES = {"SEMI2K": 2, "CHEETAH": 2, "ABY3": 3}
BASE_PORT = 20000
"""Case i listens on BASE_PORT + i: below the ephemeral range (32768-60999), where a party's own
outgoing connections could hold the port."""
STEP_TIMEOUT_S = 3600.0


def time_spu_cases(protocol: str, cases: list[dict], delays_s: Sequence[float], spu_python: str,
                   repeats: int = 3, warmup: int = 1, timeout_s: float = STEP_TIMEOUT_S,
                   on_result=None, rate_bps: float | None = None,
                   delay_line: bool = True, cpus: Sequence[str | None] | None = None) -> list[dict]:
    """Time every case of ``cases`` (measurements as ``runner.py ops`` takes them, or whole-model
    requests of ``runner.py model``, without the protocol) at every delay on links of
    ``rate_bps`` (:func:`~picost.netlab.party_runs.time_cases`); ``on_result(dict)`` is called as
    each case finishes (to save incrementally). ``cpus``: per rank, the cores that party is pinned
    to (``"0"``, ``"0,1"``; ``None``: unpinned), set inside the party process
    (``multiproc.py --cpus``)."""
    parties = PARTIES[: NPARTIES[protocol]]

    def argv(lab: Netlab, rank: int) -> list[str]:
        addresses = ",".join(lab.address(p) for p in parties)
        pin = cpus[rank] if cpus else None
        return ([spu_python, str(MULTIPROC), "--rank", str(rank), "--addresses", addresses, "--port", str(BASE_PORT)]
                + (["--cpus", pin] if pin else []))

    request = {"protocol": protocol, "cases": cases, "warmup": warmup}
    return time_cases(parties, argv, {"JAX_PLATFORMS": "cpu"}, request, cases, delays_s, repeats, timeout_s,
                      {"protocol": protocol}, on_result, rate_bps, delay_line)

"""Sanity check of published figures: are a reported communication and latency consistent with a
network?

Bytes alone put a floor under latency: moving ``comm_bytes`` over a link of ``bandwidth`` bytes
per second takes at least ``comm_bytes / bandwidth`` seconds if the bytes share the link
(picost's latency model charges total bytes against the bandwidth), and at least half that if
both directions run at full rate at the same time (full duplex, perfectly balanced traffic).
Known rounds add ``rounds x round_delay_s``. A reported latency below the full-duplex floor is
impossible on that network; between the two floors it needs perfectly balanced duplex traffic.
"""

from __future__ import annotations

from dataclasses import dataclass

from picost.errors import UserError
from picost.model import limits


MIN_LATENCY_S = 1e-6
"""The shortest reported latency checked (1 us): below it the ratios overflow to infinity."""


@dataclass(frozen=True)
class CheckResult:
    """The arithmetic of a check. Bytes, seconds, bytes per second."""

    comm_bytes: float
    latency_s: float
    bandwidth_bytes_per_s: float
    round_delay_s: float | None
    rounds: int | None

    @property
    def implied_bandwidth_bytes_per_s(self) -> float:
        """The bandwidth the figures need if the whole latency were spent moving bytes."""
        return self.comm_bytes / self.latency_s

    @property
    def transfer_floor_s(self) -> float:
        """Seconds to move all bytes over the shared link (picost's latency model)."""
        return self.comm_bytes / self.bandwidth_bytes_per_s

    @property
    def duplex_floor_s(self) -> float:
        """Seconds to move all bytes with both directions at full rate, perfectly balanced."""
        return self.transfer_floor_s / 2

    @property
    def rounds_floor_s(self) -> float:
        """Seconds the known rounds add (0 when rounds or the round delay are unknown)."""
        if self.rounds is None or self.round_delay_s is None:
            return 0.0
        return self.rounds * self.round_delay_s

    @property
    def latency_floor_s(self) -> float:
        """The lower bound on latency: transfer floor plus known rounds."""
        return self.transfer_floor_s + self.rounds_floor_s

    @property
    def transfer_share(self) -> float:
        """Fraction of the reported latency the transfer floor accounts for."""
        return self.transfer_floor_s / self.latency_s

    @property
    def round_budget(self) -> float | None:
        """How many round delays fit in the latency left after the transfer (compute taken as 0)."""
        if self.round_delay_s is None or self.round_delay_s <= 0:
            return None
        return max(self.latency_s - self.transfer_floor_s, 0.0) / self.round_delay_s

    @property
    def verdict(self) -> str:
        """``consistent``, ``needs-duplex`` or ``impossible`` (see the module docstring)."""
        if self.latency_s >= self.latency_floor_s:
            return "consistent"
        if self.latency_s >= self.duplex_floor_s + self.rounds_floor_s:
            return "needs-duplex"
        return "impossible"


def check_published(comm_bytes: float, latency_s: float, bandwidth_bytes_per_s: float,
                    round_delay_s: float | None = None, rounds: int | None = None) -> CheckResult:
    """Check a reported ``comm_bytes`` and ``latency_s`` against a link (see module docstring)."""
    for name, value in (("comm", comm_bytes), ("latency", latency_s), ("bandwidth", bandwidth_bytes_per_s)):
        if not value > 0:
            raise UserError(f"{name} must be positive (got {value})", field=f"--{name}")
    if rounds is not None:
        rounds = limits.whole(rounds, "--rounds", 0, limits.MAX_ROUNDS)
    if not latency_s >= MIN_LATENCY_S:
        raise UserError(f"latency must be at least {MIN_LATENCY_S:g} s (got {latency_s:g} s): a shorter one makes "
                        "every ratio infinite", field="--latency")
    return CheckResult(float(comm_bytes), float(latency_s), float(bandwidth_bytes_per_s),
                       None if round_delay_s is None else float(round_delay_s), rounds)

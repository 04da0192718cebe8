"""Deployment planning: which protocol is fastest on which network and machine, and what a
latency target needs.

For a fixed model, context and table, the estimate's latency (``docs/latency-model.md``,
:func:`picost.analysis.estimate.row_latency_s`) is affine in ``1 / bandwidth`` and the RTT::

    latency_s = compute_s + bits / bandwidth_bps + rtt_factor * rtt_s
    bits       = comm_bytes * 8 / transfer_links       (bits through one link)
    rtt_factor = rounds * delays_per_round / 2         (one-way delays, each RTT / 2)

:func:`latency_form` reads the three coefficients off the estimate's own model (its value at unit
networks) from the totals of one estimate per protocol and machine, so a grid of any size costs
one estimate per (protocol, threads); every grid point is numpy arithmetic. Where each protocol
wins is a convex polygon in (1 / bandwidth, RTT) (:mod:`picost.analysis.plan_regions`: exact
boundaries, not read off the grid), and the least bandwidth meeting a target at an RTT is
``bits / (target - compute_s - rtt_factor * rtt)`` when the denominator is positive; otherwise
the target is out of reach at any bandwidth, stopped by compute alone or by compute plus the
round delays.

With ``new_tokens`` the objective is a generation's time to first token (the prefill), its mean
per-token latency (the decode steps' mean) or its total (prefill plus every step): each is a sum
of per-row latencies, hence the same affine form of summed totals.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from picost.analysis.plan_regions import Affine, Boundary, Region, winner_regions
from picost.cost.network import Network, parse_bandwidth, parse_duration
from picost.errors import UserError

if TYPE_CHECKING:
    import numpy as np

    from picost.cost.machine import Machine
    from picost.cost.protocol_table import ProtocolTable
    from picost.model.spec import ModelSpec

OBJECTIVES = ("ttft", "per-token", "total")
"""What a generation is planned by: time to first token, mean per-token latency, or the total."""
DEFAULT_BANDWIDTH = "10Mbps..10Gbps"
DEFAULT_RTT = "0.1ms..200ms"
DEFAULT_POINTS = 50
MAX_AXIS_POINTS = 1000
MAX_GRID_POINTS = 1_000_000
"""Grid points (bandwidths x RTTs x thread counts): the latency array is this x protocols floats."""
FLOOR_COMPUTE = "compute"
FLOOR_ROUNDS = "rounds x RTT"


@dataclass(frozen=True)
class LatencyForm:
    """One protocol's latency as ``compute_s + bits / bandwidth_bps + rtt_factor * rtt_s``
    (seconds; ``bits``: bits through one link; ``rtt_factor``: one-way delays over 2, i.e.
    seconds of latency per second of RTT)."""

    protocol: str
    compute_s: float
    bits: float
    rtt_factor: float

    def latency_s(self, bandwidth_bps: Any, rtt_s: Any) -> Any:
        """Seconds at a bandwidth (bit/s) and RTT (s); numpy arrays broadcast."""
        return self.compute_s + self.bits / bandwidth_bps + self.rtt_factor * rtt_s

    @property
    def affine(self) -> Affine:
        """The form in ``x = 1 / bandwidth_bps``, ``y = rtt_s``."""
        return Affine(self.compute_s, self.bits, self.rtt_factor)


def latency_form(protocol: str, totals: Mapping[str, Any], table: "ProtocolTable") -> LatencyForm:
    """The affine latency of ``totals`` (``compute_s``, ``comm_bytes``, ``rounds``; ``None`` or
    missing = 0) under ``table``: the estimate's model (:func:`~picost.analysis.estimate.row_latency_s`)
    evaluated with one term at a time, at unit networks (bandwidth 1 bit/s; RTT 1 s)."""
    from types import SimpleNamespace

    from picost.analysis.estimate import row_latency_s

    def model(compute_s: float = 0.0, comm_bytes: float = 0.0, rounds: float = 0.0, bandwidth: float = float("inf"),
              rtt: float = 0.0) -> float:
        cost = SimpleNamespace(compute_s=compute_s, comm_bytes=comm_bytes, rounds=rounds)
        return float(row_latency_s(cost, Network("unit", bandwidth, rtt), table))

    return LatencyForm(protocol, model(compute_s=float(totals.get("compute_s") or 0)),
                       model(comm_bytes=float(totals.get("comm_bytes") or 0), bandwidth=1.0),
                       model(rounds=float(totals.get("rounds") or 0), rtt=1.0))


@dataclass(frozen=True)
class TargetAnswer:
    """What protocol ``protocol`` needs to meet the target at ``rtt_s`` on machine number
    ``machine``: the least bandwidth (bit/s; 0 when bandwidth does not matter), or ``None`` when
    no bandwidth suffices, with the ``floor`` that stops it (``compute``: compute alone exceeds
    the target; ``rounds x RTT``: compute plus the round delays do) and that floor's seconds."""

    protocol: int
    machine: int
    rtt_s: float
    needed_bandwidth_bps: float | None
    floor: str | None
    floor_s: float | None


@dataclass(frozen=True)
class LeastThreads:
    """The fewest cores per party (of the plan's thread counts) with which protocol ``protocol``
    meets the target at ``rtt_s`` within the bandwidth range, and the bandwidth it then needs;
    ``threads`` ``None``: with none of them."""

    protocol: int
    rtt_s: float
    threads: float | None
    needed_bandwidth_bps: float | None


@dataclass(frozen=True)
class Plan:
    """A deployment plan: per machine (thread count) and protocol, the latency form; the grid;
    the exact winner regions and boundaries per machine; with a target, the answers.

    ``latency_s()`` is shaped (machines, protocols, bandwidths, RTTs)."""

    spec_name: str
    context: int
    objective: str
    new_tokens: int | None
    protocols: tuple[str, ...]
    machines: tuple["Machine", ...]
    forms: tuple[tuple[LatencyForm, ...], ...]
    bandwidth_bps: "np.ndarray"
    rtt_s: "np.ndarray"
    regions: tuple[tuple[Region, ...], ...]
    boundaries: tuple[tuple[Boundary, ...], ...]
    target_s: float | None = None
    targets: tuple[TargetAnswer, ...] = ()
    least_threads: tuple[LeastThreads, ...] = ()

    @property
    def threads_axis(self) -> bool:
        """Whether the plan runs over several thread counts (``--threads A..B``)."""
        return len(self.machines) > 1

    def latency_s(self) -> "np.ndarray":
        """Seconds at every (machine, protocol, bandwidth, RTT)."""
        import numpy as np

        bw, rtt = self.bandwidth_bps[:, None], self.rtt_s[None, :]
        return np.array([[f.latency_s(bw, rtt) for f in row] for row in self.forms])

    def presets_inside(self) -> dict[str, Network]:
        """The network presets (``picost networks``) whose bandwidth and RTT lie inside the grid's ranges."""
        from picost.cost.network import presets

        lo_b, hi_b = self.bandwidth_bps[0] * (1 - 1e-9), self.bandwidth_bps[-1] * (1 + 1e-9)
        lo_r, hi_r = self.rtt_s[0] * (1 - 1e-9), self.rtt_s[-1] * (1 + 1e-9)
        return {name: n for name, n in presets().items()
                if lo_b <= n.bandwidth_bps <= hi_b and lo_r <= n.rtt_s <= hi_r}

    def latency_at(self, bandwidth_bps: float, rtt_s: float) -> list[list[float]]:
        """Seconds per (machine, protocol) at one bandwidth (bit/s) and RTT (s), on or off the grid."""
        return [[float(f.latency_s(bandwidth_bps, rtt_s)) for f in row] for row in self.forms]

    def winners(self, latency: "np.ndarray | None" = None) -> tuple["np.ndarray", "np.ndarray", "np.ndarray"]:
        """Per (machine, bandwidth, RTT): the fastest protocol's number (the first on a tie), the
        runner-up's (-1 with one protocol), and the runner-up's latency over the winner's (1 with one)."""
        import numpy as np

        lat = self.latency_s() if latency is None else latency
        order = np.argsort(lat, axis=1, kind="stable")
        best = order[:, 0]
        if lat.shape[1] < 2:
            return best, np.full_like(best, -1), np.ones(best.shape)
        second = order[:, 1]
        first_s = np.take_along_axis(lat, order[:, :1], axis=1)[:, 0]
        second_s = np.take_along_axis(lat, order[:, 1:2], axis=1)[:, 0]
        return best, second, second_s / first_s

    def to_frame(self) -> Any:
        """A pandas DataFrame, one row per (threads, bandwidth, RTT): each protocol's latency
        (``latency_s:NAME``), the winner, runner-up and margin (runner-up / winner); with a target
        also each protocol's least bandwidth at that RTT (``needed_bandwidth_bps:NAME``) and floor
        (``floor:NAME``). Pandas is imported here."""
        import pandas as pd

        header, rows = point_table(self)
        return pd.DataFrame.from_records(list(rows), columns=list(header))


def point_table(plan: Plan) -> tuple[tuple[str, ...], Any]:
    """The plan's grid as a header and rows (one per threads, bandwidth, RTT; see :meth:`Plan.to_frame`),
    the rows made as they are read."""
    lat = plan.latency_s()
    best, second, margin = plan.winners(lat)
    header = ["threads", "bandwidth_bps", "rtt_s", *(f"latency_s:{p}" for p in plan.protocols), "winner",
              "runner_up", "margin"]
    needed: dict[tuple[int, int, float], TargetAnswer] = {}
    if plan.target_s is not None:
        header += [f"needed_bandwidth_bps:{p}" for p in plan.protocols] + [f"floor:{p}" for p in plan.protocols]
        needed = {(a.machine, a.protocol, a.rtt_s): a for a in plan.targets}

    def rows() -> Any:
        for m, machine in enumerate(plan.machines):
            for i, bw in enumerate(plan.bandwidth_bps.tolist()):
                for j, rtt in enumerate(plan.rtt_s.tolist()):
                    row: list[Any] = [machine.threads_per_party, bw, rtt, *lat[m, :, i, j].tolist(),
                                      plan.protocols[best[m, i, j]],
                                      plan.protocols[second[m, i, j]] if second[m, i, j] >= 0 else None,
                                      float(margin[m, i, j])]
                    if needed:
                        answers = [needed[(m, p, rtt)] for p in range(len(plan.protocols))]
                        row += [a.needed_bandwidth_bps for a in answers] + [a.floor for a in answers]
                    yield tuple(row)

    return tuple(header), rows()


# -- the grid ------------------------------------------------------------------------------------

def parse_axis(text: str, option: str, points: int) -> "np.ndarray":
    """``10Mbps..10Gbps`` (``--bandwidth``) or ``0.1ms..200ms`` (``--rtt``): ``points`` values
    log-spaced from the first to the second, both included; one value alone is a one-point axis."""
    import numpy as np

    parse = parse_bandwidth if option == "--bandwidth" else parse_duration
    if not isinstance(text, str) or not text.strip():
        raise UserError(f"{option} is empty; write e.g. {DEFAULT_BANDWIDTH if option == '--bandwidth' else DEFAULT_RTT}",
                        field=option)
    parts = [p.strip() for p in text.split("..")]
    if len(parts) > 2 or "" in parts:
        raise UserError(f"cannot read the range '{text}'; write LOW..HIGH, e.g. "
                        f"{DEFAULT_BANDWIDTH if option == '--bandwidth' else DEFAULT_RTT}, or one value", field=option)
    values = [parse(p, option) for p in parts]
    if len(values) == 1:
        return np.asarray(values, dtype=float)
    lo, hi = values
    if not lo < hi:
        raise UserError(f"the range '{text}' must go from low to high", field=option)
    if lo <= 0:
        raise UserError(f"the range '{text}' is log-spaced and must start above 0", field=option)
    return np.geomspace(lo, hi, points)


def parse_threads(text: str | None) -> list[float] | None:
    """``--threads``: ``16`` (one count) or ``1..64`` (doubling from the first, the last included:
    1, 2, 4, ..., 64); ``None`` stays ``None`` (the machine's own count)."""
    if text is None:
        return None
    parts = [p.strip() for p in str(text).split("..")]
    try:
        if len(parts) > 2:
            raise ValueError
        values = [float(p) for p in parts]
    except ValueError:
        raise UserError(f"cannot read --threads '{text}'; write a number of cores per party (32) or a range (1..64)",
                        field="--threads") from None
    if len(values) == 2 and not values[0] < values[1]:
        raise UserError(f"the range '{text}' must go from low to high", field="--threads")
    if values[0] < 1:
        raise UserError(f"--threads must be at least 1 core per party (got '{text}')", field="--threads")
    counts = [values[0]]
    while len(values) == 2 and counts[-1] * 2 < values[1]:
        counts.append(counts[-1] * 2)
    if len(values) == 2:
        counts.append(values[1])
    return [int(c) if c == int(c) else c for c in counts]


def check_points(points: Any) -> int:
    if isinstance(points, bool) or not isinstance(points, int) or not 2 <= points <= MAX_AXIS_POINTS:
        raise UserError(f"--points must be a whole number from 2 to {MAX_AXIS_POINTS} (got {points!r})",
                        field="--points")
    return points


# -- planning ------------------------------------------------------------------------------------

def objective_totals(model: "ModelSpec", table: "ProtocolTable", context: int, new_tokens: int | None,
                     objective: str, lowered: Any = None) -> dict[str, Any]:
    """The ``compute_s``, ``comm_bytes`` and ``rounds`` the objective sums: one forward pass
    (``new_tokens`` None; ``lowered`` its lowering, if made already), or of a generation its
    prefill (``ttft``), the mean decode step (``per-token``) or everything (``total``)."""
    from picost.analysis.estimate import estimate_lowered
    from picost.model.lower import lower

    any_link = Network("any", 1.0, 0.0)  # totals of bytes, rounds and compute do not depend on it
    if new_tokens is None:
        totals = estimate_lowered(lowered if lowered is not None else lower(model, context), table, any_link).totals
        return {"compute_s": totals.compute_s, "comm_bytes": totals.comm_bytes, "rounds": totals.rounds}
    from picost.analysis.generation import generation_of

    g = generation_of(model, table, any_link, context, new_tokens)
    if objective == "ttft":
        p = g.prefill.totals
        return {"compute_s": p.compute_s, "comm_bytes": p.comm_bytes, "rounds": p.rounds}
    if objective == "per-token":
        return {f: (None if g.steps.total[f] is None else float(g.steps.total[f].mean()))
                for f in ("compute_s", "comm_bytes", "rounds")}
    return {f: g.totals()[f] for f in ("compute_s", "comm_bytes", "rounds")}


def check_objective(objective: str | None, new_tokens: int | None) -> str:
    """The objective in force: ``None`` is ``total`` with ``new_tokens`` and the forward pass without."""
    if objective is not None and objective not in OBJECTIVES:
        raise UserError(f"unknown value '{objective}' for --objective; choose from {', '.join(OBJECTIVES)}",
                        field="--objective")
    if new_tokens is None:
        if objective is not None:
            raise UserError("--objective plans a generation; give --new-tokens N too", field="--objective")
        return "prefill"
    from picost.analysis.generation import check_new_tokens

    check_new_tokens(new_tokens)
    return objective or "total"


def plan_deployment(model: "ModelSpec", tables: Sequence["ProtocolTable"], machines: Sequence["Machine"],
                    bandwidth_bps: "np.ndarray", rtt_s: "np.ndarray", context: int | None = None,
                    new_tokens: int | None = None, objective: str | None = None,
                    target_s: float | None = None) -> Plan:
    """The plan of ``model`` under ``tables`` (loaded, compute on the reference) on each of
    ``machines``, over the grid ``bandwidth_bps`` x ``rtt_s`` (sorted ascending; see the module)."""
    from picost.model import limits
    from picost.model.lower import lower

    if not tables:
        raise UserError("give at least one protocol", field="--protocol")
    labels = tuple(t.label for t in tables)
    if len(set(labels)) != len(labels):
        raise UserError(f"each protocol may appear once (got {', '.join(labels)})", field="--protocol")
    objective = check_objective(objective, new_tokens)
    T = model.context_length if context is None else limits.context(context, "--context")
    if len(bandwidth_bps) * len(rtt_s) * len(machines) > MAX_GRID_POINTS:
        raise UserError(f"{len(bandwidth_bps)} bandwidths x {len(rtt_s)} RTTs x {len(machines)} thread counts is "
                        f"over {MAX_GRID_POINTS:,} grid points; give fewer --points or a narrower --threads",
                        field="--points")
    if target_s is not None and not target_s > 0:
        raise UserError("--target must be a positive time, e.g. 60s", field="--target")
    lowered = lower(model, T) if new_tokens is None else None
    forms = tuple(tuple(latency_form(t.label, objective_totals(model, t.with_machine(m), T, new_tokens, objective,
                                                               lowered), t)
                        for t in tables) for m in machines)
    b_range = (float(bandwidth_bps[0]), float(bandwidth_bps[-1]))
    r_range = (float(rtt_s[0]), float(rtt_s[-1]))
    mapped = [winner_regions([f.affine for f in row], b_range, r_range) for row in forms]
    targets: tuple[TargetAnswer, ...] = ()
    least: tuple[LeastThreads, ...] = ()
    if target_s is not None:
        targets = tuple(target_answer(forms[m][p], target_s, float(r), p, m)
                        for m in range(len(machines)) for p in range(len(tables)) for r in rtt_s)
        if len(machines) > 1:
            least = least_threads(targets, machines, len(tables), b_range[1])
    return Plan(model.name, T, objective, new_tokens, labels, tuple(machines), forms, bandwidth_bps, rtt_s,
                tuple(tuple(r) for r, _ in mapped), tuple(tuple(b) for _, b in mapped), target_s, targets, least)


def target_answer(form: LatencyForm, target_s: float, rtt_s: float, protocol: int, machine: int) -> TargetAnswer:
    """The least bandwidth at which ``form`` meets ``target_s`` at ``rtt_s`` (see :class:`TargetAnswer`)."""
    if form.compute_s >= target_s:
        return TargetAnswer(protocol, machine, rtt_s, None, FLOOR_COMPUTE, form.compute_s)
    floor_s = form.compute_s + form.rtt_factor * rtt_s
    if floor_s >= target_s:
        return TargetAnswer(protocol, machine, rtt_s, None, FLOOR_ROUNDS, floor_s)
    return TargetAnswer(protocol, machine, rtt_s, form.bits / (target_s - floor_s), None, None)


def least_threads(targets: Sequence[TargetAnswer], machines: Sequence["Machine"], n_protocols: int,
                  max_bandwidth_bps: float) -> tuple[LeastThreads, ...]:
    """Per protocol and RTT, the first machine (in thread order) meeting the target at a bandwidth
    of at most ``max_bandwidth_bps``."""
    by_key = {(a.machine, a.protocol, a.rtt_s): a for a in targets}
    rtts = list(dict.fromkeys(a.rtt_s for a in targets))
    out = []
    for p in range(n_protocols):
        for r in rtts:
            found = next(((m, by_key[(m, p, r)]) for m in range(len(machines))
                          if by_key[(m, p, r)].needed_bandwidth_bps is not None
                          and by_key[(m, p, r)].needed_bandwidth_bps <= max_bandwidth_bps), None)
            out.append(LeastThreads(p, r, None if found is None else machines[found[0]].threads_per_party,
                                    None if found is None else found[1].needed_bandwidth_bps))
    return tuple(out)


def plan_machines(machine: Any = None, threads: Any = None, compute: str | None = None) -> list["Machine"]:
    """The machines of a plan: ``machine`` (a preset, a profile path, a Machine; default the
    reference) at each thread count of ``threads`` (a number, a list, or ``--threads`` text such
    as ``1..64``), or ``compute="none"``."""
    from picost.cost.machine import get_machine

    if isinstance(threads, str):
        counts = parse_threads(threads)
    elif threads is None or isinstance(threads, (list, tuple)):
        counts = None if threads is None else list(threads)
    else:
        counts = [threads]
    if not counts:
        return [get_machine(machine, None, compute)]
    return [get_machine(machine, n, compute) for n in counts]


def plan(spec: "ModelSpec | str | Path", protocols: "str | ProtocolTable | Sequence[str | ProtocolTable]",
         context: int | None = None, *, new_tokens: int | None = None, objective: str | None = None,
         bandwidth: str = DEFAULT_BANDWIDTH, rtt: str = DEFAULT_RTT, points: int = DEFAULT_POINTS,
         threads: Any = None, machine: Any = None, compute: str | None = None, target: str | None = None,
         options: Sequence[str] | None = None) -> Any:
    """The Python API of ``picost plan``: a pandas DataFrame, one row per (threads, bandwidth,
    RTT) grid point (:meth:`Plan.to_frame`). :func:`plan_deployment` gives the :class:`Plan`
    itself (the latency forms, exact regions and boundaries, target answers).

    ``protocols``: a table name, path or loaded table, or a list of them (a hybrid is one name,
    ``"linear=bumblebee,nonlinear=sigma"``); ``bandwidth`` and ``rtt``: a range
    ``"10Mbps..10Gbps"`` / ``"0.1ms..200ms"`` (``points`` log-spaced values) or one value;
    ``threads``: cores per party, one count or ``"1..64"``; ``target``: a time (``"60s"``);
    ``options``: table options as ``--option`` takes them (``["weights=public"]``)."""
    from picost.analysis.estimate import _spec
    from picost.cost.table_options import load_tables

    items = [protocols] if isinstance(protocols, (str, Path)) or not isinstance(protocols, Sequence) else list(protocols)
    names = [str(p) for p in items if isinstance(p, (str, Path))]
    loaded = iter(load_tables(names, options))
    tables = [next(loaded) if isinstance(p, (str, Path)) else p for p in items]
    check_points(points)
    result = plan_deployment(_spec(spec), tables, plan_machines(machine, threads, compute),
                             parse_axis(bandwidth, "--bandwidth", points), parse_axis(rtt, "--rtt", points),
                             context, new_tokens, objective,
                             None if target is None else parse_duration(target, "--target"))
    return result.to_frame()

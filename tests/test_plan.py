"""`picost plan`: the exact winner regions, boundaries and target answers against brute-force
estimates (`estimate_lowered` at every grid point, one network per point)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from picost.analysis.estimate import estimate_lowered
from picost.analysis.generation import generation_of
from picost.analysis.plan import (FLOOR_COMPUTE, FLOOR_ROUNDS, Plan, parse_axis, parse_threads, plan_deployment,
                                  plan_machines)
from picost.cost.network import Network
from picost.cost.table_options import load_tables
from picost.model.load import load_spec
from picost.model.lower import lower

RTOL = 1e-9

# (spec, T, protocols, threads, compute): each has at least two winners on its grid
CASES = [
    ("gpt2", 128, ["bumblebee", "puma", "crypten", "spu-semi2k"], 32, None),
    ("bert-base", 128, ["puma", "crypten", "spu-semi2k"], None, None),
    ("tiny", 16, ["crypten", "puma", "spu-semi2k"], None, "none"),
    ("gpt2", 1024, ["bumblebee", "puma", "spu-semi2k"], None, None),
]


def _plan(spec: str, T: int, protocols: list[str], threads=None, compute=None, points: int = 7,
          bandwidth: str = "10Mbps..10Gbps", rtt: str = "0.1ms..200ms", target_s=None, **kw) -> Plan:
    return plan_deployment(load_spec(spec), load_tables(protocols), plan_machines(None, threads, compute),
                           parse_axis(bandwidth, "--bandwidth", points), parse_axis(rtt, "--rtt", points), T,
                           target_s=target_s, **kw)


def _brute(plan: Plan, spec: str, m: int, bandwidth_bps: float, rtt_s: float) -> list[float]:
    """Each protocol's latency by the estimate itself at one network."""
    tables = [t.with_machine(plan.machines[m]) for t in load_tables(list(plan.protocols))]
    lowered = lower(load_spec(spec), plan.context)
    link = Network("point", bandwidth_bps, rtt_s)
    return [estimate_lowered(lowered, t, link).totals.latency_s for t in tables]


def _inside(vertices, bandwidth_bps: float, rtt_s: float, box) -> bool:
    """Whether a point lies in a convex polygon of (bandwidth, RTT) vertices (edges included),
    in (1 / bandwidth, RTT) scaled to the box."""
    (x_lo, x_hi), (y_lo, y_hi) = box

    def scaled(b, r):
        return ((1 / b - x_lo) / (x_hi - x_lo), (r - y_lo) / (y_hi - y_lo))

    px, py = scaled(bandwidth_bps, rtt_s)
    pts = [scaled(b, r) for b, r in vertices]
    signs = []
    for (ax, ay), (bx, by) in zip(pts, pts[1:] + pts[:1]):
        signs.append((bx - ax) * (py - ay) - (by - ay) * (px - ax))
    return all(s >= -1e-9 for s in signs) or all(s <= 1e-9 for s in signs)


@pytest.mark.parametrize("spec, T, protocols, threads, compute", CASES)
def test_exact_regions_agree_with_brute_force_estimates_at_every_grid_point(spec, T, protocols, threads, compute):
    plan = _plan(spec, T, protocols, threads, compute)
    bw, rtt = plan.bandwidth_bps, plan.rtt_s
    box = ((1 / bw[-1], 1 / bw[0]), (rtt[0], rtt[-1]))
    grid = plan.latency_s()[0]
    winners = set()
    for i, b in enumerate(bw):
        for j, r in enumerate(rtt):
            brute = _brute(plan, spec, 0, float(b), float(r))
            np.testing.assert_allclose(grid[:, i, j], brute, rtol=RTOL)
            order = sorted(range(len(brute)), key=brute.__getitem__)
            best = order[0]
            winners.add(best)
            if brute[order[1]] <= brute[best] * (1 + 1e-6):
                continue  # a near-tie: either side of the boundary
            holding = [reg.protocol for reg in plan.regions[0] if _inside(reg.vertices, float(b), float(r), box)]
            assert holding == [best], (b, r, holding, best)
    assert len(winners) >= 2  # the grid crosses a boundary: the check above is not vacuous
    assert plan.boundaries[0]


@pytest.mark.parametrize("spec, T, protocols, threads, compute", CASES)
def test_boundary_ends_are_ties_of_the_estimate_and_sides_are_right(spec, T, protocols, threads, compute):
    plan = _plan(spec, T, protocols, threads, compute, points=2)
    for b in plan.boundaries[0]:
        assert len(b.ends) == 2 and b.ends[0] != b.ends[1]
        for bandwidth_bps, rtt_s in b.ends:
            brute = _brute(plan, spec, 0, bandwidth_bps, rtt_s)
            assert math.isclose(brute[b.first], brute[b.second], rel_tol=RTOL)
            assert min(brute) >= brute[b.first] * (1 - RTOL)  # both tied protocols are the fastest there
            if b.rtt_intercept_s is not None:
                assert math.isclose(rtt_s, b.rtt_intercept_s + b.rtt_per_inverse_bandwidth / bandwidth_bps,
                                    rel_tol=1e-6, abs_tol=1e-12)
        mid_b = 2 / (1 / b.ends[0][0] + 1 / b.ends[1][0])
        mid_r = (b.ends[0][1] + b.ends[1][1]) / 2
        if b.rtt_intercept_s is not None:  # just below the line (smaller RTT), lower_rtt_wins is the faster
            below = _brute(plan, spec, 0, mid_b, mid_r * (1 - 1e-3))
            loser = b.second if b.lower_rtt_wins == b.first else b.first
            assert below[b.lower_rtt_wins] < below[loser]


def test_single_bandwidth_boundaries_are_points_where_the_estimates_tie():
    plan = _plan("gpt2", 128, ["puma", "crypten", "spu-semi2k"], threads=32, bandwidth="1Gbps")
    assert len(plan.bandwidth_bps) == 1
    assert plan.boundaries[0]
    for b in plan.boundaries[0]:
        assert len(b.ends) == 1
        brute = _brute(plan, "gpt2", 0, *b.ends[0])
        assert math.isclose(brute[b.first], brute[b.second], rel_tol=RTOL)


@pytest.mark.parametrize("spec, T, protocols, threads", [("gpt2", 128, ["puma", "crypten", "spu-semi2k"], "1..8"),
                                                           ("bert-base", 128, ["bumblebee", "puma"], "2..16")])
def test_target_answers_agree_with_brute_force_estimates(spec, T, protocols, threads):
    target_s = 240.0
    plan = _plan(spec, T, protocols, threads, points=5, target_s=target_s)
    for a in plan.targets:
        if a.needed_bandwidth_bps is not None:
            at = _brute(plan, spec, a.machine, a.needed_bandwidth_bps, a.rtt_s)[a.protocol]
            assert math.isclose(at, target_s, rel_tol=RTOL)
            assert _brute(plan, spec, a.machine, a.needed_bandwidth_bps * (1 - 1e-6), a.rtt_s)[a.protocol] > target_s
            continue
        lowered = lower(load_spec(spec), T)
        table = load_tables([plan.protocols[a.protocol]])[0].with_machine(plan.machines[a.machine])
        fastest_link = estimate_lowered(lowered, table, Network("fast", 1e15, a.rtt_s)).totals
        assert fastest_link.latency_s > target_s * (1 - 1e-6)  # no bandwidth gets there
        if a.floor == FLOOR_COMPUTE:
            assert fastest_link.compute_s >= target_s
        else:
            assert a.floor == FLOOR_ROUNDS and fastest_link.compute_s < target_s
    assert any(a.needed_bandwidth_bps for a in plan.targets)  # the reachable branch was checked
    top = float(plan.bandwidth_bps[-1])
    for least in plan.least_threads:
        meets = [_brute(plan, spec, m, top, least.rtt_s)[least.protocol] <= target_s for m in range(len(plan.machines))]
        expected = next((plan.machines[m].threads_per_party for m, ok in enumerate(meets) if ok), None)
        assert least.threads == expected
    assert any(t.threads is not None for t in plan.least_threads)


def test_the_gpt2_target_answers_include_both_floors_and_a_reachable_bandwidth():
    plan = _plan("gpt2", 128, ["bumblebee", "puma", "crypten"], points=5, target_s=600.0)
    kinds = {a.floor for a in plan.targets}
    assert kinds == {None, FLOOR_COMPUTE, FLOOR_ROUNDS}


@pytest.mark.parametrize("objective", ["ttft", "per-token", "total"])
def test_generation_objectives_equal_the_generation_estimate(objective):
    spec, T, N = "tiny", 16, 5
    plan = _plan(spec, T, ["crypten", "puma"], points=3, new_tokens=N, objective=objective)
    assert plan.objective == objective
    lat = plan.latency_s()[0]
    model = load_spec(spec)
    for p, table in enumerate(load_tables(list(plan.protocols))):
        for i, b in enumerate(plan.bandwidth_bps):
            for j, r in enumerate(plan.rtt_s):
                g = generation_of(model, table, Network("point", float(b), float(r)), T, N)
                want = {"ttft": g.ttft_s, "per-token": g.mean_token_s, "total": g.totals()["latency_s"]}[objective]
                assert math.isclose(lat[p, i, j], want, rel_tol=RTOL)


def test_thread_counts_cost_compute_as_the_estimate_does_with_threads():
    from picost.analysis.estimate import estimate

    plan = _plan("gpt2", 128, ["puma", "crypten"], "1..64", points=2)
    assert [m.threads_per_party for m in plan.machines] == [1, 2, 4, 8, 16, 32, 64]
    for m, n in enumerate([1, 2, 4, 8, 16, 32, 64]):
        for p, name in enumerate(plan.protocols):
            want = estimate("gpt2", name, "wan", 128, threads=n).totals.compute_s
            assert math.isclose(plan.forms[m][p].compute_s, want, rel_tol=RTOL)
    puma = [row[0].compute_s for row in plan.forms]
    assert puma[0] > puma[-1]  # SPU's measured core scaling: more cores, less compute


@pytest.mark.parametrize("text, expected", [("16", [16]), ("1..64", [1, 2, 4, 8, 16, 32, 64]),
                                            ("3..40", [3, 6, 12, 24, 40]), ("2..3", [2, 3])])
def test_parse_threads(text, expected):
    assert parse_threads(text) == expected


def test_axes_are_log_spaced_with_both_ends():
    bw = parse_axis("10Mbps..10Gbps", "--bandwidth", 4)
    np.testing.assert_allclose(bw, [1e7, 1e8, 1e9, 1e10], rtol=1e-12)
    assert parse_axis("80ms", "--rtt", 50).tolist() == [0.08]


def test_python_api_returns_a_dataframe_of_every_point():
    import picost

    frame = picost.plan("tiny", ["crypten", "puma"], context=16, points=3, threads="1..2", target="1s")
    assert len(frame) == 3 * 3 * 2
    assert {"latency_s:crypten", "winner", "margin", "needed_bandwidth_bps:puma", "floor:crypten"} <= set(frame.columns)
    lat = frame[["latency_s:crypten", "latency_s:puma"]].to_numpy()
    assert (frame["winner"] == np.where(lat[:, 0] <= lat[:, 1], "crypten", "puma")).all()
    np.testing.assert_allclose(frame["margin"], lat.max(axis=1) / lat.min(axis=1), rtol=RTOL)

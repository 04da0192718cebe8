"""The data behind a report's plots, as CSV: written from analysis results, read back to draw.

Every plot is drawn from the text of its CSV file (kept beside the PNG), so a reader can redraw
it from that file alone. Values are in base units (bytes, seconds), numbers written with 10
significant digits (deterministic text for the staleness test of the committed reports).

The schemas:

- *by class* (``comm-*.csv``, ``latency-*.csv``): ``protocol,T,<class>...,total``, one row per
  protocol and context; class columns in report order (:data:`picost.analysis.estimate.ROW_CLASSES`),
  ``total`` their sum.
- *per token* (``per-token-*.csv``, a generation after a T-token prompt):
  ``protocol,N,<class>...,total``, one row per protocol and number of new tokens N; each class's
  mean latency per decode step (its latency over the N steps / N), ``total`` their sum (the mean
  per-token latency). The generation's total latency is ``TTFT + N * total``.
- *ablation* (``aero-ablation.csv``): ``protocol,network,step,comm_bytes,latency_s,comm_x,latency_x``,
  one row per protocol, network and AERO step; ``*_x`` the savings against the first step.
- *plan map* (``plan-map-*.csv``): ``kind,name,bandwidth_bps,rtt_s``: the exact winner regions'
  outlines, the boundaries and the network presets (:func:`plan_map_csv`).
- *plan curves* (``plan-curves-*.csv``): ``at,rtt_s,bandwidth_bps,<protocol>...``: latency against
  bandwidth at fixed RTTs (:func:`plan_curves_csv`).
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any, Sequence

ABLATION_HEADER = ("protocol", "network", "step", "comm_bytes", "latency_s", "comm_x", "latency_x")


def _number(x: Any) -> str:
    x = float(x)
    return "inf" if math.isinf(x) else f"{x:.10g}"


def _csv(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    from picost.report.render import dump_csv

    return dump_csv(header, [[c if isinstance(c, str) else _number(c) for c in row] for row in rows])


def by_class_csv(result: Any, field: str, network: str) -> str:
    """``field`` (``comm_bytes`` or ``latency_s``) per class of a sweep over ``network``, every
    protocol of the sweep (see the module for the schema)."""
    rows = []
    for j in range(len(result)):
        if result.network[j] != network:
            continue
        rows.append([str(result.protocol[j]), int(result.context[j])]
                    + [result.by_class[c][field][j] for c in result.classes] + [result.total[field][j]])
    return _csv(["protocol", "T", *result.classes, "total"], rows)


def per_token_csv(result: Any, network: str) -> str:
    """The mean per-token latency per class of a generation sweep
    (:class:`~picost.analysis.generation_sweep.GenerationSweepResult`) over ``network``, against N
    (see the module for the schema)."""
    rows = []
    per_class = {c: result.per_token("latency_s", c) for c in result.classes}
    total = result.per_token("latency_s")
    for j in range(len(result)):
        if result.network[j] != network:
            continue
        rows.append([str(result.protocol[j]), int(result.new_tokens[j])]
                    + [per_class[c][j] for c in result.classes] + [total[j]])
    return _csv(["protocol", "N", *result.classes, "total"], rows)


def ablation_csv(panels: Sequence[tuple[str, str, Sequence[Any]]]) -> str:
    """``(protocol, network, ablation rows)`` per panel (rows from :func:`picost.analysis.ablation.ablation`
    with costs)."""
    return _csv(ABLATION_HEADER, [[protocol, network, r.label, r.comm_bytes, r.latency_s,
                                   r.savings["comm_bytes"], r.savings["latency_s"]]
                                  for protocol, network, rows in panels for r in rows])


def read_csv(text: str) -> list[dict[str, str]]:
    """The rows of a plot's CSV text, as column -> text."""
    return list(csv.DictReader(io.StringIO(text)))


# -- deployment plans (picost plan) -----------------------------------------------------------------

PLAN_MAP_HEADER = ("kind", "name", "bandwidth_bps", "rtt_s")
EDGE_SAMPLES = 48
"""Points per straight edge in (1 / bandwidth, RTT): a curve on the map's log axes."""


def _edge(a: tuple[float, float], b: tuple[float, float], closed_end: bool) -> list[tuple[float, float]]:
    """Points along the straight segment from ``a`` to ``b`` in (1 / bandwidth, RTT), as (bandwidth, RTT)."""
    n = EDGE_SAMPLES + (1 if closed_end else 0)
    return [(1 / (1 / a[0] + t / EDGE_SAMPLES * (1 / b[0] - 1 / a[0])), a[1] + t / EDGE_SAMPLES * (b[1] - a[1]))
            for t in range(n)]


def plan_map_csv(plan: Any, machine: int = 0) -> str:
    """The winner map of one machine of a :class:`~picost.analysis.plan.Plan`:
    ``kind,name,bandwidth_bps,rtt_s`` rows of kind ``region`` (name: the protocol; its exact
    region's outline, in order), ``boundary`` (name: ``p|q``; points along it) and ``network``
    (name: a network preset inside the ranges). Edges are straight in (1 / bandwidth, RTT) and
    sampled with :data:`EDGE_SAMPLES` points."""
    rows: list[list[Any]] = []
    for region in plan.regions[machine]:
        v = list(region.vertices)
        outline = [p for a, b in zip(v, v[1:] + v[:1]) for p in _edge(a, b, False)] if len(v) > 1 else v
        rows += [["region", plan.protocols[region.protocol], b, r] for b, r in outline]
    for bound in plan.boundaries[machine]:
        name = f"{plan.protocols[bound.first]}|{plan.protocols[bound.second]}"
        ends = bound.ends if len(bound.ends) == 2 else bound.ends * 2
        rows += [["boundary", name, b, r] for b, r in _edge(ends[0], ends[1], True)]
    rows += [["network", name, n.bandwidth_bps, n.rtt_s] for name, n in plan.presets_inside().items()]
    return _csv(PLAN_MAP_HEADER, rows)


def plan_curves_csv(plan: Any, rtts: dict[str, float], machine: int = 0) -> str:
    """Latency against bandwidth per protocol at fixed RTTs (``name -> seconds``):
    ``at,rtt_s,bandwidth_bps,<protocol>...`` over the plan's bandwidths."""
    rows = []
    for name, rtt_s in rtts.items():
        for bandwidth_bps in plan.bandwidth_bps.tolist():
            rows.append([name, rtt_s, bandwidth_bps] + [f.latency_s(bandwidth_bps, rtt_s) for f in plan.forms[machine]])
    return _csv(("at", "rtt_s", "bandwidth_bps", *plan.protocols), rows)

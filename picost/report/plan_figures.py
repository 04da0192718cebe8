"""What the deployment plan's plots show, laid out from their CSV text (no matplotlib here;
:mod:`picost.report.plots` draws these plans).

*Winner map* (:func:`winner_map_figure`, from :func:`picost.report.plot_data.plan_map_csv`): over
bandwidth (x) and RTT (y), both logarithmic, each protocol's exact region filled in its colour,
the boundaries between regions drawn as lines, and the network presets inside the ranges marked
and named (the papers' settings).

*Latency against bandwidth* (:func:`curves_figure`, from :func:`picost.report.plot_data.plan_curves_csv`):
one panel per fixed RTT, one line per protocol, log-log, latency in one unit for all panels.
"""

from __future__ import annotations

from dataclasses import dataclass

from picost.report.figures import TIME_UNITS, pick_unit
from picost.report.plot_data import read_csv

#: Protocol colours, in the plan's protocol order (matplotlib's tab10, reordered; repeated past ten).
PROTOCOL_COLOURS = ("#9467bd", "#2ca02c", "#d62728", "#1f77b4", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f",
                    "#bcbd22", "#17becf")


def colours(n: int) -> tuple[str, ...]:
    return tuple(PROTOCOL_COLOURS[i % len(PROTOCOL_COLOURS)] for i in range(n))


BANDWIDTH_LABEL = "bandwidth (bit/s)"
RTT_LABEL = "RTT (ms)"


@dataclass(frozen=True)
class WinnerMap:
    """Regions as outlines (bandwidth in bit/s, RTT in ms) per protocol, boundaries as polylines,
    and the marked networks (name, bandwidth, RTT in ms)."""

    title: str
    protocols: tuple[str, ...]
    colours: tuple[str, ...]
    regions: dict[str, tuple[tuple[float, ...], tuple[float, ...]]]
    boundaries: dict[str, tuple[tuple[float, ...], tuple[float, ...]]]
    networks: tuple[tuple[str, float, float], ...]
    x_label: str = BANDWIDTH_LABEL
    y_label: str = RTT_LABEL


def winner_map_figure(csv_text: str, protocols: tuple[str, ...], title: str) -> WinnerMap:
    """The plan of a winner map CSV; ``protocols`` fixes the colours (every protocol planned, in
    order, including those that win nowhere)."""
    rows = read_csv(csv_text)

    def series(kind: str) -> dict[str, tuple[tuple[float, ...], tuple[float, ...]]]:
        out: dict[str, tuple[list[float], list[float]]] = {}
        for r in rows:
            if r["kind"] == kind:
                xs, ys = out.setdefault(r["name"], ([], []))
                xs.append(float(r["bandwidth_bps"]))
                ys.append(1e3 * float(r["rtt_s"]))
        return {k: (tuple(x), tuple(y)) for k, (x, y) in out.items()}

    networks = tuple((r["name"], float(r["bandwidth_bps"]), 1e3 * float(r["rtt_s"])) for r in rows
                     if r["kind"] == "network")
    return WinnerMap(title, protocols, colours(len(protocols)), series("region"), series("boundary"),
                     networks)


@dataclass(frozen=True)
class CurvesPanel:
    """Latency (the figure's unit) against bandwidth (bit/s) per protocol at one RTT."""

    title: str
    bandwidth_bps: tuple[float, ...]
    latency: dict[str, tuple[float, ...]]


@dataclass(frozen=True)
class CurvesFigure:
    title: str
    unit: str
    protocols: tuple[str, ...]
    colours: tuple[str, ...]
    panels: tuple[CurvesPanel, ...]
    x_label: str = BANDWIDTH_LABEL

    @property
    def y_label(self) -> str:
        return f"latency ({self.unit})"


def curves_figure(csv_text: str, title: str) -> CurvesFigure:
    """The plan of a latency-against-bandwidth CSV."""
    from picost.report.render import human_seconds

    rows = read_csv(csv_text)
    protocols = tuple(list(rows[0])[3:])
    unit, scale = pick_unit([float(r[p]) for r in rows for p in protocols], TIME_UNITS)
    panels = []
    for at in dict.fromkeys(r["at"] for r in rows):
        mine = [r for r in rows if r["at"] == at]
        panels.append(CurvesPanel(f"RTT {human_seconds(float(mine[0]['rtt_s']))} ({at})",
                                  tuple(float(r["bandwidth_bps"]) for r in mine),
                                  {p: tuple(float(r[p]) / scale for r in mine) for p in protocols}))
    return CurvesFigure(title, unit, protocols, colours(len(protocols)), tuple(panels))

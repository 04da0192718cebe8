"""Drawing the report's figure plans (:mod:`picost.report.figures`) with matplotlib.

matplotlib is imported inside these functions only (Agg backend), so the CLI starts without it.
:func:`draw` returns the matplotlib figure (the tests inspect it); :func:`png` its PNG bytes,
with no timestamp or software tag, so the same plan and matplotlib version give the same bytes.
Sized for a markdown viewer 700 px wide: 7 in at 100 dpi, no text under 9 pt.
"""

from __future__ import annotations

import io
import textwrap
from typing import Any, Sequence

from picost.report.figures import CLASS_COLOURS, AblationFigure, ClassFigure
from picost.report.plan_figures import CurvesFigure, WinnerMap

WIDTH_IN, DPI = 7.0, 100
STYLE = {"font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "xtick.labelsize": 9,
         "ytick.labelsize": 9, "legend.fontsize": 9, "figure.titlesize": 11}
MAX_COLUMNS = 3
COMM_COLOUR, LATENCY_COLOUR = "#4c72b0", "#dd8452"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


Plan = ClassFigure | AblationFigure | WinnerMap | CurvesFigure


def png(plan: Plan) -> bytes:
    """The PNG of a plan."""
    plt = _pyplot()
    with plt.rc_context(STYLE):
        fig = draw(plan)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def draw(plan: Plan) -> Any:
    """The matplotlib figure of a plan (caller closes it)."""
    plt = _pyplot()
    drawers = {ClassFigure: _draw_classes, AblationFigure: _draw_ablation, WinnerMap: _draw_winner_map,
               CurvesFigure: _draw_curves}
    with plt.rc_context(STYLE):
        return drawers[type(plan)](plan)


def _t_ticks(T: Sequence[int], most: int) -> list[int]:
    """Powers of two within the swept T or N (every k-th, at most ``most``); the swept values
    themselves if no power of two falls inside."""
    lo, hi = min(T), max(T)
    powers = [2 ** k for k in range(64) if lo <= 2 ** k <= hi] or sorted(set(T))
    step = -(-len(powers) // most)
    return powers[::step]


def _plain_log_formatter(log_formatter: Any, **kw: Any) -> Any:
    """matplotlib's choice of which log ticks to label, written as plain numbers (0.1, 20, 400)."""

    class Plain(log_formatter):  # type: ignore[misc, valid-type]
        def __call__(self, x: float, pos: Any = None) -> str:
            return f"{x:g}" if super().__call__(x, pos) else ""

    return Plain(labelOnlyBase=False, **kw)


def _draw_classes(plan: ClassFigure) -> Any:
    from matplotlib.ticker import FixedLocator, LogFormatter, NullLocator, StrMethodFormatter

    plt = _pyplot()
    n = len(plan.panels)
    cols, blocks = min(n, MAX_COLUMNS), -(-n // MAX_COLUMNS)
    fig = plt.figure(figsize=(WIDTH_IN, 0.9 + 3.6 * blocks), layout="constrained")
    grid = fig.add_gridspec(2 * blocks, cols, height_ratios=[1, 1.25] * blocks)
    fig.suptitle(plan.title)
    first_total = first_share = None
    ticks = _t_ticks([t for p in plan.panels for t in p.T], 8 if cols == 1 else 4)
    for i, panel in enumerate(plan.panels):
        row, col = 2 * (i // cols), i % cols
        total = fig.add_subplot(grid[row, col], sharex=first_share, sharey=first_total)
        share = fig.add_subplot(grid[row + 1, col], sharex=total, sharey=first_share)
        first_total, first_share = first_total or total, first_share or share
        total.plot(panel.T, panel.total, color="black", marker="o", markersize=3, label="total")
        total.set_xscale("log", base=2)
        total.set_yscale("log")
        total.yaxis.set_major_formatter(_plain_log_formatter(LogFormatter))
        total.yaxis.set_minor_formatter(_plain_log_formatter(LogFormatter, minor_thresholds=(1, 0.5)))
        total.set_title(panel.protocol)
        total.grid(alpha=0.3, which="both")
        total.tick_params(labelbottom=False)
        share.stackplot(panel.T, *[panel.shares[c] for c in plan.classes], labels=plan.classes,
                        colors=[CLASS_COLOURS[c] for c in plan.classes])
        share.set_ylim(0, 100)
        share.set_xlim(min(panel.T), max(panel.T))
        share.set_xlabel(plan.x_label)
        share.grid(alpha=0.3)
        share.xaxis.set_major_locator(FixedLocator(ticks))
        share.xaxis.set_major_formatter(StrMethodFormatter("{x:.0f}"))
        share.xaxis.set_minor_locator(NullLocator())
        if col == 0:
            total.set_ylabel(plan.total_label)
            share.set_ylabel(plan.share_label)
        else:
            total.tick_params(labelleft=False)
            share.tick_params(labelleft=False)
    handles = [plt.Rectangle((0, 0), 1, 1, color=CLASS_COLOURS[c]) for c in reversed(plan.classes)]
    fig.legend(handles, list(reversed(plan.classes)), loc="outside right center", frameon=False,
               title="op class\n(top of the\nstack first)", alignment="left")
    return fig


def _draw_ablation(plan: AblationFigure) -> Any:
    plt = _pyplot()
    n = len(plan.panels)
    fig, axes = plt.subplots(n, 1, figsize=(WIDTH_IN, 0.9 + 3.3 * n), sharex=True, squeeze=False,
                             layout="constrained")
    fig.suptitle(plan.title)
    width = 0.38
    for ax, panel in zip(axes[:, 0], plan.panels):
        x = range(len(panel.steps))
        right = ax.twinx()
        comm = ax.bar([i - width / 2 for i in x], panel.comm, width, color=COMM_COLOUR)
        latency = right.bar([i + width / 2 for i in x], panel.latency, width, color=LATENCY_COLOUR)
        ax.bar_label(comm, labels=list(panel.comm_x), padding=3, fontsize=9, rotation=90)
        right.bar_label(latency, labels=list(panel.latency_x), padding=3, fontsize=9, rotation=90)
        ax.set_ylim(0, 1.25 * max(panel.comm))  # room for the labels above the bars
        right.set_ylim(0, 1.25 * max(panel.latency))
        ax.set_ylabel(panel.comm_label, color=COMM_COLOUR)
        right.set_ylabel(panel.latency_label, color=LATENCY_COLOUR)
        ax.set_title(panel.title)
        ax.set_xticks(list(x), [textwrap.fill(s, 11) for s in panel.steps])
        ax.grid(alpha=0.3, axis="y")
    fig.legend([comm, latency], ["communication (left axis)", "latency (right axis)"], loc="outside lower center",
               ncol=2, frameon=False, title=plan.note)
    return fig


def _log_axes(ax: Any, x_label: str, y_label: str | None) -> None:
    from matplotlib.ticker import LogFormatter

    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(x_label)
    if y_label:
        ax.set_ylabel(y_label)
    ax.yaxis.set_major_formatter(_plain_log_formatter(LogFormatter))
    ax.grid(alpha=0.3, which="both")


def _draw_winner_map(plan: WinnerMap) -> Any:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(WIDTH_IN, 5.2), layout="constrained")
    fig.suptitle(plan.title)
    colour = dict(zip(plan.protocols, plan.colours))
    for name, (xs, ys) in plan.regions.items():
        ax.fill(xs, ys, color=colour[name], alpha=0.35, linewidth=0, label=f"{name} fastest")
    for xs, ys in plan.boundaries.values():
        ax.plot(xs, ys, color="black", linewidth=1.2)
    bandwidths = [v for xs, ys in plan.regions.values() for v in xs]
    rtts = [v for xs, ys in plan.regions.values() for v in ys]
    right_fifth = min(bandwidths) * (max(bandwidths) / min(bandwidths)) ** 0.8
    for name, bandwidth, rtt in plan.networks:  # labels near the right edge go to the left of their dot
        left = bandwidth > right_fifth
        ax.plot([bandwidth], [rtt], marker="o", color="black", markersize=4)
        ax.annotate(name, (bandwidth, rtt), textcoords="offset points", xytext=(-4 if left else 4, 3), fontsize=9,
                    ha="right" if left else "left")
    _log_axes(ax, plan.x_label, plan.y_label)
    ax.set_xlim(min(bandwidths), max(bandwidths))
    ax.set_ylim(min(rtts), max(rtts))
    fig.legend(loc="outside lower center", ncol=min(4, max(1, len(plan.regions))), frameon=False,
               title="exact regions; lines: boundaries (equal latency); dots: network presets")
    return fig


def _draw_curves(plan: CurvesFigure) -> Any:
    plt = _pyplot()
    n = len(plan.panels)
    fig, axes = plt.subplots(1, n, figsize=(WIDTH_IN, 3.8), sharey=True, squeeze=False, layout="constrained")
    fig.suptitle(plan.title)
    for k, (ax, panel) in enumerate(zip(axes[0], plan.panels)):
        for name, c in zip(plan.protocols, plan.colours):
            ax.plot(panel.bandwidth_bps, panel.latency[name], color=c, label=name)
        _log_axes(ax, plan.x_label, plan.y_label if k == 0 else None)
        ax.set_title(panel.title)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(4, len(labels)), frameon=False)
    return fig

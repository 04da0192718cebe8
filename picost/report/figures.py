"""What each report plot shows, laid out from the plot's CSV text: panels, series in display
units, axis labels, colours. No matplotlib here; :mod:`picost.report.plots` draws these plans one
to one, and the tests check them.

*Cost by class against T* (:func:`class_figure`): one panel per protocol, each in two parts
sharing the T axis: the total on log-log axes, and each op class's share of it (%) stacked on a
linear axis. Stacking absolute values on a log y axis would mislead (a band's apparent thickness
depends on the bands below it, and small classes vanish or swell), so the size is read from the
total and the split from the shares. Classes keep one colour and one stacking order everywhere.

*AERO ablation* (:func:`ablation_figure`): one panel per protocol and network, communication and
latency as grouped bars per step (left and right axes), each bar annotated with its savings against
the first step; the panels share the steps, each has its own scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from picost.analysis.estimate import ROW_CLASSES
from picost.report.plot_data import read_csv

#: One colour per op class (matplotlib's tab10, in class order), the same in every plot.
CLASS_COLOURS = dict(zip(ROW_CLASSES, ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                                       "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")))
BYTE_UNITS = (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3), ("B", 1.0))
TIME_UNITS = (("h", 3600.0), ("min", 60.0), ("s", 1.0), ("ms", 1e-3))
QUANTITIES = {"comm": ("online communication", BYTE_UNITS), "latency": ("latency", TIME_UNITS),
              "per_token": ("mean per-token latency", TIME_UNITS)}
T_LABEL = "context T (tokens)"
N_LABEL = "new tokens N (decode steps)"
X_LABELS = {"T": T_LABEL, "N": N_LABEL}
"""The x column of a by-class CSV (its second column) and its axis label."""


def pick_unit(values: Sequence[float], units: Sequence[tuple[str, float]]) -> tuple[str, float]:
    """The largest unit in which the largest value reads at least 10 (the smallest unit if none)."""
    top = max((abs(v) for v in values), default=0.0)
    return next(((name, scale) for name, scale in units if top / scale >= 10), units[-1])


@dataclass(frozen=True)
class ClassPanel:
    """One protocol: the total (in the figure's unit) and each plotted class's share (%) per T
    (or per N, the x column of a generation's per-token CSV)."""

    protocol: str
    T: tuple[int, ...]
    total: tuple[float, ...]
    shares: dict[str, tuple[float, ...]]


@dataclass(frozen=True)
class ClassFigure:
    title: str
    quantity: str
    unit: str
    classes: tuple[str, ...]
    """The classes drawn (non-zero somewhere in the figure), in stacking order (bottom first)."""
    panels: tuple[ClassPanel, ...]
    x_label: str = T_LABEL

    @property
    def total_label(self) -> str:
        return f"{self.quantity} ({self.unit})"

    @property
    def share_label(self) -> str:
        return "share (%)"


def class_figure(csv_text: str, quantity: str, title: str) -> ClassFigure:
    """The plan of a by-class CSV (:func:`picost.report.plot_data.by_class_csv`, or
    :func:`~picost.report.plot_data.per_token_csv` against N); ``quantity`` is ``comm``,
    ``latency`` or ``per_token``."""
    name, units = QUANTITIES[quantity]
    rows = read_csv(csv_text)
    x = list(rows[0])[1]
    classes = [c for c in ROW_CLASSES if c in rows[0] and any(float(r[c]) > 0 for r in rows)]
    unit, scale = pick_unit([float(r["total"]) for r in rows], units)
    panels = []
    for protocol in dict.fromkeys(r["protocol"] for r in rows):
        mine = [r for r in rows if r["protocol"] == protocol]
        totals = [float(r["total"]) for r in mine]
        shares = {c: tuple(100 * float(r[c]) / t if t else 0.0 for r, t in zip(mine, totals)) for c in classes}
        panels.append(ClassPanel(protocol, tuple(int(r[x]) for r in mine), tuple(t / scale for t in totals), shares))
    return ClassFigure(title, name, unit, tuple(classes), tuple(panels), X_LABELS[x])


@dataclass(frozen=True)
class AblationPanel:
    """One protocol over one network: per step, communication and latency (in the panel's units)
    and their savings against the first step, as printed (``2.55x``). Units are per panel: latency
    over a LAN and over a WAN can differ by orders of magnitude, and a shared scale would flatten
    the smaller; panels compare through the savings labels."""

    title: str
    steps: tuple[str, ...]
    comm_unit: str
    time_unit: str
    comm: tuple[float, ...]
    latency: tuple[float, ...]
    comm_x: tuple[str, ...]
    latency_x: tuple[str, ...]

    @property
    def comm_label(self) -> str:
        return f"communication ({self.comm_unit})"

    @property
    def latency_label(self) -> str:
        return f"latency ({self.time_unit})"


@dataclass(frozen=True)
class AblationFigure:
    title: str
    panels: tuple[AblationPanel, ...]

    @property
    def note(self) -> str:
        return f"bar labels: savings against {self.panels[0].steps[0]}"


def ablation_figure(csv_text: str, title: str) -> AblationFigure:
    """The plan of an ablation CSV (:func:`picost.report.plot_data.ablation_csv`)."""
    from picost.report.render import human_times

    rows = read_csv(csv_text)
    panels = []
    for key in dict.fromkeys((r["protocol"], r["network"]) for r in rows):
        mine = [r for r in rows if (r["protocol"], r["network"]) == key]
        comm_unit, comm_scale = pick_unit([float(r["comm_bytes"]) for r in mine], BYTE_UNITS)
        time_unit, time_scale = pick_unit([float(r["latency_s"]) for r in mine], TIME_UNITS)
        panels.append(AblationPanel(
            f"{key[0]} over {key[1]}", tuple(r["step"] for r in mine), comm_unit, time_unit,
            tuple(float(r["comm_bytes"]) / comm_scale for r in mine),
            tuple(float(r["latency_s"]) / time_scale for r in mine),
            tuple(human_times(float(r["comm_x"])) for r in mine),
            tuple(human_times(float(r["latency_x"])) for r in mine)))
    return AblationFigure(title, tuple(panels))

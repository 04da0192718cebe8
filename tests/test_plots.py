"""Report plots: what is drawn equals the report's CSV data (stacked classes sum to the total,
ablation bars equal the ablation table), one panel per protocol, labelled axes with units, legends
outside the data, fonts readable at 700 px, and matplotlib kept out of the CLI's imports."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from picost.analysis.ablation import ablation, estimate_cost
from picost.cost.network import get_network
from picost.cost.protocol_table import load_protocol
from picost.model.aero_transforms import aero_steps
from picost.model.load import load_spec
from picost.report import figures, plots
from picost.report.figures import CLASS_COLOURS, ablation_figure, class_figure
from picost.report.markdown_report import ReportConfig, build_report
from picost.report.plot_data import read_csv

FIXTURE = str(Path(__file__).parent / "data" / "protocols" / "sweepfix.yaml")
UNIT = re.compile(r"\((TB|GB|MB|kB|B|h|min|s|ms|%|tokens)\)$")


@pytest.fixture(scope="module")
def sweep_report(tmp_path_factory):
    md = tmp_path_factory.mktemp("r") / "r.md"
    config = ReportConfig(name="r", specs=("tiny",), protocols=(FIXTURE, "crypten", "puma"), networks=("lan", "wan"),
                          context=16, sweep="4,8,...,64")
    return md, build_report(config, md, plots=False)


@pytest.fixture(scope="module")
def aero_report(tmp_path_factory):
    md = tmp_path_factory.mktemp("a") / "a.md"
    config = ReportConfig(name="a", specs=("gpt2",), aero=True, protocols=(FIXTURE, "bumblebee"), networks=("wan",),
                          context=32, sweep="16,32")
    return md, build_report(config, md, plots=False)


@pytest.fixture
def drawn():
    """Draw a plan and close the figure afterwards."""
    figs = []

    def draw(plan):
        figs.append(plots.draw(plan))
        figs[-1].canvas.draw()  # lay out, so extents are final
        return figs[-1]

    yield draw
    import matplotlib.pyplot as plt

    for fig in figs:
        plt.close(fig)


def _csv(report, name):
    md, built = report
    return built.files[md.parent / md.stem / name]


def _scale(unit, units):
    return dict(units)[unit]


def test_stacked_classes_sum_to_the_csv_total_at_every_T(sweep_report):
    for name, quantity, units in (("comm-tiny.csv", "comm", figures.BYTE_UNITS),
                                  ("latency-tiny-wan.csv", "latency", figures.TIME_UNITS)):
        rows = read_csv(_csv(sweep_report, name))
        plan = class_figure(_csv(sweep_report, name), quantity, "t")
        scale = _scale(plan.unit, units)
        points = [(p, i) for p in plan.panels for i in range(len(p.T))]
        assert len(points) == len(rows) == 3 * 5
        for (panel, i), row in zip(points, rows):
            assert (panel.protocol, panel.T[i]) == (row["protocol"], int(row["T"]))
            total = float(row["total"])
            assert total > 0
            assert panel.total[i] * scale == pytest.approx(total, rel=1e-12)
            # the stacked shares, scaled back by the total, are the CSV's class columns, and sum to it
            assert sum(panel.shares[c][i] for c in plan.classes) == pytest.approx(100, rel=1e-9)
            for c in plan.classes:
                assert panel.shares[c][i] / 100 * total == pytest.approx(float(row[c]), rel=1e-9, abs=1e-12)
            assert sum(float(row[c]) for c in row if c not in ("protocol", "T", "total")) == pytest.approx(total, rel=1e-9)
        # a class left out of the stack is zero everywhere; the stack keeps the report's class order
        left_out = [c for c in rows[0] if c not in ("protocol", "T", "total") and c not in plan.classes]
        assert all(float(r[c]) == 0 for r in rows for c in left_out)
        assert list(plan.classes) == [c for c in CLASS_COLOURS if c in plan.classes]


def test_one_panel_per_protocol_with_shared_axes_and_units(sweep_report, drawn):
    plan = class_figure(_csv(sweep_report, "latency-tiny-lan.csv"), "latency", "t")
    fig = drawn(plan)
    assert [p.protocol for p in plan.panels] == ["sweepfix", "crypten", "puma"]
    totals, shares = fig.axes[0::2], fig.axes[1::2]
    assert len(fig.axes) == 2 * 3
    assert [ax.get_title() for ax in totals] == ["sweepfix", "crypten", "puma"]
    for ax, panel in zip(totals, plan.panels):
        (line,) = ax.get_lines()
        assert list(line.get_xdata()) == list(panel.T) and list(line.get_ydata()) == list(panel.total)
        assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
        assert ax.get_shared_y_axes().joined(ax, totals[0]) and ax.get_shared_x_axes().joined(ax, shares[0])
    for ax in shares:
        assert ax.get_xscale() == "log" and ax.get_yscale() == "linear" and ax.get_ylim() == (0, 100)
        assert ax.get_shared_y_axes().joined(ax, shares[0])
        # one stacked band per class, in the fixed colours
        assert [c.get_label() for c in ax.collections] == list(plan.classes)
        import matplotlib.colors as mc

        assert [mc.to_hex(c.get_facecolor()[0]) for c in ax.collections] == [CLASS_COLOURS[c] for c in plan.classes]
    labels = [ax.get_xlabel() for ax in fig.axes] + [ax.get_ylabel() for ax in fig.axes]
    assert all(UNIT.search(label) for label in labels if label)
    assert totals[0].get_ylabel() == f"latency ({plan.unit})" and shares[0].get_xlabel() == "context T (tokens)"
    assert shares[0].get_ylabel() == "share (%)"


def test_more_protocols_than_columns_wrap_into_rows(drawn):
    text = "protocol,T,softmax,linear,total\n" + "".join(
        f"p{k},{T},{T * T},{T},{T * T + T}\n" for k in range(4) for T in (4, 8, 16))
    plan = class_figure(text, "comm", "t")
    fig = drawn(plan)
    assert len(fig.axes) == 8 and [ax.get_title() for ax in fig.axes[0::2]] == ["p0", "p1", "p2", "p3"]
    assert plan.unit == "B" and plan.classes == ("linear", "softmax")


def test_figures_read_at_700px(sweep_report, aero_report, drawn):
    from matplotlib.text import Text

    for plan in (class_figure(_csv(sweep_report, "comm-tiny.csv"), "comm", "t"),
                 ablation_figure(_csv(aero_report, "aero-ablation.csv"), "t")):
        fig = drawn(plan)
        assert tuple(fig.get_size_inches()) == (plots.WIDTH_IN, pytest.approx(fig.get_size_inches()[1]))
        assert plots.WIDTH_IN * plots.DPI == 700
        texts = [t for t in fig.findobj(Text) if t.get_text() and t.get_visible()]
        assert texts and min(t.get_fontsize() for t in texts) >= 9
        # the legend sits outside every axes, so it covers no data
        (legend,) = fig.legends
        box = legend.get_window_extent()
        assert not any(box.overlaps(ax.get_window_extent()) for ax in fig.axes)


def test_ablation_bars_equal_the_ablation_table(aero_report, drawn):
    md, built = aero_report
    text = _csv(aero_report, "aero-ablation.csv")
    plan = ablation_figure(text, "t")
    steps = aero_steps(load_spec("gpt2"))
    # the CSV holds the ablation's numbers
    rows = read_csv(text)
    expected = [(t, r) for t in ("sweepfix", "bumblebee")
                for r in ablation(steps, 32, estimate_cost(load_protocol(FIXTURE if t == "sweepfix" else t),
                                                           get_network("wan"), allow_uncosted=True))]
    assert len(rows) == len(expected) == 2 * len(steps)
    for row, (t, r) in zip(rows, expected):
        assert (row["protocol"], row["network"], row["step"]) == (t, "wan", r.label)
        assert float(row["comm_bytes"]) == pytest.approx(r.comm_bytes, rel=1e-9)
        assert float(row["latency_s"]) == pytest.approx(r.latency_s, rel=1e-9)
    # one panel per protocol x network; the annotations are the markdown table's savings columns
    assert [p.title for p in plan.panels] == ["sweepfix over wan", "bumblebee over wan"]
    for panel, protocol in zip(plan.panels, ("sweepfix", "bumblebee")):
        table = built.markdown.split(f"### Under {protocol} over wan")[1].split("\n\n")[1].splitlines()[2:]
        cells = [[c.strip() for c in line.strip("|").split("|")] for line in table]
        assert [c[0] for c in cells] == list(panel.steps)
        assert [c[5] for c in cells] == list(panel.comm_x) and [c[7] for c in cells] == list(panel.latency_x)
    # the drawn bars are the plan's, on axes labelled with units
    fig = drawn(plan)
    lefts, rights = [ax for ax in fig.axes if ax.get_title()], [ax for ax in fig.axes if not ax.get_title()]
    assert len(lefts) == len(rights) == 2
    for left, right, panel, protocol in zip(lefts, rights, plan.panels, ("sweepfix", "bumblebee")):
        mine = [r for t, r in expected if t == protocol]
        scale = (_scale(panel.comm_unit, figures.BYTE_UNITS), _scale(panel.time_unit, figures.TIME_UNITS))
        assert [b.get_height() * scale[0] for b in left.patches] == pytest.approx([r.comm_bytes for r in mine])
        assert [b.get_height() * scale[1] for b in right.patches] == pytest.approx([r.latency_s for r in mine])
        annotations = [t.get_text() for t in left.texts] + [t.get_text() for t in right.texts]
        assert annotations == list(panel.comm_x) + list(panel.latency_x)
        assert (left.get_ylabel(), right.get_ylabel()) == (panel.comm_label, panel.latency_label)
        assert left.get_shared_x_axes().joined(left, lefts[0])
        assert UNIT.search(left.get_ylabel()) and UNIT.search(right.get_ylabel())
    assert "![AERO ablation" in built.markdown and "a/aero-ablation.png" in built.markdown


def test_each_png_is_drawn_from_its_csv(tmp_path, monkeypatch):
    """The PNGs come from the CSV text stored beside them (a reader can redraw them)."""
    drawn_plans = []
    monkeypatch.setattr(plots, "png", lambda plan: drawn_plans.append(plan) or b"png")
    config = ReportConfig(name="r", specs=("tiny",), protocols=(FIXTURE,), networks=("lan", "wan"), context=16,
                          sweep="4,8")
    built = build_report(config, tmp_path / "r.md")
    csvs = built.data_files()
    assert sorted(p.name for p in csvs) == ["comm-tiny.csv", "latency-tiny-lan.csv", "latency-tiny-wan.csv"]
    for (path, text), plan in zip(csvs.items(), drawn_plans, strict=True):
        quantity = path.name.split("-")[0]
        assert plan == class_figure(text, quantity, plan.title)
        assert built.files[path.with_suffix(".png")] == b"png"


def test_building_a_report_without_plots_imports_no_matplotlib():
    code = ("import sys\nfrom picost.report.markdown_report import ReportConfig, build_report\n"
            f"build_report(ReportConfig(name='r', specs=('tiny',), protocols=({FIXTURE!r},), networks=('lan',), "
            "context=8, sweep='4,8'), 'r.md', plots=False)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

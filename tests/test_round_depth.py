"""Round depth (issue 10): the ``messages`` field of a protocol table is shown and never costed;
the depth of an op is the slope of its wall time over the one-way delay (synthetic data always;
real SPU parties in netlab namespaces when root and the SPU environment are there)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

from picost.analysis.estimate import estimate
from picost.cost.protocol_table import load_protocol
from picost.model.ops import Block, Holder, Op
from picost.netlab.depth import fit_line, summarize
from picost.netlab.lab import netlab_unavailable_reason
from picost.report.protocol_docs import markdown
from picost.spu import bridge

from tests.test_protocols import GOOD, write

REPO = Path(__file__).resolve().parent.parent
RELU = Op("x", "relu", Block.FFN, 0, {"n": 10}, (Holder.SHARED,))


def test_messages_is_loaded_shown_and_never_costed(tmp_path):
    with_messages = GOOD.format(name="t").replace("    rounds: 3\n", "    rounds: 3\n    messages: \"2 * n\"\n")
    table = load_protocol(write(tmp_path, with_messages))
    plain = load_protocol(write(tmp_path, GOOD.format(name="u"), "u"))
    entry = table.entries["relu"]
    assert entry.formulas["messages"].text == "2 * n"
    assert table.values(entry, {"n": 10}, "x")["messages"] == 20
    (cost,) = table.cost(RELU)
    (base,) = plain.cost(RELU)
    assert (cost.comm_bytes, cost.rounds) == (base.comm_bytes, base.rounds) == (640, 3)
    assert "messages (info)" in markdown(table) and "`2 * n`" in markdown(table)


def test_messages_do_not_change_a_latency(tmp_path):
    """The shipped SPU tables carry messages; the same table without them estimates the same."""
    import re

    text = (REPO / "protocols" / "spu-semi2k.yaml").read_text()
    assert "messages:" in text
    stripped = re.sub(r"^ *messages: .*\n", "", text, flags=re.M)
    path = tmp_path / "spu-semi2k.yaml"
    path.write_text(stripped)
    with_messages = estimate("tiny", "spu-semi2k", network="wan", context=8)
    without = estimate("tiny", path, network="wan", context=8)
    assert with_messages.totals.latency_s == without.totals.latency_s
    assert with_messages.totals.rounds == without.totals.rounds


def test_a_bad_messages_formula_is_a_located_error(tmp_path):
    from picost.errors import UserError

    with pytest.raises(UserError) as err:
        load_protocol(write(tmp_path, GOOD.format(name="t").replace("    rounds: 3\n",
                                                                    "    rounds: 3\n    messages: \"rows\"\n")))
    assert "messages" in str(err.value)


def test_slope_of_synthetic_walls_is_the_depth():
    delays = [0.0, 0.02, 0.04]
    fit = fit_line(delays, [0.005 + 7 * d for d in delays])
    assert math.isclose(fit.slope, 7.0) and math.isclose(fit.intercept_s, 0.005) and fit.max_residual_s < 1e-12
    # three noisy runs per delay, one slowed by load: the median ignores it, the minimum too
    walls = {d: [0.005 + 7 * d + e for e in (0.0004, -0.0003, 0.0001)] for d in delays}
    walls[0.04][0] += 0.5
    s = summarize(walls)
    assert abs(s["depth_delays"] - 7) < 0.05 and abs(s["depth_delays_min"] - 7) < 0.05
    assert len(s["median_walls_s"]) == 3


def test_slope_needs_two_delays():
    with pytest.raises(ValueError):
        fit_line([0.02, 0.02], [0.1, 0.2])


UNAVAILABLE = netlab_unavailable_reason() or (None if bridge.spu_available() else
                                             "SPU environment missing: bash scripts/setup-spu.sh")


@pytest.mark.skipif(UNAVAILABLE is not None, reason=f"SPU depth in a netlab: {UNAVAILABLE}")
def test_spu_truncation_takes_one_one_way_delay():
    """The harness on a known depth: SEMI2K's truncation sends one message and waits for it (one
    flight), an add sends nothing."""
    from picost.netlab.spu_runs import time_spu_cases

    cases = [{"kind": "truncation", "dims": {"n": 1024}}, {"kind": "add", "dims": {"n": 1024},
                                                           "operands": ["shared", "shared"]}]
    trunc, add = time_spu_cases("SEMI2K", cases, [0.0, 0.03], str(bridge.spu_python()), repeats=3)
    assert abs(trunc["depth_delays"] - 1) < 0.3, trunc
    assert abs(add["depth_delays"]) < 0.3, add
    assert trunc["max_send_actions"] == 1 and add["max_send_actions"] == 0


def test_depth_formula_from_points():
    """benchmarks/spu_fit.py's depth formulas: the smallest size where the message count is the
    same (a big op's extra transport round trips are not protocol depth), c * b for a batched
    matmul run product after product, a line in log2(cols) for row ops."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import spu_fit

    assert spu_fit.depth_formula("gelu", [({"n": 1024}, 187.2, 181), ({"n": 16384}, 222.8, 181)]) == "187"
    assert spu_fit.depth_formula("matmul", [({"b": 1, "m": 16, "k": 64, "n": 16}, 2.0, 2),
                                            ({"b": 4, "m": 16, "k": 64, "n": 16}, 7.97, 8)]) == "2 * b"
    formula = spu_fit.depth_formula("softmax", [({"rows": 8, "cols": 16}, 95.7, 95),
                                                ({"rows": 8, "cols": 256}, 128.4, 127)])
    assert formula == "ceil(64 + 8 * log2(cols))"

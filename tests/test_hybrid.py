"""Hybrid protocols: op classes costed by different tables, conversion rows between tables whose
share domains differ (numbers checked by hand), refused combinations (one located error, exit 2),
the file form, options on parts, generation and closed forms of a hybrid."""

from __future__ import annotations

import json
import math

import pytest

from picost.analysis.closed_forms import class_forms
from picost.analysis.estimate import estimate
from picost.analysis.generation import generation
from picost.cost.conversions import load_conversions, ring_steps
from picost.cost.hybrid import load_costing
from picost.cost.network import get_network
from picost.errors import UserError
from picost.model.load import load_spec
from tests.conftest import run_cli

HYBRID = "bumblebee,activation=sigma"  # BumbleBee everywhere but the FFN activation (SIGMA's GeLU)


def test_conversion_rows_by_hand():
    spec = load_spec("tiny")
    T = 8
    est = estimate(spec, HYBRID, "wan", T)
    rows = {r.name: r for r in est.rows}
    lam = 128  # OT security parameter (conversions.yaml params.lam)
    n = T * spec.ffn_width  # elements out of the FFN's up projection into the GELU, and out of the GELU
    # bumblebee: Z_2^64 with 18 fractional bits -> sigma: Z_2^50 with 12: drop s = 6 bits. Reduce each
    # share to 50 + 6 = 56 bits (local, free), then truncate-and-reduce 56 -> 50 bits:
    # lam*(s + 1) + 13*s + l bits per element, ceil(log2(s)) + 2 rounds
    s, l = 18 - 12, 56
    assert rows["L0.ffn.act.reduce"].comm_bytes == 0 and rows["L0.ffn.act.reduce"].rounds == 0
    down = rows["L0.ffn.act.truncate_reduce"]
    assert down.comm_bytes == n * (lam * (s + 1) + 13 * s + l) / 8 == 2048 * 1030 / 8 == 263_680
    assert down.rounds == math.ceil(math.log2(s)) + 2 == 5
    assert down.table == "conversions" and down.op_class == "conversion" and down.dims["n"] == n
    # back: sigma's 50-bit shares extended to 64 - 6 = 58 bits (signed extension:
    # lam*(m + 1) + 13*m + r bits, ceil(log2(m)) + 2 rounds), then shifted left 6 bits into Z_2^64 (local)
    m, r = 50, 58
    up = rows["L0.ffn.down.extend"]
    assert up.comm_bytes == n * (lam * (m + 1) + 13 * m + r) / 8 == 2048 * 7236 / 8 == 1_852_416
    assert up.rounds == math.ceil(math.log2(m)) + 2 == 8
    assert rows["L0.ffn.down.shift_up"].comm_bytes == 0
    wan = get_network("wan")
    assert up.latency_s == pytest.approx(up.comm_bytes * 8 / wan.bandwidth_bps + up.rounds * wan.round_s, rel=1e-12)
    # the conversions sit between the up projection (bumblebee) and the GELU (sigma), and after the GELU
    # (bumblebee's linear entries include their truncation: no .trunc rows since it follows spu-cheetah)
    names = [x.name for x in est.rows]
    at = names.index("L0.ffn.act")
    assert names[at - 3:at + 4] == ["L0.ffn.up", "L0.ffn.act.reduce", "L0.ffn.act.truncate_reduce",
                                    "L0.ffn.act", "L0.ffn.down.extend", "L0.ffn.down.shift_up", "L0.ffn.down"]
    assert sum(x.op_class == "conversion" for x in est.rows) == 4 * spec.n_layers


def test_each_part_costs_its_rows_as_alone():
    """A row costed by a part has the numbers that table gives it alone; the totals are those rows
    plus the conversions."""
    hybrid = estimate("tiny", HYBRID, "wan", 8)
    alone = {t: {r.name: r for r in estimate("tiny", t, "wan", 8, allow_uncosted=True).rows}
             for t in ("bumblebee", "sigma")}
    conv = 0
    for row in hybrid.rows:
        if row.table == "conversions":
            conv += row.comm_bytes
            continue
        want = alone[row.table][row.name]
        assert (row.comm_bytes, row.rounds, row.source) == (want.comm_bytes, want.rounds, want.source), row.name
        assert row.table == ("sigma" if row.op_class == "activation" else "bumblebee")
    parts = sum(r.comm_bytes for r in hybrid.rows if r.table != "conversions")
    assert hybrid.totals.comm_bytes == pytest.approx(parts + conv, rel=1e-12) and conv > 0


def test_same_domain_tables_need_no_conversion():
    est = estimate("tiny", "linear=crypten,nonlinear=shaft", "lan", 8)  # both Z_2^64, 16 fractional bits
    assert not [r for r in est.rows if r.op_class == "conversion"]
    assert {r.table for r in est.rows} == {"crypten", "shaft"}


@pytest.mark.parametrize("l1,f1,l2,f2", [(64, 18, 50, 12), (50, 12, 64, 18), (64, 18, 64, 16), (64, 16, 64, 18),
                                          (37, 12, 64, 16), (64, 16, 37, 12), (50, 12, 37, 12), (37, 12, 50, 12),
                                          (40, 20, 64, 12), (64, 12, 40, 20)])
def test_ring_steps_land_on_the_target_domain(l1, f1, l2, f2):
    """Track (ring bits, fractional bits) through the planned steps: each step starts where the
    previous ended and the chain ends at the target."""
    ring, frac = l1, f1
    for step, d in ring_steps(l1, f1, l2, f2):
        if step == "reduce":
            assert d["l"] == ring and d["r"] < ring
            ring = d["r"]
        elif step == "truncate_reduce":
            assert d["l"] == ring and d["s"] > 0
            ring, frac = ring - d["s"], frac - d["s"]
        elif step == "extend":
            assert d["m"] == ring and d["r"] > ring
            ring = d["r"]
        else:
            assert step == "shift_up" and d["r"] - d["s"] == ring
            ring, frac = d["r"], frac + d["s"]
    assert (ring, frac) == (l2, f2)


def test_refused_3pc_with_2pc_names_the_missing_conversion():
    with pytest.raises(UserError) as err:
        load_costing("linear=bumblebee,nonlinear=spu-aby3")
    msg = err.value.message
    assert "no conversion" in msg and "spu-aby3" in msg and "3PC replicated" in msg and "2PC additive" in msg
    proc = run_cli("estimate", "tiny", "-p", "linear=bumblebee,nonlinear=spu-aby3", "-n", "lan")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("error:") and "no conversion" in proc.stderr and proc.stderr.count("\n") == 1


@pytest.mark.parametrize("text,needle", [
    ("linear=bumblebee", "no table for op class(es) softmax, activation, norm"),
    ("lineer=bumblebee,nonlinear=sigma", "did you mean 'linear'"),
    ("bumblebee,crypten,activation=sigma", "two default tables"),
    ("linear=bumblebee,nonlinear=bumblebee", "at least two tables"),
    ("linear=bumblebee,nonlinear=crypten", "delays_per_round differ"),
    ("linear=bumblebee,nonlinear=plaintext", "no conversion"),
    ("linear=,nonlinear=sigma", "CLASS=TABLE"),
])
def test_bad_compositions_are_one_error(text, needle):
    with pytest.raises(UserError) as err:
        load_costing(text)
    assert needle in err.value.message


def test_file_form_equals_inline(tmp_path):
    path = tmp_path / "bb-sigma.yaml"
    path.write_text("name: bb-sigma\ndescription: BumbleBee with SIGMA's GeLU\n"
                    "compose: {default: bumblebee, activation: sigma}\n")
    a = estimate("tiny", str(path), "wan", 8)
    b = estimate("tiny", HYBRID, "wan", 8)
    assert [(r.name, r.table, r.comm_bytes) for r in a.rows] == [(r.name, r.table, r.comm_bytes) for r in b.rows]
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ncompose: {linear: bumblebee, nonlinear: sigma}\nconversion: x.yaml\n")
    with pytest.raises(UserError) as err:
        load_costing(str(bad))
    assert "did you mean 'conversions'" in err.value.message and err.value.line == 3


def test_options_reach_the_parts():
    base = load_costing(HYBRID)
    option = next(iter(base.parts["bumblebee"].options))
    default = base.parts["bumblebee"].options[option].default
    other = next(c for c in base.parts["bumblebee"].options[option].choices if c != default)
    chosen = load_costing(HYBRID, {option: other})
    assert chosen.parts["bumblebee"].chosen[option] == other
    assert f"bumblebee[{option}={other}]" in chosen.label
    with pytest.raises(UserError):
        load_costing(HYBRID, {"no_such_option": "x"})


def test_json_records_the_composition_and_each_rows_table():
    proc = run_cli("estimate", "tiny", "-p", HYBRID, "-n", "wan", "-T", "8", "-f", "json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    comp = data["protocol"]["composition"]
    assert comp["classes"]["activation"] == "sigma" and comp["classes"]["linear"] == "bumblebee"
    pairs = {(c["from"], c["to"]): [s["step"] for s in c["steps"]] for c in comp["conversions"]}
    assert pairs == {("bumblebee", "sigma"): ["reduce", "truncate_reduce"], ("sigma", "bumblebee"): ["extend", "shift_up"]}
    assert {r["table"] for r in data["rows"]} == {"bumblebee", "sigma", "conversions"}
    assert data["by_class"]["conversion"]["comm_bytes"] == sum(r["comm_bytes"] for r in data["rows"]
                                                               if r["class"] == "conversion")


def test_generation_of_a_hybrid_equals_its_step_estimates():
    spec = load_spec("tiny")
    gen = generation(spec, HYBRID, "wan", 6, 3)
    decode = spec.model_copy(update={"phase": "decode"})
    want = estimate(spec, HYBRID, "wan", 6).totals.comm_bytes + sum(
        estimate(decode, HYBRID, "wan", 6 + i).totals.comm_bytes for i in range(3))
    assert gen.totals()["comm_bytes"] == pytest.approx(want, rel=1e-12)
    assert gen.steps.by_class["conversion"]["comm_bytes"].sum() > 0


def test_closed_forms_of_a_hybrid_match_the_estimate():
    spec = load_spec("tiny")
    table = load_costing(HYBRID)
    cf = class_forms(spec, table)
    est = estimate(spec, table, "wan", 12)
    for cls, t in est.by("class").items():
        assert float(cf.forms[cls]["comm_bytes"].subs(cf.T, 12)) == pytest.approx(t.comm_bytes, rel=1e-12), cls


def test_conversions_table_entries_cite_sources():
    conv = load_conversions()
    assert set(conv.entries) == {"reduce", "shift_up", "truncate_reduce", "extend"}
    for entry in conv.entries.values():
        assert entry.source.startswith("derived:")


def test_report_of_a_hybrid_lists_each_parts_formulas(tmp_path):
    out = tmp_path / "h.md"
    proc = run_cli("report", "tiny", "-p", HYBRID, "-n", "wan", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    formulas = text[text.index("## Formulas"):]
    assert "### bumblebee" in formulas and "### sigma" in formulas and "### conversions" in formulas
    assert "No entry" not in formulas

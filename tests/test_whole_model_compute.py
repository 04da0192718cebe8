"""Issue 20's whole-model check, re-run against today's tables without the engines: every
committed whole forward pass (``scripts/latency_check.py --engine E --spec S --context T
--compute-only``: parties as processes in netlab namespaces, unshaped, no delay line) against the
table's compute summed over the estimate's rows, within 25 %."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from picost.model.load import load_spec
from picost.netlab.engine_latency import ENGINE_TOLERANCE, WHOLE_MODEL_COMPUTE, EngineRun

REPO = Path(__file__).resolve().parent.parent


def _records() -> list[dict]:
    """The fastest run per (engine, spec, context)."""
    best: dict[tuple, dict] = {}
    for r in map(json.loads, WHOLE_MODEL_COMPUTE.read_text().splitlines()):
        key = (r["engine"], r["spec"], r["context"])
        if key not in best or r["measured"]["min_wall_s"] < best[key]["measured"]["min_wall_s"]:
            best[key] = r
    return list(best.values())


RECORDS = _records()


def test_gpt2_shaped_whole_models_were_run_under_semi2k_and_cheetah():
    runs = {(r["engine"], r["context"]) for r in RECORDS if "gpt2" in r["spec"]}
    assert {("spu-semi2k", 128), ("spu-cheetah", 128)} <= runs


@pytest.mark.parametrize("record", RECORDS, ids=[f"{r['engine']}-{Path(r['spec']).stem}-T{r['context']}" for r in RECORDS])
def test_table_compute_of_the_whole_model_is_within_25_percent_of_the_run(record):
    spec = record["spec"]
    model = load_spec(REPO / spec if (REPO / spec).is_file() else spec)
    modeled = EngineRun(record["engine"], model, record["context"]).compute_s()
    measured = record["measured"]["min_wall_s"]
    assert abs(modeled / measured - 1) <= ENGINE_TOLERANCE, (
        f"{record['engine']} {spec} T={record['context']}: table {modeled:.1f} s, run {measured:.1f} s "
        f"({modeled / measured:.2f}x)")

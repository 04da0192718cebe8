"""Whole tiny models end to end through the real engine (one launch for all variants, prefill
and decode):
every row predicted == measured, the lowering's ops in its order, logits vs the plaintext
reference on the same weights, next-token agreement, and only outputs revealed to the client."""

from __future__ import annotations

from pathlib import Path

import pytest

from picost.mpc.launcher import model_job, run_batch
from picost.mpc.validate import DEFAULT_SPECS, check_model, token_ids
from picost.model.load import load_spec
from tests.mpc_views import looks_uniform, trits_look_uniform, view

CONTEXT = 3
STRUCTURES = tuple(str(p) for p in sorted((Path(__file__).parent / "data" / "mpc_specs").glob("*.yaml")))
"""Extra specs for structure coverage: parallel residual, post-norm, GEGLU, pruned FFN, partial
RoPE, MQA, no causal mask, head full / none, no argmax, decode against a KV cache."""
SPECS = DEFAULT_SPECS + STRUCTURES
LOGIT_TOLERANCE = 0.02
"""Max |secure - plaintext| logit error, relative to the largest |logit| (measured: 1e-3 or less
for these variants; spline approximations and fixed point with f = 16)."""


@pytest.fixture(scope="module")
def checked():
    specs = {s: load_spec(s) for s in SPECS}
    ids = {s: token_ids(m.vocab_size, 1 if m.phase == "decode" else CONTEXT) for s, m in specs.items()}
    runs = run_batch([model_job(s, ids[s], seed=2, cached=CONTEXT) for s in SPECS], timeout_s=60,
                     extra={"record_views": True})
    return {s: (check_model(s, ids[s], 2, run, context=CONTEXT), run) for s, run in zip(SPECS, runs)}


def test_variants_cover_the_issue():
    kinds = {s: {op.kind for op in __import__("picost.model.lower", fromlist=["lower"]).lower(load_spec(s), 2).ops}
             for s in DEFAULT_SPECS}
    assert {"gelu_tanh", "layernorm"} <= kinds["tiny"]
    assert "relu" in kinds["tiny-relu"]
    assert not kinds["tiny-smonly-fused"] & {"gelu", "gelu_tanh", "relu", "silu", "layernorm", "rmsnorm"}
    assert {"silu", "mul", "rmsnorm", "rope"} <= kinds["tiny-llama"]


@pytest.mark.parametrize("spec", SPECS, ids=[Path(s).stem for s in SPECS])
def test_every_row_matches_the_table(checked, spec):
    check, _ = checked[spec]
    assert check.op_order_ok
    bad = [(r.name, r.predicted, r.measured) for r in check.rows if not r.ok]
    assert not bad
    assert sum(r.measured["rounds"] for r in check.rows) > 50


@pytest.mark.parametrize("spec", SPECS, ids=[Path(s).stem for s in SPECS])
def test_logits_and_next_token_match_plaintext(checked, spec):
    check, _ = checked[spec]
    assert check.max_abs_error <= LOGIT_TOLERANCE * check.max_abs_logit
    if check.reference_token is None:
        assert check.next_token is None
    elif check.top2_margin > 2 * check.max_abs_error:  # the argmax is decided at this precision
        assert check.next_token == check.reference_token


@pytest.mark.parametrize("spec", SPECS, ids=[Path(s).stem for s in SPECS])
def test_client_gets_only_logits_and_token(checked, spec):
    _, run = checked[spec]
    assert set(run.results["client"]) == {"logits", "next_token", "frac_bits"}
    assert (run.results["client"]["next_token"] is None) == (not load_spec(spec).argmax)
    assert run.results["server"] == {} and run.results["dealer"] == {}
    assert run.stats["server"]["_output"]["bytes_sent"] > 0 and run.stats["client"]["_output"]["bytes_sent"] == 0


@pytest.mark.parametrize("spec", SPECS, ids=[Path(s).stem for s in SPECS])
def test_estimate_totals_equal_the_measured_run(checked, spec):
    from picost.analysis.estimate import estimate

    check, _ = checked[spec]
    totals = estimate(spec, "picost-2pc", "lan", context=CONTEXT).totals
    measured = {f: sum(r.measured[f] for r in check.rows) for f in
                ("bytes_client_to_server", "bytes_server_to_client", "rounds", "offline_bytes")}
    assert totals.bytes_client_to_server == measured["bytes_client_to_server"]
    assert totals.bytes_server_to_client == measured["bytes_server_to_client"]
    assert totals.comm_bytes == measured["bytes_client_to_server"] + measured["bytes_server_to_client"]
    assert totals.rounds == measured["rounds"] and totals.offline_bytes == measured["offline_bytes"]


@pytest.mark.parametrize("spec", SPECS, ids=[Path(s).stem for s in SPECS])
def test_each_partys_view_of_a_model_run_looks_uniform(checked, spec):
    # the server sees only masked values (no token id, no activation); the client only masked
    # weights and masked values until its outputs (op _output, head.argmax's final reveal)
    _, run = checked[spec]
    for role in ("server", "client"):
        words, trits = view(run, role)
        assert words.numel() > 1500 and looks_uniform(words), role
        assert trits_look_uniform(trits), role

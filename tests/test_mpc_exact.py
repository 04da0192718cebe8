"""The engine against picost-2pc, op by op: predicted == measured exactly (bytes per direction,
rounds, dealer bytes) for every op kind at three shapes; outputs vs plaintext; and the parties'
views (what each receives) independent of the other's secrets. The whole module runs once per
engine construction (picost-2pc's options ``comparison``: tables, tree, and ``truncation``: exact,
local, every pair; ``exp``: limit under two of them), as CrypTen runs one behaviour suite under
every protocol variant.

One launch of the three parties per construction serves the module (the op suite plus a privacy job).
"""

from __future__ import annotations

import pytest
import torch

from picost.mpc.launcher import run_batch
from picost.mpc.protocols import COMPARISONS, TRUNCATIONS
from picost.mpc.oplab import plaintext
from picost.mpc.ring import encode
from picost.mpc.validate import SHAPES, compare, ops_job, suite_ops
from picost.model.ops import Block, Holder, Op
from picost.cost.protocol_table import load_protocol
from tests.mpc_views import bits_look_uniform, looks_uniform, trits_look_uniform, uncorrelated, view

SUITE = suite_ops()
PRIVACY = [Op("priv.relu", "relu", Block.FFN, None, {"n": 3000}, (Holder.SHARED,)),
           Op("priv.linear", "linear", Block.FFN, None, {"m": 2, "k": 48, "n": 48}, (Holder.SHARED, Holder.SERVER))]


CONSTRUCTIONS = ([{"comparison": c, "truncation": t, "exp": "spline"} for c in COMPARISONS for t in TRUNCATIONS]
                 + [{"comparison": "tables", "truncation": "exact", "exp": "limit"},
                    {"comparison": "tree", "truncation": "local", "exp": "limit"}])


@pytest.fixture(scope="module", params=CONSTRUCTIONS, ids=lambda o: "-".join(o.values()))
def options(request):
    return request.param


@pytest.fixture(scope="module")
def comparison(options):
    return options["comparison"]


@pytest.fixture(scope="module")
def table(options):
    return load_protocol("picost-2pc", options)


@pytest.fixture(scope="module")
def runs(options):
    suite, privacy = run_batch([ops_job(SUITE, seed=5, options=options), ops_job(PRIVACY, seed=6, options=options)],
                               timeout_s=60, extra={"record_views": True})
    return suite, privacy


@pytest.fixture(scope="module")
def checks(runs, table):
    return {c.name: c for c in compare(SUITE, runs[0].stats, table)}


def test_every_kind_is_in_the_suite_at_three_shapes():
    from picost.model.ops import KINDS

    not_in_engine = {"tanh", "topk", "reveal"}  # BERT's pooler, MoE routers and their opening: the engine has none
    assert set(SHAPES) == set(KINDS) - not_in_engine
    assert all(len({tuple(sorted(d.items())) for d in SHAPES[k]}) >= 3 for k in SHAPES)
    # so picost-2pc has no entry for them (none written, none derived): it refuses them
    assert not not_in_engine & set(load_protocol("picost-2pc").entries)


def test_every_table_row_was_measured(runs, checks, table):
    expected = [cost.name for op in SUITE for cost in table.cost(op)]
    assert list(checks) == expected  # no measured row the table does not predict, none missing


@pytest.mark.parametrize("row", [c.name for op in SUITE for c in load_protocol("picost-2pc").cost(op)])
def test_predicted_equals_measured(checks, row):
    check = checks[row]
    assert check.predicted == check.measured, f"{row}: predicted {check.predicted}, measured {check.measured}"


def test_nonlinear_ops_really_communicate(checks):
    # guards against a vacuous match (e.g. both sides zero)
    for name in ("relu.2", "gelu.2", "softmax.2", "layernorm.2", "argmax.1"):
        assert checks[name].measured["bytes_client_to_server"] > 0 and checks[name].measured["rounds"] >= 2


TOLERANCE = {"gelu": 4e-3, "gelu_tanh": 4e-3, "silu": 2e-3, "argmax": 0.0}
"""Max abs error vs float64 plaintext: spline errors (splines.py) for activations, else 1e-3
(fixed point with f = 16 and truncation errors of one ulp)."""


LIMIT_SOFTMAX_TOLERANCE = 3e-3
"""Softmax with the limit exp (abs error up to 1.5e-3 per exp: tests/test_mpc_units.py)."""


@pytest.mark.parametrize("op", SUITE, ids=[op.name for op in SUITE])
def test_output_matches_plaintext(runs, op, options):
    client, server = runs[0].results["client"][op.name], runs[0].results["server"][op.name]
    want = plaintext(op.kind, dict(op.dims), client, server)
    got = client["out"]
    assert got.shape == want.shape
    limit = LIMIT_SOFTMAX_TOLERANCE if op.kind == "softmax" and options["exp"] == "limit" else TOLERANCE.get(op.kind, 1e-3)
    assert (got.double() - want.double()).abs().max().item() <= limit


# -- views ------------------------------------------------------------------------------------

def test_the_view_tests_catch_a_leaked_plaintext(runs):
    x = runs[1].results["client"]["priv.relu"]["x"]
    leaked = encode(x, 16)  # what the server would see if the client sent its input in the clear
    assert not looks_uniform(leaked)
    assert not uncorrelated(x, leaked << 20)  # even scaled into the top bits


def test_servers_view_is_independent_of_the_clients_input(runs, comparison):
    suite, privacy = runs
    for run in (suite, privacy):
        words, small = view(run, "server")
        assert words.numel() > 1000 and looks_uniform(words)
    x = privacy.results["client"]["priv.relu"]["x"]
    relu_msgs = [t for name, t in privacy.views["server"] if name == "priv.relu" and t.dtype == torch.int64]
    assert relu_msgs[0].numel() == x.numel() and uncorrelated(x, relu_msgs[0])
    small = [t for name, t in privacy.views["server"] if name == "priv.relu" and t.dtype == torch.uint8]
    if comparison == "tables":
        assert len(small) == 1 and trits_look_uniform(small[0].reshape(-1))  # the masked trits: a byte per element
    else:  # the AND rounds' opened bits (9, 4 of them per element) and o = beta xor s (1)
        assert [bits_look_uniform(t, valid) for t, valid in zip(small, (9, 4, 1))] == [True] * 3


def test_clients_view_is_independent_of_the_servers_weights(runs):
    suite, privacy = runs
    for run in (suite, privacy):
        words, _ = view(run, "client")
        assert words.numel() > 1000 and looks_uniform(words)
    w = privacy.results["server"]["priv.linear"]["w"]
    seen = [t for name, t in privacy.views["client"] if name == "priv.linear"][0]
    assert seen.numel() == w.numel() and uncorrelated(w, seen)


def test_client_learns_only_outputs(runs):
    # everything the client received outside the ops' masked messages is its own outputs
    suite, _ = runs
    names = {name for name, _ in suite.views["client"]}
    assert names <= {op.name for op in SUITE} | {f"{op.name}.trunc" for op in SUITE} | {"_output", "_done", "_ready"}
    ready = [t for name, t in suite.views["client"] if name == "_ready"]
    assert ready and all(t.numel() == 1 and int(t) == 0 for t in ready)  # the per-op start signal: one zero word
    outputs = [t for name, t in suite.views["client"] if name == "_output"]
    produced = [op for op in SUITE if op.kind != "argmax"]
    assert len(outputs) == len(produced)  # one reveal per op result, nothing else revealed

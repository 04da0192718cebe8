"""A private generation on the real engine (prefill, then decode steps on the cache it left)
equals picost-2pc's prediction exactly: every row of every step, and the generation totals of
picost.analysis.generation (bytes per direction, rounds, offline bytes)."""

from __future__ import annotations

import pytest

from picost.mpc.generate import check_generation, generation_job, split_stats
from picost.mpc.launcher import run_local
from picost.errors import UserError

SPEC, IDS, NEW = "tiny-llama", [4, 9], 2


@pytest.fixture(scope="module")
def checked():
    run = run_local(generation_job(SPEC, IDS, NEW, seed=1), timeout_s=120)
    return check_generation(SPEC, IDS, NEW, 1, run), run


def test_every_step_row_and_the_totals_equal_the_prediction(checked):
    check, run = checked
    assert check.op_order_ok
    assert [r.name for r in check.rows if not r.ok] == []
    assert check.predicted == check.measured and None not in check.predicted.values()
    assert check.ok
    # each step was measured apart: the decode steps' attention grows with the cache
    steps = [split_stats(run.stats, i)["client"] for i in range(NEW + 1)]
    assert all(steps) and len(check.tokens) == NEW + 1


def test_a_wrong_prediction_is_caught(checked):
    _, run = checked
    other = check_generation(SPEC, IDS, NEW - 1, 1, run)  # one step fewer predicted
    assert not other.ok


def test_bad_generation_jobs_are_user_errors():
    with pytest.raises(UserError, match="new tokens"):
        generation_job("tiny", [1], 0)
    with pytest.raises(UserError, match="token ids"):
        generation_job("tiny", [10**6], 1)

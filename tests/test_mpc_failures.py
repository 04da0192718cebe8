"""A party that dies or stops answering makes the others fail with a clear error, in bounded
time; the launcher leaves no process behind."""

from __future__ import annotations

import time

import pytest

from picost.mpc.launcher import MpcRunError, model_job, run_local

TIMEOUT_S = 2.0
BOUND_S = 60.0
"""Generous bound for a failing launch (process start-up under load included)."""


def test_killed_server_gives_a_clear_error_quickly():
    job = {**model_job("tiny-relu", [1, 2]), "debug_crash": {"role": "server", "op": "L0.attn.softmax"}}
    start = time.monotonic()
    with pytest.raises(MpcRunError) as err:
        run_local(job, timeout_s=TIMEOUT_S)
    assert time.monotonic() - start < BOUND_S
    text = str(err.value)
    assert "client: the server closed the connection" in text and "L0.attn.softmax" in text
    assert "dealer" in text


def test_silent_server_times_out_with_a_clear_error():
    job = {**model_job("tiny-relu", [1, 2]), "debug_stall": {"role": "server", "seconds": 300}}
    start = time.monotonic()
    with pytest.raises(MpcRunError) as err:
        run_local(job, timeout_s=TIMEOUT_S)
    elapsed = time.monotonic() - start
    assert elapsed < BOUND_S
    assert f"the server did not answer within {TIMEOUT_S:g} s" in str(err.value)
    assert "stopped by the launcher" in str(err.value)  # the stalled process was ended, not left running

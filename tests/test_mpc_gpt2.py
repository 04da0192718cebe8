"""GPT-2 small with all 12 layers through the real engine at T = 16 (about a minute on 2 cores,
6 GB over the three processes): every row predicted == measured, the next token the reference's."""

from __future__ import annotations

from picost.mpc.validate import run_validation
from tests.test_model_setup import _weight_elements


def test_gpt2_all_layers_at_16_tokens_is_exact():
    v = run_validation(["gpt2"], context=16, include_ops=False, timeout_s=600)
    m = v.models[0]
    assert v.ok and m.op_order_ok and len(m.rows) == 246
    bad = [r.name for r in m.rows if not r.ok]
    assert bad == []
    assert sum(r.measured["setup_bytes"] for r in m.rows) == 8 * _weight_elements("gpt2")  # 1,297,188,864
    assert m.next_token == m.reference_token
    assert m.max_abs_error < 0.01 * m.max_abs_logit
    assert all(b < 6 * 2**30 for b in m.peak_rss_bytes.values())  # streamed: one op's material at a time

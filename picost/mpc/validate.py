"""Predicted (``protocols/picost-2pc.yaml``) vs measured (the engine) costs, row by row.

A row is an op or its ``.trunc`` truncation, as in the estimate. Measured: the client's sent
bytes (client -> server), the server's (server -> client), the rounds (both parties must agree),
the dealer's bytes (offline) and the server's one-time model setup bytes (its masked weights).
Everything must be equal, exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from picost.model.ops import Block, Holder, Op

PROTOCOL = "picost-2pc"
FIELDS = ("bytes_client_to_server", "bytes_server_to_client", "rounds", "offline_bytes", "setup_bytes")


@dataclass(frozen=True)
class RowCheck:
    """One row: predicted and measured values per field of :data:`FIELDS`."""

    name: str
    kind: str
    predicted: dict[str, int | None]
    measured: dict[str, int | None]
    wall_s: float

    @property
    def ok(self) -> bool:
        return all(self.predicted[f] == self.measured[f] for f in FIELDS)


def measured_rows(stats: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per op row (names starting with '_' are setup, inputs and outputs, left out)."""
    out = {}
    for name in stats["client"]:
        if name.startswith("_"):
            continue
        c, s = stats["client"][name], stats["server"].get(name, {})
        d = stats["dealer"].get(name, {})
        rounds = c["rounds"] if c["rounds"] == s.get("rounds") else None  # disagreement = mismatch
        out[name] = {"bytes_client_to_server": c["bytes_sent"], "bytes_server_to_client": s.get("bytes_sent"),
                     "rounds": rounds, "offline_bytes": d.get("offline_bytes", 0),
                     "setup_bytes": s.get("setup_bytes", 0),
                     "wall_s": max(c["wall_s"], s.get("wall_s", 0.0))}
    return out


def compare(ops: Iterable[Op], stats: dict[str, dict[str, dict[str, Any]]], table: Any = None,
            weights_set_up: bool = False) -> list[RowCheck]:
    """Check every row the table predicts for ``ops`` against the measurements; a measured row
    the table does not predict is a failed check too. ``weights_set_up``: an earlier pass (a
    generation's earlier step) already set the model's weights up, so no row has setup bytes."""
    from picost.cost.protocol_table import load_protocol

    table = load_protocol(table or PROTOCOL)
    measured = measured_rows(stats)
    checks, seen = [], set()
    for op in ops:
        for cost in table.cost(op):
            m = measured.get(cost.name)
            seen.add(cost.name)
            predicted = {f: _int(getattr(cost, f)) for f in FIELDS}
            # no entry: the op has no setup; once set up, the weights are not sent again
            predicted["setup_bytes"] = 0 if weights_set_up else _int(cost.setup_bytes or 0)
            got = {f: (m or {}).get(f) for f in FIELDS}
            checks.append(RowCheck(cost.name, cost.kind, predicted, got, (m or {}).get("wall_s", 0.0)))
    for name, m in measured.items():
        if name not in seen:
            checks.append(RowCheck(name, "?", {f: None for f in FIELDS}, {f: m[f] for f in FIELDS}, m["wall_s"]))
    return checks


def _int(value: Any) -> int | None:
    if value is None:
        return None
    as_int = int(round(value))
    return as_int if as_int == value else None  # a non-integer prediction can never match


# -- the op suite ----------------------------------------------------------------------------

SHAPES: dict[str, list[dict[str, int]]] = {
    "embedding": [{"tokens": 1, "vocab": 5, "width": 3}, {"tokens": 3, "vocab": 10, "width": 4},
                  {"tokens": 4, "vocab": 7, "width": 6}],
    "linear": [{"m": 1, "k": 4, "n": 3, "bias": 1}, {"m": 3, "k": 8, "n": 5, "bias": 0},
               {"m": 5, "k": 6, "n": 2, "bias": 1}],
    "matmul": [{"b": 1, "m": 2, "k": 3, "n": 4}, {"b": 2, "m": 3, "k": 4, "n": 5}, {"b": 3, "m": 4, "k": 2, "n": 3}],
    "add": [{"n": 1}, {"n": 7}, {"n": 20}],
    "weight_add": [{"n": 1}, {"n": 7}, {"n": 20}],
    "scale": [{"n": 1}, {"n": 7}, {"n": 20}],
    "weight_mul": [{"n": 1}, {"n": 7}, {"n": 20}],
    "mul": [{"n": 1}, {"n": 7}, {"n": 20}],
    "rope": [{"n": 2}, {"n": 8}, {"n": 20}],
    "relu": [{"n": 1}, {"n": 9}, {"n": 40}],
    "gelu": [{"n": 1}, {"n": 9}, {"n": 40}],
    "gelu_tanh": [{"n": 1}, {"n": 9}, {"n": 40}],
    "silu": [{"n": 1}, {"n": 9}, {"n": 40}],
    "softmax": [{"rows": 1, "cols": 1, "valid": 1}, {"rows": 2, "cols": 5, "valid": 10},
                {"rows": 8, "cols": 4, "valid": 20}],
    "layernorm": [{"rows": 1, "cols": 4}, {"rows": 2, "cols": 7}, {"rows": 3, "cols": 16}],
    "rmsnorm": [{"rows": 1, "cols": 4}, {"rows": 2, "cols": 7}, {"rows": 3, "cols": 16}],
    "argmax": [{"rows": 1, "cols": 2}, {"rows": 2, "cols": 9}, {"rows": 3, "cols": 4}],
}
"""Three shapes per op kind (odd sizes on purpose: tree levels with a carried element)."""


def suite_ops(kinds: Iterable[str] | None = None) -> list[Op]:
    """One :class:`Op` per kind and shape of :data:`SHAPES`, named ``<kind>.<i>``."""
    ops = []
    for kind in kinds or SHAPES:
        for i, dims in enumerate(SHAPES[kind]):
            ops.append(Op(f"{kind}.{i}", kind, Block.FFN, None, dict(dims), (Holder.SHARED,)))
    return ops


def ops_job(ops: Iterable[Op], seed: int = 0, frac_bits: int = 16, options: dict[str, str] | None = None
            ) -> dict[str, Any]:
    """A job that runs ``ops`` on random inputs, as picost-2pc with ``options`` costs them."""
    from picost.mpc.launcher import engine_settings

    return {"kind": "ops", "seed": seed, "frac_bits": frac_bits, **engine_settings(options),
            "ops": [{"name": op.name, "kind": op.kind, "dims": dict(op.dims)} for op in ops]}


# -- whole models ----------------------------------------------------------------------------

DEFAULT_SPECS = ("tiny", "tiny-relu", "tiny-smonly-fused", "tiny-llama")
"""The variants `picost validate` runs: GELU + LayerNorm, ReLU, Softmax-only with a fused FFN,
and a Llama-style SwiGLU + RMSNorm + RoPE + GQA model."""


@dataclass(frozen=True)
class ModelCheck:
    """A private forward pass of a spec: per-row cost checks and the error vs plaintext."""

    spec: str
    ids: tuple[int, ...]
    context: int
    """T: prompt tokens (prefill) or cached tokens (decode)."""
    phase: str
    rows: list[RowCheck]
    max_abs_error: float
    """Max |secure - plaintext| over the logits (float64 reference on the same weights)."""
    max_abs_logit: float
    next_token: int | None
    reference_token: int | None
    top2_margin: float | None
    """Plaintext gap between the two largest last-position logits (how safe the argmax is)."""
    wall_s: float
    op_order_ok: bool
    """The engine ran exactly the lowering's ops, in its order."""
    preprocess_s: float = 0.0
    """Seconds of offline rehearsals (preprocessing), the slower of client and server."""
    peak_rss_bytes: dict[str, int] | None = None
    """role -> its process's peak resident memory (bytes)."""

    @property
    def ok(self) -> bool:
        return self.op_order_ok and all(r.ok for r in self.rows)


def token_ids(vocab: int, context: int) -> list[int]:
    """Deterministic, spread-out token ids for validation runs."""
    return [(37 * i + 11) % vocab for i in range(context)]


def check_model(spec_ref: str, ids: list[int], seed: int, run: Any, table: Any = None,
                context: int | None = None) -> ModelCheck:
    """Compare a model run (:class:`~picost.mpc.launcher.RunResult`) with the table and with
    :func:`picost.model.torch_reference.build_reference` on the same seed (``context``: the cached tokens
    of a decode run, whose cache is the reference's random one, seed + 1)."""
    import torch

    from picost.model.lower import lower
    from picost.mpc.ring import decode
    from picost.model.torch_reference import KVCache, build_reference
    from picost.model.load import load_spec

    spec = load_spec(spec_ref)
    decoding = spec.phase == "decode"
    T = (context or spec.context_length) if decoding else len(ids)
    ops = lower(spec, T).ops
    executed = [k for k in run.stats["client"] if not k.startswith("_") and not k.endswith(".trunc")]
    cache = KVCache.random(spec, T, seed=seed + 1, dtype=torch.float64) if decoding else None
    with torch.no_grad():
        ref = build_reference(spec, seed, dtype=torch.float64).predict(torch.tensor([ids]), cache)
    ref_logits = ref.logits[0]
    client = run.results["client"]
    secure = decode(client["logits"], int(client["frac_bits"]))
    margin = None
    if spec.head != "none":
        top2 = ref_logits[-1].topk(2).values if ref_logits.shape[-1] > 1 else None
        margin = float(top2[0] - top2[1]) if top2 is not None else None
    walls = [v["wall_s"] for k, v in run.stats["client"].items() if not k.startswith("_")]
    return ModelCheck(spec.name, tuple(ids), T, spec.phase, compare(ops, run.stats, table), float((secure - ref_logits).abs().max()),
                      float(ref_logits.abs().max()), client.get("next_token"),
                      None if ref.next_token is None else int(ref.next_token[0]), margin, sum(walls),
                      executed == [op.name for op in ops], max(run.preprocess_s.values(), default=0.0),
                      dict(run.peak_rss_bytes))


@dataclass(frozen=True)
class Validation:
    """Everything `picost validate` checked."""

    op_rows: list[RowCheck]
    models: list[ModelCheck]
    wall_s: float

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.op_rows) and all(m.ok for m in self.models)


def run_validation(specs: Iterable[str] = DEFAULT_SPECS, context: int = 4, include_ops: bool = True,
                   seed: int = 0, timeout_s: float = 60.0, on_progress: Any = None,
                   table: Any = None, force: bool = False) -> Validation:
    """Run the op suite and each spec (prefill of ``context`` tokens, or decode of one token
    after ``context`` cached ones) in one launch of the
    three parties and check every row against ``table`` (default ``picost-2pc``). A spec that
    would need more memory than the machine has is refused before the launch, unless ``force``."""
    from picost.cost.protocol_table import load_protocol

    table = load_protocol(table or PROTOCOL)  # a bad table fails before any launch
    options = dict(table.chosen)
    from picost.mpc.launcher import model_job, run_batch
    from picost.mpc.model import check_supported
    from picost.model.load import load_spec

    specs = list(specs)
    ops = suite_ops() if include_ops else []
    jobs = [ops_job(ops, seed, options=options)] if include_ops else []
    loaded = {s: load_spec(s) for s in specs}
    for spec in loaded.values():  # before any token ids or launch: a spec the engine cannot run
        check_supported(spec)
    ids = {s: token_ids(m.vocab_size, 1 if m.phase == "decode" else context) for s, m in loaded.items()}
    jobs += [model_job(s, ids[s], seed, cached=context, force=force, options=options) for s in specs]
    runs = run_batch(jobs, timeout_s=timeout_s, on_progress=on_progress)
    op_rows = compare(ops, runs[0].stats, table) if include_ops else []
    models = [check_model(s, ids[s], seed, run, table, context)
              for s, run in zip(specs, runs[len(jobs) - len(specs):])]
    return Validation(op_rows, models, runs[0].wall_s if runs else 0.0)

"""Private generation on the engine: a prefill, then decode steps on the KV cache it left.

The prefill runs the prompt (the spec's prefill lowering) and keeps every layer's keys (after
RoPE) and values as they are: secret shares, one held by the client and one by the server (the
dealer holds none). Each decode step runs the previous step's next token -- revealed to the
client only, by the argmax, and fed back by the client as its private input -- against that
cache, which grows by one token per step (keys and values of the new token appended, as shares).
Nothing is re-shared: the cache costs no communication.

Measured rows are named ``step<i>/<op>`` (step 0 is the prefill), so each step lines up with the
lowering at its cache length: prefill at T, decode step ``i`` at ``T + i - 1`` cached tokens.
:func:`check_generation` compares every row and the whole generation's totals with the table's
prediction (:func:`picost.analysis.generation.generation`), exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from picost.errors import UserError

PREFIX = "step{}/"


def _prefix(i: int) -> str:
    return PREFIX.format(i)


def generation_job(spec_ref: str, ids: list[int], new_tokens: int, seed: int = 0, frac_bits: int = 16) -> dict[str, Any]:
    """A job: prefill of the client's ``ids``, then ``new_tokens`` decode steps."""
    from picost.analysis.generation import check_new_tokens
    from picost.model.load import load_spec
    from picost.mpc.model import check_supported

    spec = load_spec(spec_ref)
    check_supported(spec)
    check_new_tokens(new_tokens)
    if spec.head == "none" or not spec.argmax:
        raise UserError(f"spec '{spec.name}' has no argmax head: a generation needs the next token", field="head")
    if not ids:
        raise UserError("give at least one token id", field="--tokens")
    bad = [t for t in ids if not 0 <= t < spec.vocab_size]
    if bad:
        raise UserError(f"token ids must be in 0..{spec.vocab_size - 1} (got {bad[0]})", field="--tokens")
    if spec.positional == "learned" and len(ids) + new_tokens > spec.context_length:
        raise UserError(f"{len(ids) + new_tokens} positions exceed the learned ones ({spec.context_length})",
                        field="--new-tokens")
    return {"kind": "generate", "spec": str(spec_ref), "context": len(ids), "new_tokens": new_tokens, "seed": seed,
            "frac_bits": frac_bits, "client_input": {"ids": list(ids)}}


def run_generation_job(ctx: Any, job: dict[str, Any], rank: int) -> dict[str, Any]:
    """One party's part of a generation job (the party entry point calls this)."""
    from picost.model.load import load_spec
    from picost.mpc import transport

    spec = load_spec(job["spec"])
    T = int(job["context"])
    ids = job.get("client_input", {}).get("ids") if rank == transport.CLIENT else [0] * T
    if ids is None or len(ids) != T:
        raise ValueError(f"the client's job needs client_input.ids with {T} token ids")
    return run_generation(ctx, spec, int(job["seed"]), list(ids), int(job["new_tokens"]))


def run_generation(ctx: Any, spec: Any, seed: int, ids: list[int], new_tokens: int) -> dict[str, Any]:
    import torch

    from picost.mpc.model import SecureModel, check_supported, server_weights
    from picost.mpc.transport import SERVER

    check_supported(spec)
    tx = ctx.tx
    prefill = spec.model_copy(update={"phase": "prefill"})
    decode = spec.model_copy(update={"phase": "decode"})
    weights = server_weights(prefill, seed, ctx.frac_bits) if ctx.role == SERVER else None
    merged: dict[str, Any] = dict(tx.stats)
    cache = None
    tokens: list[int] = []
    step_ids = ids
    logits = None
    for i in range(new_tokens + 1):
        tx.stats = {}
        model = SecureModel(ctx, prefill if i == 0 else decode, weights, cache)
        model.kept = []
        logits, token = model.forward(torch.tensor(step_ids, dtype=torch.int64), len(step_ids))
        cache = model.kept
        for name, stat in tx.stats.items():
            key = f"_{_prefix(i)}{name[1:]}" if name.startswith("_") else f"{_prefix(i)}{name}"
            merged[key] = stat
        if token is not None:  # the client: the next token, its private input of the next step
            nxt = int(token[0])
            tokens.append(nxt)
            step_ids = [nxt]
        else:
            step_ids = [0]
    tx.stats = {}
    with tx.op("_output"):
        revealed = ctx.reveal_to_client(logits)
    merged.update(tx.stats)
    tx.stats = merged
    out: dict[str, Any] = {}
    if revealed is not None:
        out.update(tokens=tokens, logits=revealed, frac_bits=ctx.frac_bits)
    return out


def split_stats(stats: dict[str, dict[str, dict[str, Any]]], i: int) -> dict[str, dict[str, dict[str, Any]]]:
    """The measurements of step ``i``, under the op names of its lowering."""
    p = _prefix(i)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for role, rows in stats.items():
        out[role] = {}
        for name, v in rows.items():
            if name.startswith(p):
                out[role][name[len(p):]] = v
            elif name.startswith("_" + p):
                out[role]["_" + name[len(p) + 1:]] = v
    return out


@dataclass(frozen=True)
class GenerationCheck:
    """A private generation on the engine against the table, row by row and in total."""

    spec: str
    prompt: int
    new_tokens: int
    rows: list[Any]
    """:class:`picost.mpc.validate.RowCheck` per step row, named ``step<i>/<op>``."""
    predicted: dict[str, int | None]
    measured: dict[str, int | None]
    tokens: list[int]
    reference_tokens: list[int]
    op_order_ok: bool

    @property
    def totals_ok(self) -> bool:
        return self.predicted == self.measured

    @property
    def ok(self) -> bool:
        return self.op_order_ok and self.totals_ok and all(r.ok for r in self.rows)


TOTAL_FIELDS = ("bytes_client_to_server", "bytes_server_to_client", "rounds", "offline_bytes")


def check_generation(spec_ref: str, ids: list[int], new_tokens: int, seed: int, run: Any,
                     table: Any = None) -> GenerationCheck:
    """Compare a generation run (:class:`~picost.mpc.launcher.RunResult`) with the table: every
    row of every step, and the totals of :func:`picost.analysis.generation.generation`."""
    import dataclasses

    from picost.analysis.generation import generation
    from picost.cost.protocol_table import load_protocol
    from picost.model.load import load_spec
    from picost.model.lower import lower
    from picost.mpc.validate import PROTOCOL, compare, measured_rows

    table = load_protocol(table or PROTOCOL)
    spec = load_spec(spec_ref)
    T = len(ids)
    rows, order_ok = [], True
    measured = {f: 0 for f in TOTAL_FIELDS}
    for i in range(new_tokens + 1):
        step_spec = spec.model_copy(update={"phase": "prefill" if i == 0 else "decode"})
        ops = lower(step_spec, T if i == 0 else T + i - 1).ops
        stats = split_stats(run.stats, i)
        executed = [k for k in stats["client"] if not k.startswith("_") and not k.endswith(".trunc")]
        order_ok = order_ok and executed == [op.name for op in ops]
        for r in compare(ops, stats, table, weights_set_up=i > 0):
            rows.append(dataclasses.replace(r, name=_prefix(i) + r.name))
    for m in measured_rows(run.stats).values():  # every measured row, of whatever step
        for f in TOTAL_FIELDS:
            measured[f] = None if measured[f] is None or m[f] is None else measured[f] + m[f]
    steps_run = {name.split("/", 1)[0] for name in run.stats["client"] if "/" in name and not name.startswith("_")}
    order_ok = order_ok and steps_run == {_prefix(i)[:-1] for i in range(new_tokens + 1)}
    gen = generation(spec, table, "lan", T, new_tokens).totals()
    predicted = {f: _exact(gen[f]) for f in TOTAL_FIELDS}
    tokens = list(run.results["client"].get("tokens", []))
    return GenerationCheck(spec.name, T, new_tokens, rows, predicted, measured, tokens,
                           reference_tokens(spec, ids, new_tokens, seed), order_ok)


def _exact(value: Any) -> int | None:
    if value is None:
        return None
    as_int = int(round(value))
    return as_int if as_int == value else None


def reference_tokens(spec: Any, ids: list[int], new_tokens: int, seed: int) -> list[int]:
    """Greedy tokens of the plaintext reference (float64, same weights): for information; fixed-point
    rounding may make the private run pick another token where two logits are close."""
    import torch

    from picost.model.torch_reference import build_reference

    model = build_reference(spec.model_copy(update={"phase": "prefill"}), seed, dtype=torch.float64)
    seq, out = list(ids), []
    with torch.no_grad():
        for _ in range(new_tokens + 1):
            nxt = int(model.predict(torch.tensor([seq])).next_token[0])
            out.append(nxt)
            seq.append(nxt)
    return out


def run_generation_check(spec_ref: str, ids: list[int], new_tokens: int, seed: int = 0, timeout_s: float = 60.0,
                         table: Any = None) -> GenerationCheck:
    """Launch the three parties on a generation job and check it (:func:`check_generation`)."""
    from picost.mpc.launcher import run_local

    run = run_local(generation_job(spec_ref, ids, new_tokens, seed), timeout_s=timeout_s)
    return check_generation(spec_ref, ids, new_tokens, seed, run, table)

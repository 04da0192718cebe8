"""picost's side of the CrypTen engine: the request for ``runner.py model``, run under CrypTen's interpreter.

Runs in picost's environment and needs torch (the weights are the torch reference's own).
CrypTen lives in its own virtualenv (``bash scripts/setup-crypten.sh`` makes ``.venv-crypten``):
:func:`crypten_python` finds its interpreter (``$PICOST_CRYPTEN_PYTHON``, else
``.venv-crypten/bin/python`` at the top of the repository).

:func:`model_payload` builds picost's torch reference of the spec
(:func:`picost.model.torch_reference.build_reference`) and describes it for ``ct_model.py``: its op
modules (name, kind, public constants), the few architecture switches the forward pass needs, the
client's token ids, and -- in a ``torch.save`` file -- the reference's parameters per op name and
the public RoPE tables. :func:`run_model` runs it and returns CrypTen's counts per op with the
decrypted logits next to the reference's plaintext logits.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from picost import sidecar
from picost.errors import UserError
from picost.model.spec import ModelSpec
from picost.model.spec_extras import engine_gap

RUNNER = Path(__file__).resolve().with_name("runner.py")
SETUP_HINT = "bash scripts/setup-crypten.sh"
CHOICES = ("shared", "public")
DEFAULT_TIMEOUT_S = 1800.0


def crypten_python() -> Path:
    """The CrypTen virtualenv's interpreter; a :class:`UserError` saying how to make it if missing."""
    return sidecar.find_python("PICOST_CRYPTEN_PYTHON", ".venv-crypten", SETUP_HINT, "CrypTen", "crypten 0.4.1")


def crypten_available() -> bool:
    try:
        crypten_python()
    except UserError:
        return False
    return True


# ---------------------------------------------------------------------------------------------
# Requests
# ---------------------------------------------------------------------------------------------

def _choose(value: str, name: str) -> str:
    if value not in CHOICES:
        raise UserError(f"unknown {name} '{value}': one of {', '.join(CHOICES)}", field=name)
    return value


def _constants(module: Any) -> dict[str, Any]:
    """An op module's public constants the CrypTen twin needs."""
    if module.op_kind == "scale":
        return {"factor": float(module.factor)}
    if module.op_kind == "rope":
        return {"rotated": int(module.rotated)}
    return {}


@dataclass(frozen=True)
class Payload:
    """One model run: the JSON ``request`` (without ``params_file``), what goes into the params
    file, and the torch reference's plaintext output for the same ids."""

    request: dict[str, Any]
    saved: dict[str, Any] = field(repr=False)
    reference_logits: Any = field(repr=False)
    reference_token: int | None


def model_payload(spec: ModelSpec, context: int, weights: str = "shared", norm_gain: str = "shared",
                  seed: int = 0) -> Payload:
    """The run of ``spec`` over ``context`` prompt tokens (see the module doc)."""
    import torch

    from picost.model.torch_reference import build_reference, example_inputs, op_modules

    if spec.phase != "prefill":
        raise UserError("CrypTen runs prefill only (phase 'decode' needs a KV cache)", field="phase")
    if spec.batch_size != 1:
        raise UserError("CrypTen runs batch 1", field="batch_size")
    gap = engine_gap(spec)
    if gap is not None:
        raise UserError(f"the CrypTen model does not run {gap[1]} (spec '{spec.name}')", field=gap[0])
    model = build_reference(spec, seed=seed)
    ids, _ = example_inputs(spec, context, seed=seed)
    modules = list(op_modules(model).values())
    params = {m.op_name: {p: t.detach().clone() for p, t in m.named_parameters()} for m in modules}
    tables = {}
    rope = next((m for m in modules if m.op_kind == "rope"), None)
    if rope is not None:
        tables["rope_cos"], tables["rope_sin"] = rope.tables(torch.arange(context), torch.float32)
    arch = {"n_layers": spec.n_layers, "vocab_size": spec.vocab_size, "n_heads": spec.n_heads,
            "kv_heads": spec.kv_heads, "dim_head": spec.dim_head, "causal": spec.attention.causal,
            "norm_placement": spec.norm.placement, "parallel_residual": spec.parallel_residual, "head": spec.head}
    request = {"arch": arch, "ops": [{"name": m.op_name, "kind": m.op_kind, **_constants(m)} for m in modules],
               "ids": ids[0].tolist(), "weights": _choose(weights, "weights"),
               "norm_gain": _choose(norm_gain, "norm_gain")}
    with torch.no_grad():
        logits, token = model.predict(ids)
    return Payload(request, {"params": {k: v for k, v in params.items() if v}, "tables": tables},
                   logits.double().numpy(), None if token is None else int(token[0]))


# ---------------------------------------------------------------------------------------------
# Answers
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class OpCount:
    """One op of the forward pass as CrypTen counted it, per rank (0 = client, 1 = server)."""

    name: str
    kind: str
    rounds: tuple[int, int]
    bytes: tuple[int, int]

    @property
    def comm_bytes(self) -> int:
        """All bytes on the wire: each rank counts what it sent and received, so half their sum."""
        return sum(self.bytes) // 2

    @property
    def comm_rounds(self) -> int:
        return max(self.rounds)


@dataclass(frozen=True)
class ModelRun:
    """What ``runner.py model`` returned: counts per op in execution order and for the whole
    forward pass (per rank), the forward pass's wall seconds per rank, the decrypted logits and
    the decrypted argmax."""

    ops: tuple[OpCount, ...]
    total_rounds: tuple[int, int]
    total_bytes: tuple[int, int]
    wall_s: tuple[float, float]
    logits: Any
    next_token: int | None

    @property
    def comm_bytes(self) -> int:
        return sum(self.total_bytes) // 2

    @property
    def comm_rounds(self) -> int:
        return max(self.total_rounds)


def parse_model_output(text: str) -> ModelRun:
    """``runner.py model`` output (its last line is one JSON object) as a :class:`ModelRun`."""
    lines = [line for line in text.splitlines() if line.strip()]
    try:
        r = json.loads(lines[-1])
        ops = tuple(OpCount(o["name"], o["kind"], tuple(o["rounds"]), tuple(o["bytes"])) for o in r["ops"])
        return ModelRun(ops, tuple(r["total"]["rounds"]), tuple(r["total"]["bytes"]), tuple(r["wall_s"]),
                        r["logits"], r["next_token"])
    except (IndexError, ValueError, KeyError, TypeError) as exc:
        tail = lines[-1][:200] if lines else "no output"
        raise UserError(f"the CrypTen model run gave no answer picost can read ({exc!r}; last line: {tail})") from None


def run_model(payload: Payload, timeout: float = DEFAULT_TIMEOUT_S) -> ModelRun:
    """Run a :func:`model_payload` in CrypTen (two processes)."""
    import torch

    python = crypten_python()
    with tempfile.TemporaryDirectory(prefix="picost-crypten-") as tmp:
        params_file = Path(tmp) / "params.pt"
        torch.save(payload.saved, params_file)
        request = {**payload.request, "params_file": str(params_file)}
        out = sidecar.run_script(python, RUNNER, ["model"], json.dumps(request), timeout, "CrypTen model")
    return parse_model_output(out)

"""picost's side of the SPU engine: requests for ``runner.py``, run under the SPU interpreter.

Runs in picost's environment and imports picost.model and the standard library only (no torch,
no jax, no spu). SPU lives in its own virtualenv (``bash scripts/setup-spu.sh`` makes
``.venv-spu``): :func:`spu_python` finds its interpreter (``$PICOST_SPU_PYTHON``, else
``.venv-spu/bin/python`` at the top of the repository), :func:`run_model` and :func:`run_ops` send
``runner.py`` a JSON request on stdin and parse its JSON answer into dataclasses.

A model request carries the spec (``ModelSpec.model_dump()``), the context, the protocol and the
holder / construction options, and -- for the op-by-op comparison -- the lowered ops
(:func:`picost.model.lower.lower`): name, kind, dims, operand holders, causal flag. The runner
builds the same model in JAX (``jax_model.py``) and the same ops (``jax_ops.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from picost import sidecar
from picost.errors import UserError
from picost.model.lower import lower
from picost.model.ops import Op, op_class
from picost.model.spec import ModelSpec
from picost.model.spec_extras import engine_gap

RUNNER = Path(__file__).resolve().with_name("runner.py")
SETUP_HINT = "bash scripts/setup-spu.sh"
PROTOCOLS = {"semi2k": "SEMI2K", "cheetah": "CHEETAH", "aby3": "ABY3"}
WEIGHTS = ("server-private", "shared", "public")
INPUTS = ("client-private", "client-embedded", "shared")
GELU = ("stock_erf", "stock_tanh", "puma")
SOFTMAX = ("stock", "puma")
MASKS = ("where", "bias")
DEFAULT_TIMEOUT_S = 3600.0


# ---------------------------------------------------------------------------------------------
# Finding SPU
# ---------------------------------------------------------------------------------------------

def spu_python() -> Path:
    """The SPU virtualenv's interpreter; a :class:`UserError` saying how to make it if missing."""
    return sidecar.find_python("PICOST_SPU_PYTHON", ".venv-spu", SETUP_HINT, "SPU", "spu 0.9.5")


def spu_available() -> bool:
    try:
        spu_python()
    except UserError:
        return False
    return True


# ---------------------------------------------------------------------------------------------
# Requests
# ---------------------------------------------------------------------------------------------

def protocol_name(protocol: str) -> str:
    """SPU's name for a protocol: ``cheetah``, ``spu-cheetah`` and ``CHEETAH`` are ``CHEETAH``."""
    key = protocol.lower().removeprefix("spu-")
    if key not in PROTOCOLS:
        raise UserError(f"unknown SPU protocol '{protocol}': one of {', '.join(PROTOCOLS)}", field="protocol")
    return PROTOCOLS[key]


def _choose(value: str | None, allowed: tuple[str, ...], name: str) -> str | None:
    if value is not None and value not in allowed:
        raise UserError(f"unknown {name} '{value}': one of {', '.join(allowed)}", field=name)
    return value


def op_payload(op: Op) -> dict[str, Any]:
    """One lowered op as the runner reads it."""
    dims = {}
    for name, value in op.dims.items():
        if not isinstance(value, int) or isinstance(value, bool):
            try:
                value = int(value)
            except (TypeError, ValueError):
                raise UserError(f"op {op.name}: dim {name}={value!r} is not a number (lower at a "
                                "numeric context)") from None
        dims[name] = value
    return {"name": op.name, "kind": op.kind, "dims": dims, "operands": [h.value for h in op.operands],
            "causal": op.causal}


def model_request(spec: ModelSpec, context: int | None = None, protocol: str = "semi2k",
                  weights: str = "server-private", input: str = "client-private", gelu: str | None = None,
                  softmax: str = "stock", mask: str = "where", whole: bool = True, op_by_op: bool = False,
                  seed: int = 0, runs: int | None = None) -> dict[str, Any]:
    """The JSON request of a ``model`` run: the spec, its lowered ops if ``op_by_op``, options."""
    if spec.phase != "prefill":
        raise UserError("SPU runs prefill only (phase 'decode' needs a KV cache)", field="phase")
    if spec.batch_size != 1:
        raise UserError("SPU runs batch 1", field="batch_size")
    gap = engine_gap(spec)
    if gap is not None:
        raise UserError(f"the SPU model does not run {gap[1]} (spec '{spec.name}')", field=gap[0])
    if spec.attention.sliding_window is not None:
        raise UserError(f"the SPU model runs full attention only (spec '{spec.name}' has a sliding window of "
                        f"{spec.attention.sliding_window} keys)", field="attention.sliding_window")
    lowered = lower(spec, context)
    request: dict[str, Any] = {
        "protocol": protocol_name(protocol), "spec": spec.model_dump(mode="json"),
        "context": int(lowered.context), "weights": _choose(weights, WEIGHTS, "weights"),
        "input": _choose(input, INPUTS, "input"), "gelu": _choose(gelu, GELU, "gelu"),
        "softmax": _choose(softmax, SOFTMAX, "softmax"), "mask": _choose(mask, MASKS, "mask"),
        "whole": whole, "seed": seed,
    }
    if runs:
        request["runs"] = runs
    if op_by_op:
        request["ops"] = [op_payload(op) for op in lowered.ops]
    return request


def op_request(op: Op, protocol: str = "semi2k", weights: str = "server-private",
               input: str = "client-private", construction: str | None = None, mask: str = "where",
               bias: bool = False, rotated: int | None = None) -> dict[str, Any]:
    """The JSON of one ``ops`` measurement for a lowered op."""
    p = op_payload(op)
    return {"protocol": protocol_name(protocol), "kind": p["kind"], "dims": p["dims"], "construction": construction,
            "weights": _choose(weights, WEIGHTS, "weights"), "input": _choose(input, INPUTS, "input"),
            "operands": p["operands"], "causal": p["causal"], "mask": _choose(mask, MASKS, "mask"),
            "bias": bias, "rotated": rotated}


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class OpMeasurement:
    """One op measured in SPU: all parties' sent bytes (warm run), the most send actions of any
    party, the warm run's wall seconds."""

    name: str | None
    kind: str
    dims: dict[str, int]
    total_bytes: int
    party_send_bytes: tuple[int, ...]
    max_send_actions: int
    warm_s: float
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)


@dataclass(frozen=True)
class WholeModelRun:
    """A whole model run as one SPU executable (warm run), and its logits against plaintext JAX."""

    total_bytes: int
    party_send_bytes: tuple[int, ...]
    max_send_actions: int
    warm_s: float
    logits_max_abs_error: float
    logits_max_abs: float
    next_token_matches: bool | None
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)


@dataclass(frozen=True)
class ModelRun:
    """What a ``model`` request returned: the whole run and/or each op measured on its own."""

    protocol: str
    model: str
    context: int
    settings: dict[str, Any]
    whole: WholeModelRun | None
    ops: tuple[OpMeasurement, ...]

    @property
    def ops_total_bytes(self) -> int:
        """Sum of the ops' reported (cheapest warm run) bytes."""
        return sum(op.total_bytes for op in self.ops)

    @property
    def ops_mean_warm_bytes(self) -> float:
        """Sum of the ops' mean warm-run bytes (amortizes CHEETAH's pool refills; see runner.py)."""
        return sum(op.raw.get("mean_warm_bytes", op.total_bytes) for op in self.ops)

    def bytes_by_class(self, ops: Iterable[Op]) -> dict[str, float]:
        """Measured bytes per op class (picost.model.ops.CLASSES), given the lowered ops: each op's
        mean warm-run bytes, the accounting the tables are fitted on (CHEETAH's OT pool refills
        land on some runs only; SEMI2K and ABY3 send the same bytes on every warm run)."""
        classes = {op.name: op_class(op) for op in ops}
        out: dict[str, float] = {}
        for m in self.ops:
            cls = classes.get(m.name or "", m.kind)
            out[cls] = out.get(cls, 0) + m.raw.get("mean_warm_bytes", m.total_bytes)
        return out


def _op_measurement(r: dict[str, Any]) -> OpMeasurement:
    if "error" in r:
        raise UserError(f"SPU failed on {r.get('name') or r.get('kind')} {r.get('dims')}: "
                        f"{str(r['error']).strip().splitlines()[-1] if r['error'] else ''}")
    return OpMeasurement(r.get("name"), r["kind"], dict(r["dims"]), int(r["total_bytes"]),
                         tuple(r["party_send_bytes"]), int(r["max_send_actions"]), float(r["warm_s"]), r)


def parse_ops_output(text: str) -> list[OpMeasurement]:
    """``runner.py ops`` output (one JSON line per measurement) as measurements."""
    return [_op_measurement(json.loads(line)) for line in text.splitlines() if line.strip()]


def parse_model_output(text: str) -> ModelRun:
    """``runner.py model`` output (one JSON object) as a :class:`ModelRun`."""
    r = json.loads(text.strip().splitlines()[-1])
    whole = None
    if "whole" in r:
        w = r["whole"]
        whole = WholeModelRun(int(w["total_bytes"]), tuple(w["party_send_bytes"]), int(w["max_send_actions"]),
                              float(w["warm_s"]), float(w["logits_max_abs_error"]), float(w["logits_max_abs"]),
                              w.get("next_token_matches"), w)
    settings = {k: r.get(k) for k in ("weights", "input", "gelu", "softmax", "mask", "spu")}
    return ModelRun(r["protocol"], r["model"], int(r["context"]), settings, whole,
                    tuple(_op_measurement(o) for o in r.get("ops", [])))


# ---------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------

def _run(mode: str, request: Any, timeout: float) -> str:
    return sidecar.run_script(spu_python(), RUNNER, [mode], json.dumps(request), timeout, f"SPU {mode}")


def run_model(spec: ModelSpec, context: int | None = None, protocol: str = "semi2k", *,
              timeout: float = DEFAULT_TIMEOUT_S, **options: Any) -> ModelRun:
    """Run ``spec`` in SPU (see :func:`model_request` for the options)."""
    return parse_model_output(_run("model", model_request(spec, context, protocol, **options), timeout))


def run_ops(requests: list[dict[str, Any]], timeout: float = DEFAULT_TIMEOUT_S) -> list[OpMeasurement]:
    """Measure ops (see :func:`op_request`), each on its own in SPU."""
    return parse_ops_output(_run("ops", requests, timeout))

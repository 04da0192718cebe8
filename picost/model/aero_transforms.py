"""AERO's architectural steps as spec-to-spec transforms (Jha & Reagen, arXiv 2410.13060).

Each transform takes a :class:`~picost.model.spec.ModelSpec` and returns a new, validated one; none
changes its input. They compose (``fuse_ffn(softmax_only(spec))``) and :func:`aero_steps`
applies them in AERO's order to give the rows of an ablation table:

1. :func:`gelu_to_relu` - the FFN activation becomes ReLU;
2. :func:`remove_norms` - every LayerNorm/RMSNorm removed;
3. :func:`softmax_only` - no norm, identity FFN activation (softmax is the only nonlinearity),
   with AERO's learned FFN output scale;
4. :func:`fuse_ffn` - with an identity activation the two FFN linears collapse into one
   ``d x d`` linear (refused while an activation remains);
5. :func:`prune_deep_ffns` - the FFNs of the deepest ``count`` layers removed;
6. :func:`entropy_regularization` - a *training* change (an entropy penalty on attention
   scores): inference cost is unchanged, except for the learnable per-head temperature if it is
   kept at inference (``keep_temperature=True``), which adds one server-held scaling per score.

This module knows no costs; it only rewrites specs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from picost.errors import UserError
from picost.model.spec import GATED_ACTIVATIONS, ModelSpec, SpecRuleError

ENTROPY_REG_NOTE = ("entropy regularization changes the training loss only: it adds no inference "
                    "op, so it costs nothing unless its learnable temperature is kept")


def _derive(spec: ModelSpec, suffix: str, description: str, **changes: Any) -> ModelSpec:
    """A validated copy of ``spec`` with nested ``changes`` merged in and ``suffix`` on its name."""
    data = spec.model_dump()
    for key, value in changes.items():
        if isinstance(value, dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    data["name"] = f"{spec.name}+{suffix}"
    data["description"] = _describe_step(spec.description, description)
    try:
        return ModelSpec.model_validate(data)
    except SpecRuleError as exc:
        raise UserError(f"{spec.name}: {exc.message}", field=exc.field) from None


_STEPS = " — then: "


def _describe_step(base: str, step: str) -> str:
    """``base`` followed by the transforms applied to it, so the base's own words (e.g. "GELU")
    are read as what the model started from, not what it is now."""
    if not base:
        return step
    return f"{base}; {step}" if _STEPS in base else f"{base}{_STEPS}{step}"


def _refuse_gated(spec: ModelSpec, step: str) -> None:
    if spec.activation in GATED_ACTIVATIONS:
        raise UserError(f"{spec.name}: {step} is defined for a plain two-linear FFN; this spec has a "
                        f"gated FFN ('{spec.activation}'), which has no ReLU/identity counterpart here",
                        field="activation")


def gelu_to_relu(spec: ModelSpec) -> ModelSpec:
    """AERO step 1: the FFN activation (GELU, its tanh form, or SiLU) becomes ReLU.

    A spec already using ReLU is returned unchanged; gated FFNs and identity FFNs are refused.
    """
    if spec.activation == "relu":
        return spec
    _refuse_gated(spec, "GELU -> ReLU")
    if spec.activation == "identity":
        raise UserError(f"{spec.name}: the FFN has no activation to replace by ReLU", field="activation")
    return _derive(spec, "relu", f"{spec.activation} replaced by ReLU", activation="relu")


def remove_norms(spec: ModelSpec) -> ModelSpec:
    """AERO step 2: remove every normalization layer (in the blocks and the final one)."""
    if not spec.has_norm:
        return spec
    return _derive(spec, "no-norm", f"every {spec.norm.kind} removed", norm={"kind": "none"})


def softmax_only(spec: ModelSpec, scaled_ffn: bool = True) -> ModelSpec:
    """AERO's Softmax-only model: no norm, identity FFN activation, so softmax is the only
    nonlinear op left (besides the final argmax). ``scaled_ffn`` adds AERO's learned FFN output
    scale (a server-held elementwise multiply)."""
    _refuse_gated(spec, "Softmax-only")
    ffn = {"learnable_output_scale": spec.ffn.learnable_output_scale or scaled_ffn}
    return _derive(spec, "smonly", "Softmax-only (no norm, identity FFN)",
                   activation="identity", norm={"kind": "none"}, ffn=ffn)


def fuse_ffn(spec: ModelSpec) -> ModelSpec:
    """AERO's FFN fusion: with an identity activation, ``x W_up W_down`` is one ``d x d`` linear.

    Refused with a :class:`UserError` while an activation remains (fusion would be wrong).
    A learned per-channel output scale is linear too, so it is folded into the fused weights
    (``W = W_up W_down diag(s)``): the same definition as a spec's ``ffn.fused`` (which requires
    ``learnable_output_scale: false``).
    """
    if spec.ffn.fused:
        return spec
    if spec.activation != "identity":
        raise UserError(f"{spec.name}: cannot fuse the FFN linears: activation '{spec.activation}' "
                        "remains between them (make the model Softmax-only first: identity activation)",
                        field="activation")
    return _derive(spec, "fused", "FFN linears (and output scale) fused into one d x d linear",
                   ffn={"fused": True, "learnable_output_scale": False})


def prune_deep_ffns(spec: ModelSpec, count: int | None = None) -> ModelSpec:
    """Remove the FFN sublayer of the deepest ``count`` layers (default: half of them).

    Layers that a spec already prunes stay pruned; the result prunes from layer
    ``n_layers - count`` to the last.
    """
    n = spec.n_layers
    count = n // 2 if count is None else count
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= n:
        raise UserError(f"{spec.name}: the number of FFNs to prune must be 0..{n} (got {count!r})",
                        field="prune")
    start = n - count
    if frozenset(range(start, n)) <= spec.pruned_ffn_layers:
        return spec
    kept_pruned = sorted(i for i in spec.pruned_ffn_layers if i < start)
    if kept_pruned:
        ffn: dict[str, Any] = {"pruned_layers": kept_pruned + list(range(start, n)), "pruned_from_layer": None}
    else:
        ffn = {"pruned_layers": [], "pruned_from_layer": start}
    return _derive(spec, f"prune{count}", f"FFNs of layers {start}-{n - 1} pruned", ffn=ffn)


def entropy_regularization(spec: ModelSpec, keep_temperature: bool = False) -> ModelSpec:
    """AERO's entropy regularization. It changes training only (see :data:`ENTROPY_REG_NOTE`):
    the spec is returned unchanged unless ``keep_temperature``, in which case the attention
    scores are scaled by the learned per-head temperature (a server-held multiply) instead of
    the public ``1/sqrt(head_dim)``."""
    if not keep_temperature or spec.attention.learnable_temperature:
        return spec
    return _derive(spec, "temp", "learnable attention temperature kept (entropy regularization)",
                   attention={"learnable_temperature": True})


@dataclass(frozen=True)
class Step:
    """One row of an AERO ablation: a label in AERO's notation, what was done, and the spec."""

    label: str
    action: str
    spec: ModelSpec


def aero_steps(spec: ModelSpec, prune: int | None = None, keep_temperature: bool = False) -> list[Step]:
    """Apply AERO's steps cumulatively: baseline, ReLU, norm-free, Softmax-only, fused, pruned
    (``prune`` deepest FFNs; default half), and, if ``keep_temperature``, the learned
    temperature of entropy regularization on top."""
    act = {"gelu": "GELU", "gelu_tanh": "GELU", "relu": "ReLU", "silu": "SiLU"}.get(spec.activation,
                                                                                     spec.activation)
    norm = {"layernorm": "LN", "rmsnorm": "RMSNorm"}.get(spec.norm.kind)
    base_label = " + ".join(["SM"] + ([norm] if norm else []) + ([act] if act != "identity" else []))
    chain: list[tuple[str, str, Callable[[ModelSpec], ModelSpec]]] = [
        ("SM" + (f" + {norm}" if norm else "") + " + ReLU", "GELU -> ReLU", gelu_to_relu),
        ("SM + ReLU", "remove norms", remove_norms),
        ("SM-only (scaled FFN)", "identity FFN activation", softmax_only),
        ("SM-only + FFN fusion", "fuse FFN linears", fuse_ffn),
    ]
    steps = [Step(base_label, "baseline", spec)]
    for label, action, transform in chain:
        steps.append(Step(label, action, transform(steps[-1].spec)))
    n_pruned = spec.n_layers // 2 if prune is None else prune
    pruned = prune_deep_ffns(steps[-1].spec, n_pruned)
    steps.append(Step(f"SM-only + fusion + {n_pruned} FFNs pruned", f"prune {n_pruned} deepest FFNs", pruned))
    if keep_temperature:
        steps.append(Step(steps[-1].label + " + temperature", "keep learnable temperature",
                          entropy_regularization(pruned, keep_temperature=True)))
    return steps

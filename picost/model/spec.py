"""Model specs: what a decoder-only transformer *is*, declared as data.

A spec is a mapping validated into :class:`ModelSpec` (:func:`validate_spec`). Unknown keys are
errors; every error names the file, the line and the field. Finding and reading spec files
(YAML overlays, HuggingFace ``config.json``) is :mod:`picost.model.load`.

This module knows no costs. Sizes are plain counts (elements, tokens, layers); layers are
numbered from 0.
"""

from __future__ import annotations

import difflib
import typing
from typing import Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError, model_validator

from picost.errors import UserError
from picost.model import limits
from picost.model.spec_extras import ClassifierSpec, InputSpec, MoESpec, extras_problem

Activation = Literal["gelu", "gelu_tanh", "relu", "silu", "swiglu", "geglu", "identity"]
GATED_ACTIVATIONS = ("swiglu", "geglu")


class SpecRuleError(Exception):
    """A cross-field rule broken by a spec; ``field`` is the dotted path to blame.

    Deliberately not a ``ValueError`` so that pydantic lets it through unchanged and the
    loader can point at the exact field and line.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    def __setattr__(self, name: str, value: Any) -> None:
        """Specs are frozen: a changed field would skip every rule the loader checks."""
        from picost.errors import UserError

        raise UserError(f"a spec cannot be changed in place ({type(self).__name__}.{name}); make a checked copy "
                        f"with spec.model_copy(update={{'{name}': ...}})", field=name)


class NormSpec(_Strict):
    """Normalization layers."""

    kind: Literal["layernorm", "rmsnorm", "none"] = "layernorm"
    """Which normalization; ``none`` removes every norm (AERO's LayerNorm-free models)."""
    placement: Literal["pre", "post"] = "pre"
    """``pre``: norm before each sublayer (GPT-2, Llama); ``post``: after each residual add."""
    final: bool = True
    """Whether a norm follows the last block (ignored when ``kind`` is ``none``)."""


class AttentionSpec(_Strict):
    """Self-attention."""

    kind: Literal["softmax"] = "softmax"
    causal: bool = True
    """Decoder masking; recorded on the softmax ops (the masked scores still exist)."""
    learnable_temperature: bool = False
    """Scores scaled by a learned per-head temperature (server-held), as in AERO's entropy
    regularization, instead of the public 1/sqrt(head_dim)."""
    sliding_window: PositiveInt | None = None
    """Mistral's sliding window: each query attends to at most this many keys (itself and the
    ``W - 1`` before it); causal attention only. None: every earlier key."""


class FFNSpec(_Strict):
    """Feed-forward network options."""

    fused: bool = False
    """The two FFN linears merged into one d_model x d_model linear (identity activation only); a
    learned output scale is folded into it, so ``learnable_output_scale`` must be false."""
    learnable_output_scale: bool = False
    """FFN output multiplied by learned (server-held) scales (AERO's scaled FFN)."""
    pruned_layers: list[int] = Field(default_factory=list)
    """Layers (0-based) whose FFN sublayer is removed."""
    pruned_from_layer: int | None = None
    """Remove the FFN from this layer (0-based) to the last; exclusive with ``pruned_layers``."""


class ModelSpec(_Strict):
    """A decoder-only transformer. Sizes count elements; ``context_length`` counts tokens."""

    name: str
    description: str = ""
    n_layers: PositiveInt
    d_model: PositiveInt
    n_heads: PositiveInt
    n_kv_heads: PositiveInt | None = None
    """Key/value heads (GQA/MQA); defaults to ``n_heads``."""
    head_dim: PositiveInt | None = None
    """Per-head width; defaults to ``d_model / n_heads``."""
    d_ff: PositiveInt | None = None
    """FFN hidden width; give this or ``d_ff_multiplier``."""
    d_ff_multiplier: float | None = Field(default=None, gt=0)
    """FFN hidden width as a multiple of ``d_model``."""
    vocab_size: PositiveInt | None = None
    """Required for token inputs; absent for image patches."""
    context_length: PositiveInt
    """Default number of tokens T: the prompt length (prefill) or the KV-cache length (decode); for
    image patches, the patches of the spec's image plus the CLS row."""
    input: InputSpec = Field(default_factory=InputSpec)
    activation: Activation = "gelu"
    norm: NormSpec = Field(default_factory=NormSpec)
    attention: AttentionSpec = Field(default_factory=AttentionSpec)
    positional: Literal["learned", "rope", "none"] = "learned"
    rope_fraction: float = Field(default=1.0, gt=0, le=1)
    """Fraction of each head's dimensions that RoPE rotates (Pythia: 0.25)."""
    tied_embeddings: bool = True
    bias: bool = True
    """Whether linears carry biases (GPT-2: yes; Llama: no). Biases add no FLOPs here."""
    parallel_residual: bool = False
    """Attention and FFN read the same input and are added together (GPT-NeoX/Pythia, GPT-J, Phi-2)."""
    parallel_norm: Literal["separate", "shared"] = "separate"
    """A parallel block's pre-norms: ``separate``, one per branch (GPT-NeoX), or ``shared``, one norm
    whose output both branches read (GPT-J, Phi-2). Needs ``parallel_residual`` and pre-norm."""
    ffn: FFNSpec = Field(default_factory=FFNSpec)
    moe: MoESpec | None = None
    """Mixture-of-experts FFNs (every layer's FFN is ``experts`` FFNs of width ``d_ff``); None: dense."""
    head: Literal["full", "last", "none", "classifier"] = "last"
    """Vocabulary projection for every position (``full``), the last one (``last``), none, or a
    classifier over the first row (``classifier``, see ``classifier``)."""
    classifier: ClassifierSpec | None = None
    argmax: bool = True
    """Whether the head ends in an argmax: the next token, or the class of a classifier head."""
    phase: Literal["prefill", "decode"] = "prefill"
    batch_size: PositiveInt = 1

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> "ModelSpec":
        """A copy with ``update`` applied and validated like a loaded spec (a spec is frozen, and a
        copy cannot escape the rules either: ``n_layers=-5`` or ``10**9`` is a located error)."""
        if not update:
            return super().model_copy(deep=deep)
        data = self.model_dump()
        data.update({k: v.model_dump() if isinstance(v, BaseModel) else v for k, v in update.items()})
        return validate_spec(data, {}, default_file=f"<copy of spec {self.name}>")

    @model_validator(mode="after")
    def _rules(self) -> "ModelSpec":
        check_rules(self)
        return self

    # Resolved sizes -------------------------------------------------------------------------
    @property
    def kv_heads(self) -> int:
        return self.n_kv_heads if self.n_kv_heads is not None else self.n_heads

    @property
    def dim_head(self) -> int:
        return self.head_dim if self.head_dim is not None else self.d_model // self.n_heads

    @property
    def ffn_width(self) -> int:
        if self.d_ff is not None:
            return self.d_ff
        assert self.d_ff_multiplier is not None
        return round(self.d_ff_multiplier * self.d_model)

    @property
    def pruned_ffn_layers(self) -> frozenset[int]:
        """0-based indices of layers without an FFN sublayer."""
        if self.ffn.pruned_from_layer is not None:
            return frozenset(range(self.ffn.pruned_from_layer, self.n_layers))
        return frozenset(self.ffn.pruned_layers)

    @property
    def has_norm(self) -> bool:
        return self.norm.kind != "none"

    @property
    def head_width(self) -> int:
        """Outputs of the head's projection: the vocabulary, or a classifier's labels."""
        if self.classifier is not None:
            return self.classifier.labels
        assert self.vocab_size is not None
        return self.vocab_size


def check_rules(spec: ModelSpec) -> None:
    """Raise :class:`SpecRuleError` for the first size limit or cross-field rule ``spec`` breaks."""
    too_big = limits.spec_problem(spec)
    if too_big is not None:
        raise SpecRuleError(*too_big)
    if spec.head_dim is None and spec.d_model % spec.n_heads != 0:
        raise SpecRuleError(
            "n_heads",
            f"d_model={spec.d_model} is not divisible by n_heads={spec.n_heads} "
            "(give head_dim explicitly if that is intended)",
        )
    if spec.n_kv_heads is not None:
        if spec.n_kv_heads > spec.n_heads or spec.n_heads % spec.n_kv_heads != 0:
            raise SpecRuleError(
                "n_kv_heads",
                f"n_heads={spec.n_heads} must be a multiple of n_kv_heads={spec.n_kv_heads}",
            )
    if spec.d_ff is not None and spec.d_ff_multiplier is not None:
        raise SpecRuleError("d_ff_multiplier", "give d_ff or d_ff_multiplier, not both")
    if spec.d_ff is None and spec.d_ff_multiplier is None:
        raise SpecRuleError("d_ff", "missing: give d_ff or d_ff_multiplier")
    if spec.d_ff_multiplier is not None:
        width = spec.d_ff_multiplier * spec.d_model
        if abs(width - round(width)) > 1e-9:
            raise SpecRuleError(
                "d_ff_multiplier",
                f"d_ff_multiplier={spec.d_ff_multiplier} x d_model={spec.d_model} = {width} "
                "is not a whole number of units",
            )
    if spec.ffn.fused and spec.activation != "identity":
        raise SpecRuleError(
            "ffn.fused",
            f"fusing the FFN linears needs activation 'identity' (got '{spec.activation}'): "
            "a nonlinearity between them cannot be fused",
        )
    if spec.ffn.fused and spec.ffn.learnable_output_scale:
        raise SpecRuleError(
            "ffn.learnable_output_scale",
            "a fused FFN folds its output scale into the fused linear (W_up W_down diag(s), AERO's fusion): "
            "set learnable_output_scale: false",
        )
    if spec.ffn.pruned_layers and spec.ffn.pruned_from_layer is not None:
        raise SpecRuleError("ffn.pruned_from_layer", "give pruned_layers or pruned_from_layer, not both")
    seen: set[int] = set()
    for i, layer in enumerate(spec.ffn.pruned_layers):
        if not 0 <= layer < spec.n_layers:
            raise SpecRuleError(
                f"ffn.pruned_layers.{i}",
                f"layer {layer} is out of range: layers are numbered 0..{spec.n_layers - 1}",
            )
        if layer in seen:
            raise SpecRuleError(f"ffn.pruned_layers.{i}", f"layer {layer} is listed twice")
        seen.add(layer)
    if spec.ffn.pruned_from_layer is not None and not 0 <= spec.ffn.pruned_from_layer < spec.n_layers:
        raise SpecRuleError(
            "ffn.pruned_from_layer",
            f"layer {spec.ffn.pruned_from_layer} is out of range: layers are numbered "
            f"0..{spec.n_layers - 1}",
        )
    if spec.positional == "rope":
        rotated = spec.rope_fraction * spec.dim_head
        if abs(rotated - round(rotated)) > 1e-9 or round(rotated) % 2 != 0:
            raise SpecRuleError(
                "rope_fraction",
                f"RoPE rotates pairs of dimensions: rope_fraction x head_dim = {rotated} "
                "must be an even whole number",
            )
    if spec.parallel_norm == "shared" and not (spec.parallel_residual and spec.norm.placement == "pre"):
        raise SpecRuleError("parallel_norm", "a shared norm is the one pre-norm both branches of a parallel block "
                            "read: it needs parallel_residual: true and norm.placement: pre (or set "
                            "parallel_norm: separate)")
    window = spec.attention.sliding_window
    if window is not None and not spec.attention.causal:
        raise SpecRuleError("attention.sliding_window", "a sliding window is modelled for causal attention only "
                            "(each query attends to itself and the W - 1 keys before it); set causal: true")
    if window is not None and window > limits.MAX_TOKENS:
        raise SpecRuleError("attention.sliding_window", f"sliding_window must be at most {limits.MAX_TOKENS} tokens "
                            f"(got {window})")
    if spec.head == "none" and spec.argmax:
        raise SpecRuleError("argmax", "argmax needs a head: set argmax: false when head is 'none'")
    problem = extras_problem(spec)
    if problem is not None:
        raise SpecRuleError(*problem)


# ---------------------------------------------------------------------------------------------
# Loading with located errors
# ---------------------------------------------------------------------------------------------

#: Where each field of the resolved spec was written: dotted field -> (file, line).
Origins = dict[str, tuple[str, int | None]]


def _locate(origins: Origins, field: str, default_file: str) -> tuple[str, int | None]:
    parts = field.split(".")
    while parts:
        hit = origins.get(".".join(parts))
        if hit is not None:
            return hit
        parts.pop()
    return default_file, None


def validate_spec(data: dict[str, Any], origins: Origins, default_file: str) -> ModelSpec:
    """Validate merged spec data; raise a located :class:`UserError` on the first problem."""
    try:
        return ModelSpec.model_validate(data)
    except SpecRuleError as exc:
        file, line = _locate(origins, exc.field, default_file)
        raise UserError(exc.message, file=file, line=line, field=exc.field) from None
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        file, line = _locate(origins, field, default_file)
        raise UserError(_describe(err), file=file, line=line, field=field or None) from None


def _describe(err: dict[str, Any]) -> str:
    kind = err["type"]
    loc = err["loc"]
    if kind == "extra_forbidden":
        model: type[BaseModel] = ModelSpec
        for part in loc[:-1]:
            annotation = model.model_fields[str(part)].annotation
            for candidate in (annotation, *typing.get_args(annotation)):  # MoESpec | None -> MoESpec
                if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                    model = candidate
        allowed = sorted(model.model_fields)
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        return f"unknown key '{loc[-1]}'; {hint}allowed keys: {', '.join(allowed)}"
    if kind == "missing":
        return "required field is missing"
    value = err.get("input")
    return f"{err['msg']} (got {limits.short(value)})"

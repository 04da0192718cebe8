"""Spec sections beyond the decoder: image-patch inputs (ViT), classifier heads (BERT's pooler and
classifier, ViT's classifier) and mixture-of-experts FFNs (Mixtral) -- their schema and the rules
that tie them to the rest of a spec (:func:`extras_problem`, called by :func:`picost.model.spec.check_rules`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, PositiveInt


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    def __setattr__(self, name: str, value: Any) -> None:
        """Specs are frozen: a changed field would skip every rule the loader checks."""
        from picost.errors import UserError

        raise UserError(f"a spec cannot be changed in place ({type(self).__name__}.{name}); make a checked copy "
                        f"with spec.model_copy(update={{'{name}': ...}})", field=name)


class InputSpec(_Strict):
    """What the client feeds the model."""

    kind: Literal["tokens", "patches"] = "tokens"
    """``tokens``: token ids looked up in an embedding table; ``patches``: an image cut into
    ``patch_size`` x ``patch_size`` patches of ``channels`` values (the client's pixels), each
    flattened and projected by a linear (ViT's patch embedding; a stride-``patch_size`` convolution
    is the same products)."""
    image_size: PositiveInt | None = None
    """Patches: the side of the (square) image in pixels; it fixes the default token count."""
    patch_size: PositiveInt | None = None
    channels: PositiveInt = 3
    cls_token: bool = True
    """Patches: a learned (server-held) CLS row is prepended to the patch rows."""

    @property
    def patch_features(self) -> int:
        """Inputs of the patch linear: ``channels x patch_size**2``."""
        assert self.patch_size is not None
        return self.channels * self.patch_size ** 2

    @property
    def image_tokens(self) -> int:
        """Tokens of the spec's image: ``(image_size / patch_size)**2`` patches, plus the CLS row."""
        assert self.image_size is not None and self.patch_size is not None
        return (self.image_size // self.patch_size) ** 2 + int(self.cls_token)


class ClassifierSpec(_Strict):
    """A classifier head over the first row of each sequence (BERT's [CLS] token, ViT's CLS row)."""

    labels: PositiveInt
    """Output classes: the classifier linear is ``d_model -> labels``."""
    pooler: bool = False
    """BERT's pooler before the classifier: a dense ``d_model -> d_model`` and tanh on the first row."""


class MoESpec(_Strict):
    """A mixture-of-experts FFN (Mixtral): a router picks ``experts_per_token`` of ``experts`` FFNs."""

    experts: PositiveInt
    experts_per_token: PositiveInt
    routing: Literal["oblivious", "revealed"] = "oblivious"
    """``oblivious``: every token runs through all ``experts`` and the outputs of the ones not chosen
    are weighted by zero (the cost of E experts; nobody learns the routing). ``revealed``: the top-k
    expert indices of every token are opened to both parties, and each token runs through its
    ``experts_per_token`` experts only (the cost of k experts; the routing leaks)."""


def extras_problem(spec: Any) -> tuple[str, str] | None:
    """``(field, message)`` for the first rule about inputs, classifier heads or experts that
    ``spec`` breaks, else None."""
    inp = spec.input
    if inp.kind == "tokens":
        for name in ("image_size", "patch_size"):
            if getattr(inp, name) is not None:
                return f"input.{name}", f"input.{name} applies to input kind 'patches' only"
        if spec.vocab_size is None:
            return "vocab_size", "required field is missing (token inputs need vocab_size)"
    else:
        problem = _patches_problem(spec)
        if problem is not None:
            return problem
    if spec.head == "classifier" and spec.classifier is None:
        return "classifier", "head 'classifier' needs a classifier section (labels, pooler)"
    if spec.head != "classifier" and spec.classifier is not None:
        return "classifier", f"a classifier section needs head: classifier (head is '{spec.head}')"
    if spec.head == "classifier" and spec.phase != "prefill":
        return "phase", "a classifier head reads the first row of a prefill; phase 'decode' has none"
    return _moe_problem(spec)


def _patches_problem(spec: Any) -> tuple[str, str] | None:
    inp = spec.input
    for name in ("image_size", "patch_size"):
        if getattr(inp, name) is None:
            return f"input.{name}", f"input kind 'patches' needs input.{name}"
    if inp.image_size % inp.patch_size != 0:
        return "input.patch_size", (f"patch_size={inp.patch_size} does not divide image_size={inp.image_size}")
    if spec.vocab_size is not None:
        return "vocab_size", "an image-patch input has no vocabulary: remove vocab_size"
    if spec.head in ("full", "last"):
        return "head", f"head '{spec.head}' projects onto a vocabulary; a patch input has none (classifier or none)"
    if spec.phase != "prefill":
        return "phase", "an image-patch input is encoded in one prefill; phase 'decode' does not apply"
    if spec.context_length != inp.image_tokens:
        return "context_length", (f"context_length={spec.context_length} contradicts the image: "
                                  f"({inp.image_size}/{inp.patch_size})^2 patches"
                                  f"{' + 1 CLS row' if inp.cls_token else ''} = {inp.image_tokens} tokens")
    return None


def _moe_problem(spec: Any) -> tuple[str, str] | None:
    moe = spec.moe
    if moe is None:
        return None
    if moe.experts < 2:
        return "moe.experts", f"a mixture of experts needs at least 2 experts (got {moe.experts})"
    if moe.experts_per_token > moe.experts:
        return "moe.experts_per_token", (f"experts_per_token={moe.experts_per_token} exceeds "
                                         f"experts={moe.experts}")
    if spec.ffn.fused or spec.ffn.learnable_output_scale:
        return "moe", "expert FFNs are plain FFNs: ffn.fused and ffn.learnable_output_scale do not apply"
    return None


def engine_gap(spec: Any) -> tuple[str, str] | None:
    """``(field, what)`` for the first section the engines (picost/mpc, SPU, CrypTen) do not run:
    image patches, a classifier head, experts, a parallel block's shared norm; they cost-model only
    (``picost estimate``)."""
    if spec.input.kind == "patches":
        return "input.kind", "image-patch inputs"
    if spec.head == "classifier":
        return "head", "classifier heads"
    if spec.moe is not None:
        return "moe", "mixture-of-experts FFNs"
    if spec.has_norm and spec.parallel_norm == "shared":
        return "parallel_norm", "a parallel block's shared norm (GPT-J, Phi-2: one norm read by both branches)"
    return None

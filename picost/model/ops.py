"""The op IR: a lowered model is a flat, ordered list of :class:`Op`.

Every op has a kind (see :data:`KINDS`), named dimensions, the layer and block it belongs to, a
readable name (``L3.attn.qk``) and who holds each operand. Dimensions are *totals over the batch
and the heads*, so a cost formula over them gives the whole op's cost. ``instances`` says how
many independent matrices or rows-sets the op stands for (e.g. one softmax per head), for
counting conventions such as "144 softmaxes over 128x128".

Conventions (documented in ``docs/conventions.md`` and asserted in tests):

* a multiply-add counts 2 FLOPs; only linears and secret matmuls have FLOPs here;
  biases, residual adds, scalings and nonlinearities are counted as elements, not FLOPs;
* the embedding is a lookup (0 FLOPs; ``tokens`` lookups into a ``vocab x width`` table);
* the causal mask does not shrink any matmul or softmax: the masked scores are computed, the
  softmax op records ``causal`` and its number of unmasked scores ``valid``;
* GQA/MQA: the ``g = n_heads / n_kv_heads`` query heads that share a key/value head are stacked,
  so QK^T and AV are ``b = batch * n_kv_heads`` products with ``m = g * T`` rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable, Mapping


class Block(str, Enum):
    """Where an op sits in the transformer."""

    EMBEDDING = "embedding"
    ATTENTION = "attention"
    FFN = "ffn"
    NORM = "norm"
    HEAD = "head"


class Holder(str, Enum):
    """Who holds an operand."""

    CLIENT = "client"  # client's private input (token ids, image patches)
    SERVER = "server"  # server's private weights
    SHARED = "shared"  # secret activations, shared between the parties
    PUBLIC = "public"  # constants both parties know


Dims = Mapping[str, Any]  # int, or a sympy expression when lowered symbolically


@dataclass(frozen=True)
class KindInfo:
    """What an op kind means: its dimension names and how to count it."""

    dims: tuple[str, ...]
    doc: str
    flops: Callable[[Dims], Any]
    """FLOPs (2 per multiply-add)."""
    elements: Callable[[Dims], Any]
    """Elements the op processes (inputs of a nonlinearity, lookups, products)."""
    outputs: Callable[[Dims], Any]
    """Elements the op produces."""
    fixed_point_product: bool
    """Whether outputs are fixed-point products that need rescaling (truncation)."""
    public_output: bool = False
    """Whether its outputs are public (an opening): the ops after it read the shares from before it."""


def _zero(_: Dims) -> int:
    return 0


def _n(d: Dims) -> Any:
    return d["n"]


def _rows_cols(d: Dims) -> Any:
    return d["rows"] * d["cols"]


def _elementwise(doc: str, fixed_point_product: bool) -> KindInfo:
    return KindInfo(("n",), doc, _zero, _n, _n, fixed_point_product)


def _rowwise(doc: str, outputs: Callable[[Dims], Any] = _rows_cols) -> KindInfo:
    return KindInfo(("rows", "cols"), doc, _zero, _rows_cols, outputs, False)


KINDS: dict[str, KindInfo] = {
    "embedding": KindInfo(
        ("tokens", "vocab", "width"),
        "lookup of `tokens` client-held token ids in a server-held `vocab` x `width` table",
        _zero, lambda d: d["tokens"], lambda d: d["tokens"] * d["width"], False),
    "linear": KindInfo(
        ("m", "k", "n", "bias"),
        "secret activations (m x k) times server weights (k x n), plus the server's bias (n values) when "
        "`bias` = 1 (0: none)",
        lambda d: 2 * d["m"] * d["k"] * d["n"], lambda d: d["m"] * d["k"] * d["n"],
        lambda d: d["m"] * d["n"], True),
    "matmul": KindInfo(
        ("b", "m", "k", "n"),
        "b independent products of two secret matrices, (m x k) times (k x n)",
        lambda d: 2 * d["b"] * d["m"] * d["k"] * d["n"], lambda d: d["b"] * d["m"] * d["k"] * d["n"],
        lambda d: d["b"] * d["m"] * d["n"], True),
    "add": _elementwise("elementwise add of two secret tensors (residual)", False),
    "weight_add": _elementwise("elementwise add of server-held values to a secret tensor (learned positions)",
                               False),
    "scale": _elementwise("elementwise multiply by a public constant", True),
    "weight_mul": _elementwise("elementwise multiply by server-held values (learned scales/temperatures)", True),
    "mul": _elementwise("elementwise product of two secret tensors (gated FFNs)", True),
    "rope": _elementwise("rotary position embedding: each element mixed with its pair by public cos/sin "
                         "(n = rotated elements)", True),
    "gelu": _elementwise("GELU, erf form", False),
    "gelu_tanh": _elementwise("GELU, tanh approximation", False),
    "relu": _elementwise("ReLU", False),
    "silu": _elementwise("SiLU (x * sigmoid(x))", False),
    "tanh": _elementwise("tanh (BERT's pooler)", False),
    "softmax": KindInfo(
        ("rows", "cols", "valid"),
        "softmax over each of `rows` rows of `cols` scores; `valid` = unmasked scores in total",
        _zero, _rows_cols, _rows_cols, False),
    "layernorm": _rowwise("LayerNorm over each of `rows` rows of `cols` (with server-held gain and bias)"),
    "rmsnorm": _rowwise("RMSNorm over each of `rows` rows of `cols` (with server-held gain)"),
    "argmax": _rowwise("index of the largest of `cols` values, for each of `rows` rows",
                       outputs=lambda d: d["rows"]),
    "topk": KindInfo(
        ("rows", "cols", "k"),
        "the `k` largest of `cols` values in each of `rows` rows, kept in place (the others masked out); "
        "a mixture of experts' router",
        _zero, _rows_cols, _rows_cols, False),
    "reveal": KindInfo(
        ("n",),
        "opening of `n` secret elements to the computing parties (a mixture of experts' routing under "
        "`routing: revealed`: each token's k expert indices); its outputs are public",
        _zero, _n, _n, False, public_output=True),
}

NONLINEAR_KINDS = frozenset({"gelu", "gelu_tanh", "relu", "silu", "tanh", "softmax", "layernorm", "rmsnorm", "argmax",
                             "topk"})

#: Op classes for group-bys, in report order.
CLASSES = ("embedding", "linear", "attention_matmul", "softmax", "activation", "norm",
           "elementwise", "head")


@dataclass(frozen=True, slots=True)
class Op:
    """One operation of a lowered model."""

    name: str
    kind: str
    block: Block
    layer: int | None
    dims: Dims
    operands: tuple[Holder, ...]
    instances: int | Any = 1
    causal: bool = False
    notes: tuple[str, ...] = field(default=())

    @property
    def info(self) -> KindInfo:
        return KINDS[self.kind]

    @property
    def flops(self) -> Any:
        return self.info.flops(self.dims)

    @property
    def elements(self) -> Any:
        return self.info.elements(self.dims)

    @property
    def outputs(self) -> Any:
        return self.info.outputs(self.dims)

    @property
    def op_class(self) -> str:
        return op_class(self)


def op_class(op: Op) -> str:
    """The class an op is reported under (see :data:`CLASSES`)."""
    if op.block is Block.HEAD:
        return "head"
    if op.kind == "embedding":
        return "embedding"
    if op.kind == "linear":
        return "linear"
    if op.kind == "matmul":
        return "attention_matmul"
    if op.kind == "softmax":
        return "softmax"
    if op.kind in ("layernorm", "rmsnorm"):
        return "norm"
    if op.kind in ("gelu", "gelu_tanh", "relu", "silu", "tanh", "mul", "topk", "reveal"):
        return "activation"  # reveal: with the topk whose choice it opens (the same table's shares in a hybrid)
    return "elementwise"

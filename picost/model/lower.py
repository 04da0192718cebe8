"""Lower a :class:`~picost.model.spec.ModelSpec` to the op IR: an ordered list of :class:`Op`.

This is the only module that knows transformer structure. ``context`` (T) may be an int or a
sympy symbol: lowering uses only arithmetic on sizes, so the same code yields symbolic shapes
for closed forms and vectorized sweeps.

Phases: ``prefill`` runs T tokens through the model; ``decode`` runs one new token against a KV
cache of T tokens, so each new query attends to T + 1 keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from picost.errors import UserError
from picost.model import limits
from picost.model.ops import Block, Holder, Op
from picost.model.spec import GATED_ACTIVATIONS, ModelSpec

S, W, C, P = Holder.SHARED, Holder.SERVER, Holder.CLIENT, Holder.PUBLIC


@dataclass(frozen=True)
class Lowered:
    """A lowered model: the spec, the context T it was lowered at, and its ops in order."""

    spec: ModelSpec
    context: Any
    ops: tuple[Op, ...]

    def by_kind(self, kind: str) -> list[Op]:
        return [op for op in self.ops if op.kind == kind]


_LOWERED: dict[tuple[int, int], Lowered] = {}
"""Recent lowerings at whole-number contexts, per (id of the spec, T). Specs are frozen and a
cached :class:`Lowered` holds its spec, so an id cannot be reused while its entry lives."""
MAX_LOWERED = 64


def lower(spec: ModelSpec, context: Any = None) -> Lowered:
    """Lower ``spec`` at ``context`` tokens (default: ``spec.context_length``)."""
    T = limits.context(spec.context_length if context is None else context)
    if spec.input.kind == "patches" and spec.input.cls_token and isinstance(T, int) and T < 2:
        raise UserError(f"{spec.name}: T = {T} tokens leaves no image patch (T counts the patches and the CLS row; "
                        f"the spec's image is T = {spec.input.image_tokens})", field="context")
    if type(T) is not int or not isinstance(spec, ModelSpec):
        return Lowered(spec, T, tuple(_Lowerer(spec, T).ops()))
    key = (id(spec), T)
    found = _LOWERED.get(key)
    if found is None or found.spec is not spec:
        if len(_LOWERED) >= MAX_LOWERED:
            _LOWERED.pop(next(iter(_LOWERED)))
        found = _LOWERED[key] = Lowered(spec, T, tuple(_Lowerer(spec, T).ops()))
    return found


def lower_symbolic(spec: ModelSpec, T: Any, d: Any = None) -> Lowered:
    """Lower ``spec`` at context ``T`` (an int or a sympy symbol); with ``d`` (e.g. a sympy symbol)
    the model width is ``d``, and head_dim and the FFN width keep their ratio to the spec's width
    (head_dim = d / n_heads unless the spec gives head_dim); the vocabulary is as given."""
    if d is None:
        return lower(spec, T)
    return Lowered(spec, T, tuple(_Lowerer(_WidthView(spec, d), T).ops()))


class _WidthView:
    """A spec seen with width ``d``: see :func:`lower_symbolic`. Everything else is read from
    the spec."""

    def __init__(self, spec: ModelSpec, d: Any) -> None:
        self._spec, self.d_model = spec, d
        self.dim_head = d * spec.dim_head / spec.d_model
        self.ffn_width = d * spec.ffn_width / spec.d_model

    def __getattr__(self, name: str) -> Any:
        return getattr(self._spec, name)


class _Lowerer:
    def __init__(self, spec: ModelSpec, T: Any) -> None:
        self.s = spec
        B = spec.batch_size
        decode = spec.phase == "decode"
        self.rows = B if decode else B * T  # token rows pushed through the linears
        self.q_len = 1 if decode else T  # queries per head
        self.kv_len = _window(T + 1 if decode else T, spec.attention.sliding_window)  # keys per query
        self.B = B
        self.bias = int(spec.bias)  # the blocks' linears carry a bias (the head never does)
        self.out: list[Op] = []

    def emit(self, name: str, kind: str, block: Block, layer: int | None, operands: tuple[Holder, ...],
             instances: Any = 1, causal: bool = False, notes: tuple[str, ...] = (), **dims: Any) -> None:
        self.out.append(Op(name, kind, block, layer, dims, operands, instances, causal, notes))

    def ops(self) -> list[Op]:
        s = self.s
        if s.input.kind == "patches":
            self.patches()
        else:
            self.emit("embed.tok", "embedding", Block.EMBEDDING, None, (C, W),
                      tokens=self.rows, vocab=s.vocab_size, width=s.d_model)
        if s.positional == "learned":
            self.emit("embed.pos", "weight_add", Block.EMBEDDING, None, (S, W), n=self.rows * s.d_model)
        pruned = s.pruned_ffn_layers
        for layer in range(s.n_layers):
            self.layer(layer, has_ffn=layer not in pruned)
        if s.has_norm and s.norm.final:  # only on the rows the head reads
            self.norm("final_norm", None, rows=self.head_rows, notes=("final norm, outside the blocks",))
        self.head()
        return self.out

    # -- pieces ---------------------------------------------------------------------------
    @property
    def head_rows(self) -> Any:
        """Rows the ops after the last layer run on: one per sequence for heads ``last`` and
        ``classifier`` (the first row)."""
        return self.B if self.s.head in ("last", "classifier") else self.rows

    def patches(self) -> None:
        """ViT's patch embedding: the client's T - 1 patches (T with no CLS row) through a linear; the
        server's CLS row is prepended (no op: a server-held row of the shared sequence)."""
        inp = self.s.input
        per_image = self.q_len - int(inp.cls_token)
        image = f"{inp.image_size}x{inp.image_size}"
        self.emit("embed.patch", "linear", Block.EMBEDDING, None, (C, W), bias=1,
                  notes=(f"T - {int(inp.cls_token)} = {per_image} patches of {inp.channels}x{inp.patch_size}x"
                         f"{inp.patch_size} pixels (the spec's {image} image: T = {inp.image_tokens})",),
                  m=self.B * per_image, k=inp.patch_features, n=self.s.d_model)

    def norm(self, name: str, layer: int | None, rows: Any = None, notes: tuple[str, ...] = ()) -> None:
        self.emit(name, self.s.norm.kind, Block.NORM, layer, (S, W), notes=notes,
                  rows=self.rows if rows is None else rows, cols=self.s.d_model)

    def residual(self, name: str, layer: int) -> None:
        self.emit(name, "add", Block.ATTENTION if ".attn." in name else Block.FFN, layer, (S, S),
                  n=self.rows * self.s.d_model)

    def layer(self, layer: int, has_ffn: bool) -> None:
        s, L = self.s, f"L{layer}"
        pre = s.has_norm and s.norm.placement == "pre"
        post = s.has_norm and s.norm.placement == "post"
        shared = pre and s.parallel_norm == "shared"  # one pre-norm read by both branches (GPT-J, Phi-2)
        branches = [("attn", self.attention)] + ([("ffn", self.ffn)] if has_ffn else [])
        if shared:
            self.norm(f"{L}.ln_in", layer, notes=("shared: attention and the FFN both read its output",))
        for part, body in branches:
            if pre and not shared:
                self.norm(f"{L}.ln_{part}", layer)
            body(layer)
            if not s.parallel_residual:
                self.residual(f"{L}.{part}.residual", layer)
                if post:
                    self.norm(f"{L}.ln_{part}", layer)
        if s.parallel_residual:  # x + attn(x) + ffn(x): both residual adds after both branches
            for part, _ in reversed(branches):
                self.residual(f"{L}.{part}.residual", layer)
            if post:
                self.norm(f"{L}.ln_out", layer)

    def attention(self, layer: int) -> None:
        s, L, A = self.s, f"L{layer}.attn", Block.ATTENTION
        H, Hkv, dh = s.n_heads, s.kv_heads, s.dim_head
        group = H // Hkv
        heads = self.B * H
        self.emit(f"{L}.qkv", "linear", A, layer, (S, W), m=self.rows, k=s.d_model, n=(H + 2 * Hkv) * dh,
                  bias=self.bias)
        if s.positional == "rope":
            rotated = _whole(s.rope_fraction * dh)
            self.emit(f"{L}.rope", "rope", A, layer, (S, P), n=self.rows * (H + Hkv) * rotated)
        scores = heads * self.q_len * self.kv_len
        self.emit(f"{L}.qk", "matmul", A, layer, (S, S), instances=heads,
                  b=self.B * Hkv, m=group * self.q_len, k=dh, n=self.kv_len)
        if s.attention.learnable_temperature:
            self.emit(f"{L}.temperature", "weight_mul", A, layer, (S, W), n=scores)
        else:
            self.emit(f"{L}.scale", "scale", A, layer, (S, P), n=scores)
        causal = s.attention.causal and s.phase == "prefill"
        valid = heads * _causal_valid(self.q_len, self.kv_len) if causal else scores
        self.emit(f"{L}.softmax", "softmax", A, layer, (S,), instances=heads, causal=causal,
                  rows=heads * self.q_len, cols=self.kv_len, valid=valid)
        self.emit(f"{L}.av", "matmul", A, layer, (S, S), instances=heads,
                  b=self.B * Hkv, m=group * self.q_len, k=self.kv_len, n=dh)
        self.emit(f"{L}.out", "linear", A, layer, (S, W), m=self.rows, k=H * dh, n=s.d_model, bias=self.bias)

    def ffn(self, layer: int) -> None:
        s, L, F = self.s, f"L{layer}.ffn", Block.FFN
        if s.moe is not None:
            self.experts(layer)
            return
        if s.ffn.fused:
            self.emit(f"{L}.fused", "linear", F, layer, (S, W), m=self.rows, k=s.d_model, n=s.d_model, bias=self.bias)
        else:
            self.dense_ffn(L, layer, self.rows)
        if s.ffn.learnable_output_scale:  # never with ffn.fused, which folds the scale (spec rule)
            self.emit(f"{L}.out_scale", "weight_mul", F, layer, (S, W), n=self.rows * s.d_model)

    def dense_ffn(self, L: str, layer: int, rows: Any, notes: tuple[str, ...] = ()) -> None:
        """Up (or gate and up), activation, down over ``rows`` rows."""
        s, F = self.s, Block.FFN
        d, dff, act = s.d_model, s.ffn_width, s.activation
        n_hidden = rows * dff
        if act in GATED_ACTIVATIONS:
            self.emit(f"{L}.gate_up", "linear", F, layer, (S, W), notes=notes, m=rows, k=d, n=2 * dff, bias=self.bias)
            self.emit(f"{L}.act", "silu" if act == "swiglu" else "gelu", F, layer, (S,), n=n_hidden)
            self.emit(f"{L}.gate_mul", "mul", F, layer, (S, S), n=n_hidden)
        else:
            self.emit(f"{L}.up", "linear", F, layer, (S, W), notes=notes, m=rows, k=d, n=dff, bias=self.bias)
            if act != "identity":
                self.emit(f"{L}.act", act, F, layer, (S,), n=n_hidden)
        self.emit(f"{L}.down", "linear", F, layer, (S, W), m=rows, k=dff, n=d, bias=self.bias)

    def experts(self, layer: int) -> None:
        """A mixture of experts: router linear, top-k of its E logits (under revealed routing, then the
        opening of the k indices per token), softmax over the k kept (the
        others masked: HF's softmax over E renormalized over the top k), then the experts (every
        token through all E under oblivious routing, through its k under revealed routing), each
        output weighted by its gate and the weighted outputs summed."""
        s, L, F = self.s, f"L{layer}.ffn", Block.FFN
        E, k, d = s.moe.experts, s.moe.experts_per_token, s.d_model
        revealed = s.moe.routing == "revealed"
        self.emit(f"{L}.router", "linear", F, layer, (S, W), m=self.rows, k=d, n=E, bias=0)
        self.emit(f"{L}.topk", "topk", F, layer, (S,), rows=self.rows, cols=E, k=k,
                  notes=(f"revealed routing: each token's k expert indices are opened ({L}.reveal)",) if revealed
                  else ("oblivious routing: the choice stays secret; all E experts run on every token",))
        if revealed:
            self.emit(f"{L}.reveal", "reveal", F, layer, (S,), n=self.rows * k, notes=(
                "opens each token's k expert indices (k ring elements per token, each argmax's one-hot dotted with "
                "the public 0..E-1: local) to the computing parties, who learn which experts every token uses and "
                "which of its k ranked first; the gate weights stay secret",))
        self.emit(f"{L}.gate_softmax", "softmax", F, layer, (S,), rows=self.rows, cols=E, valid=self.rows * k)
        runs = k if revealed else E
        rows = self.rows * runs
        self.dense_ffn(f"{L}.experts", layer, rows, notes=(f"{runs} experts per token ({s.moe.routing} routing)",))
        self.emit(f"{L}.experts.gate_weight", "mul", F, layer, (S, S), n=rows * d)
        if runs > 1:
            self.emit(f"{L}.experts.sum", "add", F, layer, (S, S), n=self.rows * (runs - 1) * d)

    def head(self) -> None:
        s, H = self.s, Block.HEAD
        if s.head == "none":
            return
        if s.head == "classifier":
            if s.classifier.pooler:
                self.emit("head.pooler", "linear", H, None, (S, W), m=self.B, k=s.d_model, n=s.d_model, bias=1)
                self.emit("head.pooler_act", "tanh", H, None, (S,), n=self.B * s.d_model)
            self.emit("head.classifier", "linear", H, None, (S, W), m=self.B, k=s.d_model, n=s.head_width, bias=1,
                      notes=("over the first row of each sequence (CLS)",))
        else:
            self.emit("head.proj", "linear", H, None, (S, W), m=self.head_rows, k=s.d_model, n=s.head_width,
                      bias=0, notes=("tied to the token embedding",) if s.tied_embeddings else ())
        if s.argmax:
            self.emit("head.argmax", "argmax", H, None, (S,), rows=self.B, cols=s.head_width)


def _window(keys: Any, window: int | None) -> Any:
    """Keys a query meets: all ``keys``, or at most ``window`` of them (int, numpy array or sympy)."""
    if window is None:
        return keys
    if hasattr(keys, "free_symbols"):
        import sympy

        return sympy.Min(keys, window)
    if hasattr(keys, "dtype"):
        import numpy as np

        return np.minimum(keys, window)
    return min(keys, window)


def _causal_valid(queries: Any, window: Any) -> Any:
    """Unmasked scores of one head's causal prefill: query ``i`` (1-based) sees ``min(i, w)`` keys,
    with ``w = window = min(queries, W)`` (``queries`` without a sliding window)."""
    return _half(window * (window + 1)) + (queries - window) * window


def _whole(x: Any) -> Any:
    """A whole number of units: rounded for numbers, left as is for sympy expressions."""
    return x if hasattr(x, "free_symbols") else round(x)


def _half(even: Any) -> Any:
    """Exactly half of an even count: integer division for numbers and arrays, /2 for sympy."""
    return even / 2 if hasattr(even, "free_symbols") else even // 2

"""A plain torch model built from any :class:`~picost.model.spec.ModelSpec`: the plaintext reference.

It computes exactly what :mod:`picost.model.lower` describes, op for op and in the same order: every op
of the lowering is one submodule tagged with the op's name and kind (``op_name``, ``op_kind``, e.g.
``L3.attn.softmax`` / ``softmax``). Forward hooks can therefore see each op's operands, and
``FlopCounterMode`` can attribute FLOPs to each op. Used by the tests as ground truth for the
lowering, and by the MPC engine as the plaintext result to match.

Conventions mirrored from the lowering: one fused QKV linear; RoPE on the first
``rope_fraction * head_dim`` dimensions of each query and key head (rotate-half pairing, base
10000); GQA with the ``n_heads / n_kv_heads`` query heads of one key/value head stacked, so QK^T
and AV are ``batch * n_kv_heads`` products of ``(group * queries) x head_dim`` matrices; explicit
matmuls (no fused attention), the causal mask applied to the scores before the softmax; a fused
gate/up linear for gated FFNs (first half gate, second half up).

Shapes: token ids ``(batch, tokens)``; activations ``(batch, tokens, d_model)``; KV-cache entries
``(batch, n_kv_heads, cached tokens, head_dim)``. torch is imported only here (never by the
analytic core).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from picost.model.ops import NONLINEAR_KINDS
from picost.model.spec import GATED_ACTIVATIONS, ModelSpec
from picost.model.torch_parts import ClassifierHead, MoEFFN, PatchEmbed, tag

ROPE_BASE = 10000.0
NORM_EPS = 1e-5
_GATE_ACTIVATION = {"swiglu": "silu", "geglu": "gelu"}  # the nonlinearity on the gate half


_op = tag


# ---------------------------------------------------------------------------------------------
# One module per op kind that torch has no plain module for
# ---------------------------------------------------------------------------------------------

class Add(nn.Module):
    """Elementwise sum of two secret tensors (residual)."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x + y


class Mul(nn.Module):
    """Elementwise product of two secret tensors (gated FFN)."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x * y


class MatMul(nn.Module):
    """Product of two secret tensors, batched over leading dimensions. Windowed (sliding-window
    attention): ``b`` has one more dimension, ``(..., t, k, n)``, one matrix per query position,
    and ``a`` is ``(..., g * t, k)`` (g stacked heads of t rows each): row ``(i, j)`` of ``a``
    meets the ``j``-th matrix of ``b``."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if b.dim() == a.dim():
            return torch.matmul(a, b)
        t = b.shape[-3]
        lead, rows, k = a.shape[:-2], a.shape[-2], a.shape[-1]
        per_query = a.reshape(*lead, rows // t, t, k).transpose(-3, -2)  # (..., t, g, k)
        return torch.matmul(per_query, b).transpose(-3, -2).reshape(*lead, rows, b.shape[-1])


class Scale(nn.Module):
    """Multiplication by a public constant."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


class LearnedScale(nn.Module):
    """Multiplication by server-held scales broadcast along ``dim`` (per head or per channel)."""

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(size).uniform_(0.5, 1.5))
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = [1] * x.dim()
        shape[self.dim] = -1
        return x * self.weight.view(shape)


class PositionAdd(nn.Module):
    """Learned absolute positions: adds row ``p`` of a server-held table to the token at ``p``."""

    def __init__(self, n_positions: int, width: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_positions, width) * 0.02)

    def forward(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        if int(positions.max()) >= self.weight.shape[0]:
            raise ValueError(f"position {int(positions.max())} is beyond the learned table "
                             f"({self.weight.shape[0]} positions = context_length)")
        return x + self.weight[positions]


class Rope(nn.Module):
    """Rotary embedding of the first ``rotated`` dimensions of each query and key head.

    Pairs dimension ``i`` with ``i + rotated/2`` (rotate-half, as GPT-NeoX and Llama do).
    """

    def __init__(self, rotated: int, base: float = ROPE_BASE) -> None:
        super().__init__()
        self.rotated = rotated
        inv_freq = 1.0 / base ** (torch.arange(0, rotated, 2, dtype=torch.float64) / rotated)
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def tables(self, positions: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """The public cos and sin, ``(positions, rotated)``."""
        angles = positions.to(torch.float64)[:, None] * self.inv_freq[None, :]
        angles = torch.cat([angles, angles], dim=-1)
        return angles.cos().to(dtype), angles.sin().to(dtype)

    def forward(self, q: torch.Tensor, k: torch.Tensor, positions: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        cos, sin = self.tables(positions, q.dtype)
        return self._rotate(q, cos, sin), self._rotate(k, cos, sin)

    def _rotate(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        part, rest = x[..., : self.rotated], x[..., self.rotated:]
        first, second = part.chunk(2, dim=-1)
        return torch.cat([part * cos + torch.cat([-second, first], dim=-1) * sin, rest], dim=-1)


class Argmax(nn.Module):
    """Index of the largest value of each row."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.argmax(dim=-1)


def _activation(kind: str) -> nn.Module:
    return {"gelu": nn.GELU, "gelu_tanh": lambda: nn.GELU(approximate="tanh"),
            "relu": nn.ReLU, "silu": nn.SiLU, "tanh": nn.Tanh}[kind]()


def _norm(spec: ModelSpec, name: str) -> nn.Module:
    d = spec.d_model
    module = nn.LayerNorm(d, eps=NORM_EPS) if spec.norm.kind == "layernorm" else nn.RMSNorm(d, eps=NORM_EPS)
    return _op(module, name, spec.norm.kind)


def _linear(spec: ModelSpec, k: int, n: int, name: str, bias: bool | None = None) -> nn.Module:
    return _op(nn.Linear(k, n, bias=spec.bias if bias is None else bias), name, "linear")


# ---------------------------------------------------------------------------------------------
# KV cache
# ---------------------------------------------------------------------------------------------

@dataclass
class KVCache:
    """Keys (after RoPE) and values per layer, each ``(batch, n_kv_heads, tokens, head_dim)``.

    A forward pass given a cache attends to the cached tokens and appends its own.
    """

    keys: list[torch.Tensor | None]
    values: list[torch.Tensor | None]

    @classmethod
    def empty(cls, n_layers: int) -> "KVCache":
        return cls([None] * n_layers, [None] * n_layers)

    @classmethod
    def random(cls, spec: ModelSpec, tokens: int, seed: int = 0, dtype: torch.dtype = torch.float32
               ) -> "KVCache":
        """A cache of ``tokens`` random keys and values (standard normal) per layer."""
        gen = torch.Generator().manual_seed(seed)
        shape = (spec.batch_size, spec.kv_heads, tokens, spec.dim_head)
        keys = [torch.randn(shape, generator=gen, dtype=dtype) for _ in range(spec.n_layers)]
        values = [torch.randn(shape, generator=gen, dtype=dtype) for _ in range(spec.n_layers)]
        return cls(keys, values)

    @property
    def length(self) -> int:
        """Cached tokens."""
        return 0 if self.keys[0] is None else self.keys[0].shape[2]

    def copy(self) -> "KVCache":
        """A cache with the same entries that can be extended without touching this one."""
        return KVCache(list(self.keys), list(self.values))

    def extend(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append this step's keys and values to ``layer``; return all of them."""
        if self.keys[layer] is not None:
            k = torch.cat([self.keys[layer], k], dim=2)
            v = torch.cat([self.values[layer], v], dim=2)
        self.keys[layer], self.values[layer] = k, v
        return k, v


# ---------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------

class Attention(nn.Module):
    """Self-attention of one layer, its ops named ``L{layer}.attn.*``; ``residual`` is the add
    of its output to the stream (called by the block)."""

    def __init__(self, spec: ModelSpec, layer: int) -> None:
        super().__init__()
        A = f"L{layer}.attn"
        self.layer, self.causal, self.window = layer, spec.attention.causal, spec.attention.sliding_window
        self.H, self.Hkv, self.dh = spec.n_heads, spec.kv_heads, spec.dim_head
        self.qkv = _linear(spec, spec.d_model, (self.H + 2 * self.Hkv) * self.dh, f"{A}.qkv")
        self.rope = (_op(Rope(round(spec.rope_fraction * self.dh)), f"{A}.rope", "rope")
                     if spec.positional == "rope" else None)
        self.qk = _op(MatMul(), f"{A}.qk", "matmul")
        if spec.attention.learnable_temperature:
            self.score_scale = _op(LearnedScale(self.H, dim=1), f"{A}.temperature", "weight_mul")
        else:
            self.score_scale = _op(Scale(1.0 / math.sqrt(self.dh)), f"{A}.scale", "scale")
        self.softmax = _op(nn.Softmax(dim=-1), f"{A}.softmax", "softmax")
        self.av = _op(MatMul(), f"{A}.av", "matmul")
        self.out = _linear(spec, self.H * self.dh, spec.d_model, f"{A}.out")
        self.residual = _op(Add(), f"{A}.residual", "add")

    def forward(self, x: torch.Tensor, positions: torch.Tensor, cache: KVCache | None) -> torch.Tensor:
        B, t, _ = x.shape
        H, Hkv, dh = self.H, self.Hkv, self.dh
        q, k, v = self.qkv(x).split([H * dh, Hkv * dh, Hkv * dh], dim=-1)
        q = q.view(B, t, H, dh).transpose(1, 2)
        k = k.view(B, t, Hkv, dh).transpose(1, 2)
        v = v.view(B, t, Hkv, dh).transpose(1, 2)
        if self.rope is not None:
            q, k = self.rope(q, k, positions)
        if cache is not None:
            k, v = cache.extend(self.layer, k, v)
        keys = k.shape[2]
        group = H // Hkv  # query heads h = j * group + i share key/value head j
        if self.window is not None and keys > self.window:
            return self._windowed(q, k, v, positions)
        scores = self.qk(q.reshape(B, Hkv, group * t, dh), k.transpose(-1, -2))
        scores = self.score_scale(scores.view(B, H, t, keys))
        if self.causal:
            allowed = torch.arange(keys)[None, :] <= positions[:, None]
            scores = scores.masked_fill(~allowed, float("-inf"))
        probs = self.softmax(scores)
        context = self.av(probs.reshape(B, Hkv, group * t, keys), v)
        return self.out(context.view(B, H, t, dh).transpose(1, 2).reshape(B, t, H * dh))


    def _windowed(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Sliding-window attention: the query at position p meets the W keys at p - W + 1 .. p
        (slots before position 0 are padding, masked), gathered per query, so QK^T, the softmax
        and AV run over W columns, as the lowering counts them."""
        B, H, t, dh = q.shape
        Hkv, W = self.Hkv, self.window
        k_win, v_win = _key_windows(k, positions, W), _key_windows(v, positions, W)  # (B, Hkv, t, dh, W)
        scores = self.qk(q.reshape(B, Hkv, (H // Hkv) * t, dh), k_win)
        scores = self.score_scale(scores.view(B, H, t, W))
        slot = positions[:, None] - W + 1 + torch.arange(W)[None, :]
        probs = self.softmax(scores.masked_fill(slot < 0, float("-inf")))
        context = self.av(probs.reshape(B, Hkv, (H // Hkv) * t, W), v_win.transpose(-1, -2))
        return self.out(context.view(B, H, t, dh).transpose(1, 2).reshape(B, t, H * dh))


def _key_windows(x: torch.Tensor, positions: torch.Tensor, window: int) -> torch.Tensor:
    """``x`` (batch, heads, keys, d) as the ``window`` keys ending at each query position:
    ``(batch, heads, queries, d, window)``, zero where a slot falls before position 0."""
    padded = nn.functional.pad(x, (0, 0, window - 1, 0))
    return padded.unfold(2, window, 1).index_select(2, positions)


class FFN(nn.Module):
    """Feed-forward sublayer of one layer, its ops named ``L{layer}.ffn.*``."""

    def __init__(self, spec: ModelSpec, layer: int) -> None:
        super().__init__()
        F, d, dff, act = f"L{layer}.ffn", spec.d_model, spec.ffn_width, spec.activation
        self.gated = act in GATED_ACTIVATIONS
        self.fused = _linear(spec, d, d, f"{F}.fused") if spec.ffn.fused else None
        if self.fused is None and self.gated:
            self.gate_up = _linear(spec, d, 2 * dff, f"{F}.gate_up")
            self.act = _op(_activation(_GATE_ACTIVATION[act]), f"{F}.act", _GATE_ACTIVATION[act])
            self.gate_mul = _op(Mul(), f"{F}.gate_mul", "mul")
            self.down = _linear(spec, dff, d, f"{F}.down")
        elif self.fused is None:
            self.up = _linear(spec, d, dff, f"{F}.up")
            self.act = _op(_activation(act), f"{F}.act", act) if act != "identity" else None
            self.down = _linear(spec, dff, d, f"{F}.down")
        self.out_scale = (_op(LearnedScale(d, dim=-1), f"{F}.out_scale", "weight_mul")
                          if spec.ffn.learnable_output_scale else None)
        self.residual = _op(Add(), f"{F}.residual", "add")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused is not None:
            h = self.fused(x)
        elif self.gated:
            gate, up = self.gate_up(x).chunk(2, dim=-1)
            h = self.down(self.gate_mul(self.act(gate), up))
        else:
            h = self.up(x)
            if self.act is not None:
                h = self.act(h)
            h = self.down(h)
        return self.out_scale(h) if self.out_scale is not None else h


class Block(nn.Module):
    """One transformer layer: norms (pre or post), attention, FFN (absent if pruned), residuals;
    sequential, or parallel (attention and FFN read the same input, GPT-NeoX; normed once for both
    with ``parallel_norm: shared``, GPT-J and Phi-2)."""

    def __init__(self, spec: ModelSpec, layer: int, has_ffn: bool) -> None:
        super().__init__()
        L = f"L{layer}"
        self.parallel = spec.parallel_residual
        self.pre = spec.has_norm and spec.norm.placement == "pre"
        post = spec.has_norm and spec.norm.placement == "post"
        shared = self.pre and spec.parallel_norm == "shared"
        in_block_norms = (self.pre and not shared) or (post and not self.parallel)
        self.ln_in = _norm(spec, f"{L}.ln_in") if shared else None
        self.ln_attn = _norm(spec, f"{L}.ln_attn") if in_block_norms else None
        self.ln_ffn = _norm(spec, f"{L}.ln_ffn") if in_block_norms and has_ffn else None
        self.ln_out = _norm(spec, f"{L}.ln_out") if post and self.parallel else None
        self.attn = Attention(spec, layer)
        self.ffn = (FFN(spec, layer) if spec.moe is None else MoEFFN(spec, layer, _activation, Mul())) if has_ffn else None
        if self.ffn is not None and spec.moe is not None:
            self.ffn.residual = _op(Add(), f"{L}.ffn.residual", "add")

    def forward(self, x: torch.Tensor, positions: torch.Tensor, cache: KVCache | None) -> torch.Tensor:
        if self.parallel:
            h = self.ln_in(x) if self.ln_in is not None else x
            a = self.attn(self._pre(self.ln_attn, h), positions, cache)
            if self.ffn is not None:
                x = self.ffn.residual(x, self.ffn(self._pre(self.ln_ffn, h)))
            x = self.attn.residual(x, a)
            return self.ln_out(x) if self.ln_out is not None else x
        x = self.attn.residual(x, self.attn(self._pre(self.ln_attn, x), positions, cache))
        x = self._post(self.ln_attn, x)
        if self.ffn is None:
            return x
        x = self.ffn.residual(x, self.ffn(self._pre(self.ln_ffn, x)))
        return self._post(self.ln_ffn, x)

    def _pre(self, norm: nn.Module | None, x: torch.Tensor) -> torch.Tensor:
        return norm(x) if self.pre and norm is not None else x

    def _post(self, norm: nn.Module | None, x: torch.Tensor) -> torch.Tensor:
        return norm(x) if not self.pre and norm is not None else x


class Prediction(NamedTuple):
    logits: torch.Tensor
    """``(batch, rows, vocab)``: rows = tokens for head ``full``, 1 for ``last``; for head
    ``none``, the final hidden states ``(batch, tokens, d_model)``."""
    next_token: torch.Tensor | None
    """``(batch,)`` argmax of the last position's logits, or None if the spec has no argmax."""


class ReferenceModel(nn.Module):
    """The spec as a torch module. ``forward(ids, cache)`` returns logits; ``predict`` adds the
    argmax. Ops are tagged submodules (see :func:`op_modules`)."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        d = spec.d_model
        patches = spec.input.kind == "patches"
        self.embed = PatchEmbed(spec) if patches else _op(nn.Embedding(spec.vocab_size, d), "embed.tok", "embedding")
        self.pos = (_op(PositionAdd(spec.context_length, d), "embed.pos", "weight_add")
                    if spec.positional == "learned" else None)
        pruned = spec.pruned_ffn_layers
        self.blocks = nn.ModuleList(Block(spec, i, i not in pruned) for i in range(spec.n_layers))
        self.final_norm = _norm(spec, "final_norm") if spec.has_norm and spec.norm.final else None
        self.head_proj = None
        self.classifier = ClassifierHead(spec) if spec.head == "classifier" else None
        if spec.head in ("full", "last"):
            self.head_proj = _linear(spec, d, spec.vocab_size, "head.proj", bias=False)
            if spec.tied_embeddings:
                self.head_proj.weight = self.embed.weight
        self.argmax = _op(Argmax(), "head.argmax", "argmax") if spec.argmax else None

    def forward(self, ids: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """Logits for token ids ``(batch, tokens)``, after the ``cache``'s tokens if given (the
        cache is extended in place)."""
        past = cache.length if cache is not None else 0
        x = self.embed(ids)
        positions = torch.arange(past, past + x.shape[1])
        if self.pos is not None:
            x = self.pos(x, positions)
        for block in self.blocks:
            x = block(x, positions, cache)
        if self.spec.head == "last":  # the ops after the last layer run on the rows the head reads
            x = x[:, -1:]
        elif self.spec.head == "classifier":  # the first row (CLS)
            x = x[:, :1]
        if self.final_norm is not None:
            x = self.final_norm(x)
        if self.classifier is not None:
            return self.classifier(x)
        return x if self.head_proj is None else self.head_proj(x)

    def predict(self, ids: torch.Tensor, cache: KVCache | None = None) -> Prediction:
        """Everything the lowering describes: logits and, if the spec has one, the argmax."""
        logits = self(ids, cache)
        return Prediction(logits, self.argmax(logits[:, -1]) if self.argmax is not None else None)


def build_reference(spec: ModelSpec, seed: int = 0, dtype: torch.dtype = torch.float32) -> ReferenceModel:
    """A :class:`ReferenceModel` of ``spec`` with random weights drawn from ``seed`` (the global
    torch RNG is left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ReferenceModel(spec)
    return model.to(dtype).eval()


def example_inputs(spec: ModelSpec, context: int, seed: int = 0,
                   dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, KVCache | None]:
    """Random inputs matching the lowering at ``context`` tokens: for prefill, ids
    ``(batch, context)`` and no cache; for decode, ids ``(batch, 1)`` and a random cache of
    ``context`` tokens."""
    gen = torch.Generator().manual_seed(seed)
    if spec.input.kind == "patches":  # the client's pixels: (batch, patches, channels x patch x patch)
        patches = context - int(spec.input.cls_token)
        return torch.randn((spec.batch_size, patches, spec.input.patch_features), generator=gen, dtype=dtype), None
    if spec.phase == "prefill":
        return torch.randint(spec.vocab_size, (spec.batch_size, context), generator=gen), None
    ids = torch.randint(spec.vocab_size, (spec.batch_size, 1), generator=gen)
    return ids, KVCache.random(spec, context, seed=seed + 1, dtype=dtype)


# ---------------------------------------------------------------------------------------------
# Observing the ops
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TracedOp:
    """One op as executed: its name and kind, its dims (named as in :data:`picost.model.ops.KINDS`)
    read from the tensor shapes, and the elements of its first input."""

    name: str
    kind: str
    dims: dict[str, int]
    input_elements: int


def _leading(x: torch.Tensor) -> int:
    return math.prod(x.shape[:-2])


_DIMS: dict[str, Callable[[nn.Module, tuple[Any, ...], Any], dict[str, int]]] = {
    "embedding": lambda m, a, o: {"tokens": a[0].numel(), "vocab": m.num_embeddings, "width": m.embedding_dim},
    "linear": lambda m, a, o: {"m": a[0].numel() // m.in_features, "k": m.in_features, "n": m.out_features,
                               "bias": int(m.bias is not None)},
    "matmul": lambda m, a, o: {"b": _leading(a[0]), "m": a[0].shape[-2], "k": a[0].shape[-1],
                               "n": a[1].shape[-1]},
    "rope": lambda m, a, o: {"n": sum(t.numel() // t.shape[-1] for t in a[:2]) * m.rotated},
    "softmax": lambda m, a, o: {"rows": a[0].numel() // a[0].shape[-1], "cols": a[0].shape[-1],
                                "valid": int(torch.isfinite(a[0]).sum())},
}
_ROWWISE = ("layernorm", "rmsnorm", "argmax")


def _dims(kind: str, module: nn.Module, args: tuple[Any, ...], output: Any) -> dict[str, int]:
    if hasattr(module, "op_dims"):  # a module that knows its own dims (torch_parts)
        return module.op_dims(args, output)
    if kind in _DIMS:
        return _DIMS[kind](module, args, output)
    if kind in _ROWWISE:
        return {"rows": args[0].numel() // args[0].shape[-1], "cols": args[0].shape[-1]}
    return {"n": output.numel()}  # elementwise kinds


def op_modules(model: nn.Module) -> dict[str, nn.Module]:
    """Module path -> tagged op module."""
    return {path: m for path, m in model.named_modules() if hasattr(m, "op_kind")}


def trace_ops(model: ReferenceModel, ids: torch.Tensor, cache: KVCache | None = None) -> list[TracedOp]:
    """Run :meth:`ReferenceModel.predict` and record every op in execution order (``cache`` is
    left as it was)."""
    traced: list[TracedOp] = []

    def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        traced.append(TracedOp(module.op_name, module.op_kind, _dims(module.op_kind, module, args, output),
                               args[0].numel()))

    handles = [m.register_forward_hook(hook) for m in op_modules(model).values()]
    try:
        with torch.no_grad():
            model.predict(ids, cache.copy() if cache is not None else None)
    finally:
        for h in handles:
            h.remove()
    return traced


def nonlinear_elements(model: ReferenceModel, ids: torch.Tensor, cache: KVCache | None = None
                       ) -> dict[str, dict[str, int]]:
    """Per nonlinear kind, the number of calls (``ops``) and input elements (``elements``) seen
    by forward hooks; the final norm is keyed ``"<kind> (final)"`` as in
    :meth:`picost.model.flops.FlopsReport.nonlinear`."""
    out: dict[str, dict[str, int]] = {}
    for op in trace_ops(model, ids, cache):
        if op.kind not in NONLINEAR_KINDS:
            continue
        key = op.kind + (" (final)" if op.name == "final_norm" else "")
        row = out.setdefault(key, {"ops": 0, "elements": 0})
        row["ops"] += 1
        row["elements"] += op.input_elements
    return out


def torch_flops(model: ReferenceModel, ids: torch.Tensor, cache: KVCache | None = None
                ) -> tuple[int, dict[str, int]]:
    """FLOPs of :meth:`ReferenceModel.predict` counted by ``FlopCounterMode``: the total, and
    per op name for the ops that have any (``cache`` is left as it was)."""
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model.predict(ids, cache.copy() if cache is not None else None)
    counts = counter.get_flop_counts()
    root = type(model).__name__
    per_op = {m.op_name: sum(counts[f"{root}.{path}"].values())
              for path, m in op_modules(model).items() if f"{root}.{path}" in counts}
    return counter.get_total_flops(), per_op

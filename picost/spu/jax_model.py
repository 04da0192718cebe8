"""A JAX twin of ``picost/model/torch_reference.py``: the spec's model, op for op, for SPU.

Runs inside the SPU virtualenv: imports jax, numpy, the standard library and its sibling
``jax_ops.py`` (by path), never picost. The spec arrives as a dict (picost's
``ModelSpec.model_dump()``, written by ``picost/spu/bridge.py``).

Scope: batch 1, prefill over T tokens (the whole prompt), every feature torch_reference has
except decode (no KV cache): GELU (erf or tanh) / ReLU / SiLU / SwiGLU / GeGLU / identity
activations, LayerNorm / RMSNorm / none, pre or post norms, final norm, learned positions or RoPE
(rotate-half, first ``rope_fraction * head_dim`` dims, base 10000) or none, MHA / GQA / MQA (the
query heads of one key/value head stacked, as the lowering counts them), causal or not, a public
1/sqrt(head_dim) score scale or a learned per-head temperature, fused FFN, pruned FFN layers,
learned FFN output scales, parallel residual, head last / full / none with an argmax, tied or
untied embeddings, biases or not.

"Written the obvious way": the embedding is ``one_hot(ids, vocab) @ wte``; linears ``x @ W + b``;
the causal mask ``jnp.where(mask, scores, -1e4)`` (or an additive bias); GELU, softmax, LayerNorm
and RMSNorm are :mod:`jax_ops`'s (jax.nn.gelu / jax.nn.softmax / lax.rsqrt, or PUMA's
constructions), the same functions the op-by-op measurements run.

Weights are numpy arrays drawn from a seed (torch's default initializations in spirit: uniform
+-1/sqrt(fan_in) for linears, N(0, 1) token embeddings, N(0, 0.02) positions, gains near 1);
each is one SPU input with the role ``weight``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

import jax_ops

GATE_ACTIVATION = {"swiglu": "silu", "geglu": "gelu"}


@dataclass
class JaxModel:
    """``fun(*args)`` is the model; ``roles[i]`` says who holds ``args[i]`` (see jax_ops)."""

    fun: Callable[..., Any]
    args: list[np.ndarray]
    roles: list[str]
    names: list[str]
    outputs: str
    info: dict[str, Any] = field(default_factory=dict)


class _Spec:
    """The spec dict with picost's resolved sizes (kv_heads, dim_head, ffn_width, pruned)."""

    def __init__(self, d: dict[str, Any]) -> None:
        self.d = d
        self.n_heads = d["n_heads"]
        self.kv_heads = d.get("n_kv_heads") or d["n_heads"]
        self.dim_head = d.get("head_dim") or d["d_model"] // d["n_heads"]
        if d.get("d_ff") is not None:
            self.ffn_width = d["d_ff"]
        else:
            self.ffn_width = round(d["d_ff_multiplier"] * d["d_model"])
        ffn = d.get("ffn") or {}
        if ffn.get("pruned_from_layer") is not None:
            self.pruned = set(range(ffn["pruned_from_layer"], d["n_layers"]))
        else:
            self.pruned = set(ffn.get("pruned_layers") or [])
        self.fused = bool(ffn.get("fused", False))
        self.out_scale = bool(ffn.get("learnable_output_scale", False))
        norm = d.get("norm") or {}
        self.norm_kind = norm.get("kind", "layernorm")
        self.placement = norm.get("placement", "pre")
        self.final_norm = self.norm_kind != "none" and norm.get("final", True)
        att = d.get("attention") or {}
        self.causal = att.get("causal", True)
        self.temperature = att.get("learnable_temperature", False)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.d[name]
        except KeyError:
            raise AttributeError(name) from None


def _activation(kind: str, gelu_construction: str | None):
    import jax

    if kind in ("gelu", "gelu_tanh"):
        how = gelu_construction or jax_ops.DEFAULT_CONSTRUCTION[kind]
        return lambda x: jax_ops.gelu(x, how)
    if kind == "relu":
        return jax.nn.relu
    if kind == "silu":
        return jax.nn.silu
    raise ValueError(f"unknown activation {kind!r}")


def build(spec: dict[str, Any], context: int | None = None, input: str = "client-private",
          gelu: str | None = None, softmax: str = "stock", mask: str = "where", seed: int = 0) -> JaxModel:
    """The model of ``spec`` at ``context`` tokens (default: its context_length), with weights and
    token ids drawn from ``seed``. ``input``: ``client-private`` / ``shared`` token ids, or
    ``client-embedded`` (the client's embedded vectors are the input). ``gelu``: the GELU
    construction for every GELU (default: erf for gelu, tanh for gelu_tanh); ``softmax``: stock or
    puma; ``mask``: where or bias."""
    import jax.numpy as jnp

    s = _Spec(spec)
    if spec.get("phase", "prefill") != "prefill":
        raise ValueError("the SPU model runs prefill only (phase 'decode' needs a KV cache)")
    if spec.get("batch_size", 1) != 1:
        raise ValueError("the SPU model runs batch 1")
    T = int(context or spec["context_length"])
    d, V, H, Hkv, dh = spec["d_model"], spec["vocab_size"], s.n_heads, s.kv_heads, s.dim_head
    group = H // Hkv
    act_kind = spec.get("activation", "gelu")
    gated = act_kind in GATE_ACTIVATION
    bias = spec.get("bias", True)
    rng = np.random.default_rng(seed)
    weights: dict[str, np.ndarray] = {}

    def uniform(name: str, shape: tuple[int, ...], fan_in: int) -> None:
        bound = 1 / math.sqrt(fan_in)
        weights[name] = rng.uniform(-bound, bound, size=shape).astype(np.float32)

    def linear(name: str, k: int, n: int, with_bias: bool = bias) -> None:
        uniform(f"{name}.w", (k, n), k)
        if with_bias:
            uniform(f"{name}.b", (n,), k)

    def norm(name: str) -> None:
        weights[f"{name}.g"] = (1 + 0.1 * rng.standard_normal(d)).astype(np.float32)
        if s.norm_kind == "layernorm":
            weights[f"{name}.b"] = (0.02 * rng.standard_normal(d)).astype(np.float32)

    # -- weights, in the order of the lowering ------------------------------------------------
    wte = rng.standard_normal((V, d)).astype(np.float32)
    ids = rng.integers(0, V, size=(T,)).astype(np.int32)
    tie = spec.get("tied_embeddings", True) and spec.get("head", "last") != "none"
    if input != "client-embedded" or tie:
        weights["wte"] = wte
    if spec.get("positional", "learned") == "learned":
        if T > spec["context_length"]:
            raise ValueError(f"context {T} is beyond the learned positions ({spec['context_length']})")
        weights["wpe"] = (0.02 * rng.standard_normal((spec["context_length"], d))).astype(np.float32)
    pre, post = s.placement == "pre", s.placement == "post"
    has_norm = s.norm_kind != "none"
    parallel = spec.get("parallel_residual", False)
    for layer in range(spec["n_layers"]):
        L = f"L{layer}"
        has_ffn = layer not in s.pruned
        in_block = has_norm and (pre or (post and not parallel))
        if in_block:
            norm(f"{L}.ln_attn")
        linear(f"{L}.attn.qkv", d, (H + 2 * Hkv) * dh)
        if s.temperature:
            weights[f"{L}.attn.temperature"] = rng.uniform(0.5, 1.5, size=(H,)).astype(np.float32)
        linear(f"{L}.attn.out", H * dh, d)
        if has_ffn:
            if in_block:
                norm(f"{L}.ln_ffn")
            if s.fused:
                linear(f"{L}.ffn.fused", d, d)
            elif gated:
                linear(f"{L}.ffn.gate_up", d, 2 * s.ffn_width)
                linear(f"{L}.ffn.down", s.ffn_width, d)
            else:
                linear(f"{L}.ffn.up", d, s.ffn_width)
                linear(f"{L}.ffn.down", s.ffn_width, d)
            if s.out_scale:
                weights[f"{L}.ffn.out_scale"] = rng.uniform(0.5, 1.5, size=(d,)).astype(np.float32)
        if has_norm and post and parallel:
            norm(f"{L}.ln_out")
    if s.final_norm:
        norm("final_norm")
    head = spec.get("head", "last")
    if head != "none" and not tie:
        linear("head.proj", d, V, with_bias=False)
    names = list(weights)

    # -- public constants ---------------------------------------------------------------------
    rope_cs = None
    if spec.get("positional") == "rope":
        rotated = round(spec.get("rope_fraction", 1.0) * dh)
        rope_cs = jax_ops.rope_tables(np.arange(T), rotated)
    causal = jax_ops.causal_mask(T, T) if s.causal else None
    act = _activation(GATE_ACTIVATION.get(act_kind, act_kind), gelu) if act_kind != "identity" else None

    def fun(x_in, *ws):
        w = dict(zip(names, ws))

        def lin(name, x):
            y = x @ w[f"{name}.w"]
            return y + w[f"{name}.b"] if f"{name}.b" in w else y

        def nrm(name, x):
            if s.norm_kind == "layernorm":
                return jax_ops.layernorm(x, w[f"{name}.g"], w[f"{name}.b"])
            return jax_ops.rmsnorm(x, w[f"{name}.g"])

        def attention(layer, x):
            A = f"L{layer}.attn"
            qkv = lin(f"{A}.qkv", x)
            q = qkv[:, : H * dh].reshape(T, H, dh).transpose(1, 0, 2)
            k = qkv[:, H * dh: (H + Hkv) * dh].reshape(T, Hkv, dh).transpose(1, 0, 2)
            v = qkv[:, (H + Hkv) * dh:].reshape(T, Hkv, dh).transpose(1, 0, 2)
            if rope_cs is not None:
                q, k = jax_ops.rope(q, *rope_cs), jax_ops.rope(k, *rope_cs)
            scores = jnp.matmul(q.reshape(Hkv, group * T, dh), k.transpose(0, 2, 1)).reshape(H, T, T)
            if s.temperature:
                scores = scores * w[f"{A}.temperature"][:, None, None]
            else:
                scores = scores * (1.0 / math.sqrt(dh))
            probs = jax_ops.softmax(jax_ops.apply_mask(scores, causal, mask), softmax)
            ctx = jnp.matmul(probs.reshape(Hkv, group * T, T), v)
            ctx = ctx.reshape(H, T, dh).transpose(1, 0, 2).reshape(T, H * dh)
            return lin(f"{A}.out", ctx)

        def ffn(layer, x):
            F = f"L{layer}.ffn"
            if s.fused:
                h = lin(f"{F}.fused", x)
            elif gated:
                gu = lin(f"{F}.gate_up", x)
                h = lin(f"{F}.down", act(gu[:, : s.ffn_width]) * gu[:, s.ffn_width:])
            else:
                h = lin(f"{F}.up", x)
                if act is not None:
                    h = act(h)
                h = lin(f"{F}.down", h)
            return h * w[f"{F}.out_scale"] if s.out_scale else h

        x = x_in if input == "client-embedded" else jax_ops.one_hot_embed(x_in, w["wte"])
        if "wpe" in w:
            x = x + w["wpe"][:T]
        for layer in range(spec["n_layers"]):
            L = f"L{layer}"
            has_ffn = layer not in s.pruned
            in_block = has_norm and (pre or (post and not parallel))
            n_attn = f"{L}.ln_attn" if in_block else None
            n_ffn = f"{L}.ln_ffn" if in_block and has_ffn else None
            if parallel:
                a = attention(layer, nrm(n_attn, x) if pre and n_attn else x)
                if has_ffn:
                    x = x + ffn(layer, nrm(n_ffn, x) if pre and n_ffn else x)
                x = x + a
                if has_norm and post:
                    x = nrm(f"{L}.ln_out", x)
                continue
            x = x + attention(layer, nrm(n_attn, x) if pre and n_attn else x)
            if post and n_attn:
                x = nrm(n_attn, x)
            if not has_ffn:
                continue
            x = x + ffn(layer, nrm(n_ffn, x) if pre and n_ffn else x)
            if post and n_ffn:
                x = nrm(n_ffn, x)
        if head == "last":  # the ops after the last layer run on the rows the head reads
            x = x[-1:]
        if s.final_norm:
            x = nrm("final_norm", x)
        if head == "none":
            return (x,)
        logits = x @ (w["wte"].T if tie else w["head.proj.w"])
        if spec.get("argmax", True):
            return logits, jnp.argmax(logits[-1])
        return (logits,)

    if input == "client-embedded":
        first, role = wte[ids], "embedded"
    else:
        first, role = ids, "ids"
    outputs = "hidden states" if head == "none" else ("logits, next token" if spec.get("argmax", True)
                                                      else "logits")
    return JaxModel(fun, [first] + [weights[n] for n in names], [role] + ["weight"] * len(names),
                    ["ids" if role == "ids" else "embedded"] + names, outputs,
                    {"context": T, "weights": len(names)})

"""A whole model, privately: the secure forward pass of a spec, op for op as the lowering.

The server's weights are those of :func:`picost.model.torch_reference.build_reference` (same spec, same
seed), ring-encoded; the client's input is its token ids. The ops run in the lowering's order
and under its op names, so measured costs line up with the table's rows. Prefill runs the
prompt; decode runs one token against a KV cache of ``context`` tokens, which the client holds
and shares first (op ``_input``, not an op row): the reference's random cache
(:meth:`picost.model.torch_reference.KVCache.random`, seed ``seed + 1``). Batch size 1.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from picost.errors import UserError
from picost.mpc import ops_exec as X
from picost.mpc.protocols import Ctx
from picost.mpc.ring import encode
from picost.mpc.transport import CLIENT, SERVER
from picost.model.spec import GATED_ACTIVATIONS, ModelSpec
from picost.model.spec_extras import engine_gap

_GATE_ACTIVATION = {"swiglu": "silu", "geglu": "gelu"}


def check_supported(spec: ModelSpec) -> None:
    if spec.batch_size != 1:
        raise UserError(f"the MPC engine runs batch size 1 (spec '{spec.name}' has {spec.batch_size})",
                        field="batch_size")
    gap = engine_gap(spec)
    if gap is not None:
        raise UserError(f"the MPC engine does not run {gap[1]} (spec '{spec.name}'; picost estimate costs them)",
                        field=gap[0])
    if spec.attention.sliding_window is not None:
        raise UserError(f"the MPC engine runs full attention only: spec '{spec.name}' has a sliding window of "
                        f"{spec.attention.sliding_window} keys (picost estimate costs it; the plaintext reference "
                        "computes it)", field="attention.sliding_window")


_WEIGHTS: dict[tuple[str, int, int], dict[str, torch.Tensor]] = {}


def server_weights(spec: ModelSpec, seed: int, frac_bits: int) -> dict[str, torch.Tensor]:
    """The reference model's parameters, ring-encoded; linear weights transposed to (in, out).
    Built once per process (the offline rehearsal and the online run share them)."""
    key = (spec.model_dump_json(), seed, frac_bits)
    if key not in _WEIGHTS:
        _WEIGHTS[key] = _encoded_weights(spec, seed, frac_bits)
    return _WEIGHTS[key]


def _encoded_weights(spec: ModelSpec, seed: int, frac_bits: int) -> dict[str, torch.Tensor]:
    from picost.model.torch_reference import build_reference

    model = build_reference(spec, seed, dtype=torch.float64)
    out = {}
    for name, p in model.state_dict().items():
        value = p.detach()
        if name.endswith(".weight") and value.dim() == 2 and "embed" not in name and "pos" not in name:
            value = value.t()
        out[name] = encode(value.contiguous(), frac_bits)
    if spec.head != "none" and spec.tied_embeddings:
        out["head_proj.weight"] = out["embed.weight"].t().contiguous()
    return out


class SecureModel:
    """Runs a spec's forward pass on shares. ``w`` holds the server's weights (empty elsewhere)."""

    def __init__(self, ctx: Ctx, spec: ModelSpec, weights: dict[str, torch.Tensor] | None,
                 cache: list[tuple[torch.Tensor, torch.Tensor]] | None = None) -> None:
        self.ctx, self.s = ctx, spec
        self.w = weights or {}
        self.cache = cache
        """Shares of each layer's cached keys (after RoPE) and values, (n_kv_heads, past, dh)."""
        self.past = 0 if cache is None else cache[0][0].shape[1]
        self.kept: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        """When a list: each layer's keys and values (shares, cache included) after a forward pass,
        the next decode step's cache (generation, :mod:`picost.mpc.generate`)."""

    def _w(self, name: str) -> torch.Tensor | None:
        return self.w.get(name) if self.ctx.role == SERVER else None

    def linear(self, op: str, prefix: str, x: torch.Tensor, k: int, n: int) -> torch.Tensor:
        return X.linear(self.ctx, op, x, self._w(f"{prefix}.weight"), self._w(f"{prefix}.bias"), k, n)

    def forward(self, ids: torch.Tensor | None, tokens: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Shares of the logits (rows, V) -- or final hidden states for head 'none' -- and the
        client's next token (None elsewhere or without argmax)."""
        s, ctx = self.s, self.ctx
        x = X.embedding(ctx, "embed.tok", ids, self._w("embed.weight"), tokens, s.vocab_size, s.d_model)
        if s.positional == "learned":
            with ctx.tx.op("embed.pos"):
                pos = self._w("pos.weight")
                x = X.server_add(ctx, x, pos[self.past: self.past + tokens] if pos is not None else None)
        pruned = s.pruned_ffn_layers
        for layer in range(s.n_layers):
            x = self.block(layer, x, tokens, layer not in pruned)
        if s.head == "last":  # the ops after the last layer run on the rows the head reads
            x = x[-1:]
        if s.has_norm and s.norm.final:
            x = self.norm("final_norm", "final_norm", x)
        if s.head == "none":
            return x, None
        logits = self.linear("head.proj", "head_proj", x, s.d_model, s.vocab_size)
        token = X.argmax(ctx, "head.argmax", logits[-1:]) if s.argmax else None
        return logits, token

    def norm(self, op: str, prefix: str, x: torch.Tensor) -> torch.Tensor:
        return X.norm(self.ctx, op, self.s.norm.kind, x, self._w(f"{prefix}.weight"), self._w(f"{prefix}.bias"))

    def block(self, layer: int, x: torch.Tensor, tokens: int, has_ffn: bool) -> torch.Tensor:
        s, L, P = self.s, f"L{layer}", f"blocks.{layer}"
        pre = s.has_norm and s.norm.placement == "pre"
        post = s.has_norm and s.norm.placement == "post"
        add = lambda op, a, b: self._add(op, a, b)  # noqa: E731
        if s.parallel_residual:
            a = self.attention(layer, self.norm(f"{L}.ln_attn", f"{P}.ln_attn", x) if pre else x, tokens)
            if has_ffn:
                h = self.norm(f"{L}.ln_ffn", f"{P}.ln_ffn", x) if pre else x
                x = add(f"{L}.ffn.residual", x, self.ffn(layer, h))
            x = add(f"{L}.attn.residual", x, a)
            return self.norm(f"{L}.ln_out", f"{P}.ln_out", x) if post else x
        h = self.norm(f"{L}.ln_attn", f"{P}.ln_attn", x) if pre else x
        x = add(f"{L}.attn.residual", x, self.attention(layer, h, tokens))
        if post:
            x = self.norm(f"{L}.ln_attn", f"{P}.ln_attn", x)
        if not has_ffn:
            return x
        h = self.norm(f"{L}.ln_ffn", f"{P}.ln_ffn", x) if pre else x
        x = add(f"{L}.ffn.residual", x, self.ffn(layer, h))
        return self.norm(f"{L}.ln_ffn", f"{P}.ln_ffn", x) if post else x

    def _add(self, op: str, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        with self.ctx.tx.op(op):
            return a + b

    def attention(self, layer: int, x: torch.Tensor, T: int) -> torch.Tensor:
        s, ctx, A, P = self.s, self.ctx, f"L{layer}.attn", f"blocks.{layer}.attn"
        H, Hkv, dh = s.n_heads, s.kv_heads, s.dim_head
        group = H // Hkv
        qkv = self.linear(f"{A}.qkv", f"{P}.qkv", x, s.d_model, (H + 2 * Hkv) * dh)
        q, k, v = qkv.split([H * dh, Hkv * dh, Hkv * dh], dim=-1)
        q = q.reshape(T, H, dh).transpose(0, 1)
        k = k.reshape(T, Hkv, dh).transpose(0, 1)
        v = v.reshape(T, Hkv, dh).transpose(0, 1)
        if s.positional == "rope":
            rot = round(s.rope_fraction * dh)
            cos, sin = X.rope_tables(ctx, torch.arange(self.past, self.past + T), rot)
            both = X.rope(ctx, f"{A}.rope", torch.cat([q[..., :rot], k[..., :rot]], dim=0), cos, sin)
            q = torch.cat([both[:H], q[..., rot:]], dim=-1)
            k = torch.cat([both[H:], k[..., rot:]], dim=-1)
        if self.cache is not None:
            k = torch.cat([self.cache[layer][0], k], dim=1)
            v = torch.cat([self.cache[layer][1], v], dim=1)
        if self.kept is not None:
            self.kept.append((k.contiguous(), v.contiguous()))
        keys = k.shape[1]
        scores = X.matmul(ctx, f"{A}.qk", q.reshape(Hkv, group * T, dh), k.transpose(-1, -2).contiguous())
        scores = scores.reshape(H, T, keys)
        if s.attention.learnable_temperature:
            temp = self._w(f"{P}.score_scale.weight")
            scores = X.weight_mul(ctx, f"{A}.temperature", scores,
                                  temp.view(H, 1, 1) if temp is not None else None)
        else:
            scores = X.scale(ctx, f"{A}.scale", scores, 1.0 / math.sqrt(dh))
        allowed = None  # a new token sees the whole cache: only prefill masks
        if s.attention.causal and self.past == 0:
            allowed = torch.ones(T, T, dtype=torch.bool).tril().expand(H, T, T).reshape(H * T, T)
        probs = X.softmax(ctx, f"{A}.softmax", scores.reshape(H * T, keys), allowed)
        context = X.matmul(ctx, f"{A}.av", probs.reshape(Hkv, group * T, keys), v.contiguous())
        context = context.reshape(H, T, dh).transpose(0, 1).reshape(T, H * dh)
        return self.linear(f"{A}.out", f"{P}.out", context, H * dh, s.d_model)

    def ffn(self, layer: int, x: torch.Tensor) -> torch.Tensor:
        s, ctx, F, P = self.s, self.ctx, f"L{layer}.ffn", f"blocks.{layer}.ffn"
        d, dff, act = s.d_model, s.ffn_width, s.activation
        if s.ffn.fused:
            h = self.linear(f"{F}.fused", f"{P}.fused", x, d, d)
        elif act in GATED_ACTIVATIONS:
            gu = self.linear(f"{F}.gate_up", f"{P}.gate_up", x, d, 2 * dff)
            gate, up = gu[:, :dff], gu[:, dff:]
            g = X.activation(ctx, f"{F}.act", _GATE_ACTIVATION[act], gate.contiguous())
            h = X.mul(ctx, f"{F}.gate_mul", g, up.contiguous())
            h = self.linear(f"{F}.down", f"{P}.down", h, dff, d)
        else:
            h = self.linear(f"{F}.up", f"{P}.up", x, d, dff)
            if act != "identity":
                h = X.activation(ctx, f"{F}.act", act, h)
            h = self.linear(f"{F}.down", f"{P}.down", h, dff, d)
        if s.ffn.learnable_output_scale:
            w = self._w(f"{P}.out_scale.weight")
            h = X.weight_mul(ctx, f"{F}.out_scale", h, w.view(1, d) if w is not None else None)
        return h


def run_model(ctx: Ctx, spec: ModelSpec, seed: int, ids: list[int], context: int) -> dict[str, Any]:
    """One party's part of a private forward pass (``ids``: the client's token ids, zeros
    elsewhere; ``context``: prompt tokens for prefill, cached tokens for decode). The client's
    result has the next token and (revealed for error reports, op ``_output``) the logits."""
    check_supported(spec)
    weights = server_weights(spec, seed, ctx.frac_bits) if ctx.role == SERVER else None
    cache = share_cache(ctx, spec, context, seed + 1) if spec.phase == "decode" else None
    model = SecureModel(ctx, spec, weights, cache)
    logits, token = model.forward(torch.tensor(ids, dtype=torch.int64), len(ids))
    with ctx.tx.op("_output"):
        revealed = ctx.reveal_to_client(logits)
    out: dict[str, Any] = {}
    if revealed is not None:
        out["logits"] = revealed
        out["next_token"] = None if token is None else int(token[0])
        out["frac_bits"] = ctx.frac_bits
    return out


def share_cache(ctx: Ctx, spec: ModelSpec, tokens: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The client's KV cache (the reference's random one), shared with the server (op ``_input``)."""
    from picost.mpc.oplab import share_input
    from picost.model.torch_reference import KVCache

    shape = (spec.kv_heads, tokens, spec.dim_head)
    plain = KVCache.random(spec, tokens, seed=seed, dtype=torch.float64) if ctx.role == CLIENT else None
    gen = torch.Generator().manual_seed(seed) if ctx.role == CLIENT else None
    shares = []
    with ctx.tx.op("_input"):
        for layer in range(spec.n_layers):
            pair = []
            for part in (plain.keys, plain.values) if plain is not None else (None, None):
                value = encode(part[layer][0], ctx.frac_bits) if part is not None else None
                pair.append(share_input(ctx, value, shape, gen))
            shares.append((pair[0], pair[1]))
    return shares

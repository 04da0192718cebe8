"""A CrypTen twin of ``picost/model/torch_reference.py``: the spec's model, op for op, in CrypTen 0.4.1.

Runs inside the CrypTen virtualenv: imports torch, crypten, the standard library and its sibling
``ct_ops.py`` (by path), never picost. What it gets from picost's side (``bridge.py``):

* ``ops``: every op module of the torch reference in definition order, ``{"name", "kind"}`` and
  its public constants (``factor`` of a scale, ``rotated`` of a RoPE); an op is present in the
  model iff it is listed (norms, positions, FFNs, temperatures, ...);
* ``arch``: heads, key/value heads, head width, causal, norm placement, parallel residual, head;
* the torch reference's own parameters per op name, and the public RoPE cos/sin tables, in a
  ``torch.save`` file: the CrypTen model holds exactly the reference's weights, so its logits
  are compared with the reference's.

Who holds what: the client's token ids enter as a one-hot shared from rank 0; the server's
values (rank 1) are encrypted from rank 1 (``weights``/``norm_gain`` ``shared``) or left as
plain tensors both parties know (``public``). Every op of the forward pass runs under
:meth:`CtModel.op`, which reads CrypTen's counters before and after it, so the bytes and rounds
of each of picost's ops are CrypTen's own counts. Batch 1, prefill (no KV cache).
"""

from __future__ import annotations

from typing import Any, Callable

import ct_ops


def _counters() -> tuple[int, int]:
    import crypten.communicator as comm

    stats = comm.get().get_communication_stats()
    return int(stats["rounds"]), int(stats["bytes"])


class CtModel:
    """The model of one request; :meth:`forward` runs it and fills :attr:`measured`."""

    def __init__(self, request: dict[str, Any], params: dict[str, dict[str, Any]],
                 tables: dict[str, Any]) -> None:
        self.arch = request["arch"]
        self.ops = {o["name"]: o for o in request["ops"]}
        self.weights = request.get("weights", "shared")
        self.norm_gain = request.get("norm_gain", "shared")
        self.tables = tables
        self.params = {name: {p: self._server(name, p, t) for p, t in ps.items()} for name, ps in params.items()}
        self.measured: list[dict[str, Any]] = []

    # -- the server's values ---------------------------------------------------------------

    def _server(self, name: str, param: str, value: Any) -> Any:
        """A server value as the model holds it: linears transposed to k x n; encrypted from
        rank 1 unless its option is ``public``."""
        import crypten

        kind = self.ops[name]["kind"]
        if kind == "linear" and param == "weight":
            value = value.t().contiguous()
        option = self.norm_gain if kind in ("layernorm", "rmsnorm") else self.weights
        return value if option == "public" else crypten.cryptensor(value, src=1)

    def has(self, name: str) -> bool:
        return name in self.ops

    def op(self, name: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Run op ``name`` and record CrypTen's rounds and bytes for it (this party's counts)."""
        if name not in self.ops:
            raise KeyError(f"op {name} is not in the request's ops")
        rounds0, bytes0 = _counters()
        out = fn(*args)
        rounds1, bytes1 = _counters()
        self.measured.append({"name": name, "kind": self.ops[name]["kind"], "rounds": rounds1 - rounds0,
                              "bytes": bytes1 - bytes0})
        return out

    # -- op by op, as torch_reference ------------------------------------------------------

    def linear(self, name: str, x: Any) -> Any:
        p = self.params[name]
        return self.op(name, ct_ops.linear, x, p["weight"], p.get("bias"))

    def norm(self, name: str, x: Any) -> Any:
        p = self.params[name]
        if self.ops[name]["kind"] == "layernorm":
            return self.op(name, ct_ops.layernorm, x, p["weight"], p.get("bias"))
        return self.op(name, ct_ops.rmsnorm, x, p["weight"])

    def attention(self, layer: int, x: Any) -> Any:
        import torch

        A, a = f"L{layer}.attn", self.arch
        B, t = x.size(0), x.size(1)
        H, Hkv, dh = a["n_heads"], a["kv_heads"], a["dim_head"]
        qkv = self.linear(f"{A}.qkv", x)
        q = qkv[..., : H * dh].view(B, t, H, dh).transpose(1, 2)
        k = qkv[..., H * dh: (H + Hkv) * dh].view(B, t, Hkv, dh).transpose(1, 2)
        v = qkv[..., (H + Hkv) * dh:].view(B, t, Hkv, dh).transpose(1, 2)
        if self.has(f"{A}.rope"):
            rotated, cos, sin = self.ops[f"{A}.rope"]["rotated"], self.tables["rope_cos"], self.tables["rope_sin"]
            q, k = self.op(f"{A}.rope", lambda q, k: (ct_ops.rope(q, cos, sin, rotated),
                                                      ct_ops.rope(k, cos, sin, rotated)), q, k)
        group = H // Hkv
        scores = self.op(f"{A}.qk", lambda q, k: q.matmul(k), q.reshape(B, Hkv, group * t, dh), k.transpose(-1, -2))
        scores = scores.view(B, H, t, t)
        if self.has(f"{A}.temperature"):
            temp = self.params[f"{A}.temperature"]["weight"].view(1, H, 1, 1)
            scores = self.op(f"{A}.temperature", lambda s: s * temp, scores)
        else:
            factor = self.ops[f"{A}.scale"]["factor"]
            scores = self.op(f"{A}.scale", lambda s: s * factor, scores)
        mask = None
        if a["causal"]:
            positions = torch.arange(t)
            mask = torch.where(positions[None, :] <= positions[:, None], 0.0, ct_ops.MASK_BIAS)
        probs = self.op(f"{A}.softmax", ct_ops.softmax, scores, mask)
        ctx = self.op(f"{A}.av", lambda p, v: p.matmul(v), probs.reshape(B, Hkv, group * t, t), v)
        return self.linear(f"{A}.out", ctx.view(B, H, t, dh).transpose(1, 2).reshape(B, t, H * dh))

    def ffn(self, layer: int, x: Any) -> Any:
        F = f"L{layer}.ffn"
        if self.has(f"{F}.fused"):
            h = self.linear(f"{F}.fused", x)
        elif self.has(f"{F}.gate_up"):
            gate_up = self.linear(f"{F}.gate_up", x)
            width = gate_up.size(-1) // 2
            act = self.op(f"{F}.act", ct_ops.ACTIVATIONS[self.ops[f"{F}.act"]["kind"]], gate_up[..., :width])
            h = self.linear(f"{F}.down", self.op(f"{F}.gate_mul", lambda g, u: g * u, act, gate_up[..., width:]))
        else:
            h = self.linear(f"{F}.up", x)
            if self.has(f"{F}.act"):
                h = self.op(f"{F}.act", ct_ops.ACTIVATIONS[self.ops[f"{F}.act"]["kind"]], h)
            h = self.linear(f"{F}.down", h)
        if self.has(f"{F}.out_scale"):
            scale = self.params[f"{F}.out_scale"]["weight"]
            h = self.op(f"{F}.out_scale", lambda y: y * scale, h)
        return h

    def block(self, layer: int, x: Any) -> Any:
        L, pre = f"L{layer}", self.arch["norm_placement"] == "pre"
        ln_attn, ln_ffn, ln_out = f"{L}.ln_attn", f"{L}.ln_ffn", f"{L}.ln_out"
        has_ffn = self.has(f"{L}.ffn.residual")

        def before(norm: str, y: Any) -> Any:
            return self.norm(norm, y) if pre and self.has(norm) else y

        def after(norm: str, y: Any) -> Any:
            return self.norm(norm, y) if not pre and self.has(norm) else y

        add = lambda u, w: u + w  # noqa: E731
        if self.arch["parallel_residual"]:
            a = self.attention(layer, before(ln_attn, x))
            if has_ffn:
                x = self.op(f"{L}.ffn.residual", add, x, self.ffn(layer, before(ln_ffn, x)))
            x = self.op(f"{L}.attn.residual", add, x, a)
            return self.norm(ln_out, x) if self.has(ln_out) else x
        x = self.op(f"{L}.attn.residual", add, x, self.attention(layer, before(ln_attn, x)))
        x = after(ln_attn, x)
        if not has_ffn:
            return x
        x = self.op(f"{L}.ffn.residual", add, x, self.ffn(layer, before(ln_ffn, x)))
        return after(ln_ffn, x)

    def forward(self, one_hot: Any) -> tuple[Any, Any]:
        """Logits (or final hidden states) and the argmax one-hot (or None), for the client's
        shared one-hot ``(1, tokens, vocab)``."""
        x = self.op("embed.tok", ct_ops.embedding, one_hot, self.params["embed.tok"]["weight"])
        if self.has("embed.pos"):
            table = self.params["embed.pos"]["weight"]
            x = self.op("embed.pos", lambda y: y + table[: y.size(1)], x)
        for layer in range(self.arch["n_layers"]):
            x = self.block(layer, x)
        if self.arch["head"] == "last":
            x = x[:, -1:]
        if self.has("final_norm"):
            x = self.norm("final_norm", x)
        logits = self.linear("head.proj", x) if self.has("head.proj") else x
        chosen = self.op("head.argmax", ct_ops.argmax, logits[:, -1]) if self.has("head.argmax") else None
        return logits, chosen

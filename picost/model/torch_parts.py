"""Torch twins of the spec sections beyond the decoder (:mod:`picost.model.spec_extras`), for the
plain reference model (:mod:`picost.model.torch_reference`): ViT's patch embedding, the classifier
head (BERT's pooler and classifier), and a mixture-of-experts FFN with oblivious or revealed routing.
Each op is a tagged submodule (:func:`tag`), named and shaped as the lowering emits it."""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from picost.model.spec import GATED_ACTIVATIONS, ModelSpec


def tag(module: nn.Module, name: str, kind: str) -> nn.Module:
    """Tag ``module`` as the lowering's op ``name`` of ``kind``."""
    module.op_name = name
    module.op_kind = kind
    return module


class PatchEmbed(nn.Module):
    """The client's patches ``(batch, patches, features)`` through the patch linear, with the
    server's CLS row prepended."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.proj = tag(nn.Linear(spec.input.patch_features, spec.d_model), "embed.patch", "linear")
        self.cls = nn.Parameter(torch.randn(1, 1, spec.d_model) * 0.02) if spec.input.cls_token else None

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        x = self.proj(patches)
        return x if self.cls is None else torch.cat((self.cls.expand(x.shape[0], -1, -1), x), dim=1)


class ClassifierHead(nn.Module):
    """Pooler (dense + tanh, if the spec has one) and classifier over the rows given (the first)."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        d = spec.d_model
        pooler = spec.classifier is not None and spec.classifier.pooler
        self.pooler = tag(nn.Linear(d, d), "head.pooler", "linear") if pooler else None
        self.pooler_act = tag(nn.Tanh(), "head.pooler_act", "tanh") if pooler else None
        self.classifier = tag(nn.Linear(d, spec.head_width), "head.classifier", "linear")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pooler is not None:
            x = self.pooler_act(self.pooler(x))
        return self.classifier(x)


class TopK(nn.Module):
    """The ``k`` largest values of each row kept in place, the others set to -inf."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keep = torch.zeros_like(x, dtype=torch.bool).scatter(-1, x.topk(self.k, dim=-1).indices, True)
        return x.masked_fill(~keep, float("-inf"))

    def op_dims(self, args: tuple[Any, ...], output: Any) -> dict[str, int]:
        return {"rows": args[0].numel() // args[0].shape[-1], "cols": args[0].shape[-1], "k": self.k}


class Reveal(nn.Module):
    """The indices of the ``k`` kept (finite) values of each row, largest first: the routing opened."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.topk(self.k, dim=-1).indices


class ExpertLinear(nn.Module):
    """``experts`` linears; row ``i`` of the input goes through expert ``which[i]``."""

    def __init__(self, experts: int, in_features: int, out_features: int, bias: bool) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.randn(experts, out_features, in_features) / in_features ** 0.5)
        self.bias = nn.Parameter(torch.zeros(experts, out_features)) if bias else None

    def forward(self, x: torch.Tensor, which: torch.Tensor) -> torch.Tensor:
        out = x.new_zeros(x.shape[0], self.out_features)
        for e in range(self.weight.shape[0]):
            rows = which == e
            if rows.any():
                out[rows] = nn.functional.linear(x[rows], self.weight[e], None if self.bias is None else self.bias[e])
        return out


class SumRuns(nn.Module):
    """The weighted outputs of each token's ``runs`` experts, summed: ``runs - 1`` adds per element."""

    def forward(self, x: torch.Tensor, runs: int) -> torch.Tensor:
        return x.view(-1, runs, x.shape[-1]).sum(dim=1)

    def op_dims(self, args: tuple[Any, ...], output: Any) -> dict[str, int]:
        return {"n": output.numel() * (args[1] - 1)}


class MoEFFN(nn.Module):
    """Router, top-k, softmax over the kept logits, the experts (all E per token when routing is
    oblivious, the k chosen when revealed), gate weighting and the sum; ops ``L{layer}.ffn.*``."""

    def __init__(self, spec: ModelSpec, layer: int, activation: Callable[[str], nn.Module], mul: nn.Module) -> None:
        super().__init__()
        assert spec.moe is not None
        F, d, dff, E = f"L{layer}.ffn", spec.d_model, spec.ffn_width, spec.moe.experts
        self.experts, self.revealed = E, spec.moe.routing == "revealed"
        self.router = tag(nn.Linear(d, E, bias=False), f"{F}.router", "linear")
        self.topk = tag(TopK(spec.moe.experts_per_token), f"{F}.topk", "topk")
        self.reveal = tag(Reveal(spec.moe.experts_per_token), f"{F}.reveal", "reveal") if self.revealed else None
        self.softmax = tag(nn.Softmax(dim=-1), f"{F}.gate_softmax", "softmax")
        self.gated = spec.activation in GATED_ACTIVATIONS
        act = {"swiglu": "silu", "geglu": "gelu"}.get(spec.activation, spec.activation)
        X = f"{F}.experts"
        self.up = tag(ExpertLinear(E, d, (2 if self.gated else 1) * dff, spec.bias), f"{X}.gate_up" if self.gated
                      else f"{X}.up", "linear")
        self.act = tag(activation(act), f"{X}.act", act) if act != "identity" else None
        self.gate_mul = tag(mul, f"{X}.gate_mul", "mul") if self.gated else None
        self.down = tag(ExpertLinear(E, dff, d, spec.bias), f"{X}.down", "linear")
        self.gate_weight = tag(type(mul)(), f"{X}.gate_weight", "mul")
        self.sum = tag(SumRuns(), f"{X}.sum", "add")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        kept = self.topk(self.router(x))
        if self.reveal is not None:  # each token's k experts: the routing is opened
            which = self.reveal(kept)
        else:  # every expert on every token; the ones not chosen get weight 0
            which = torch.arange(self.experts).expand(x.shape[0], -1)
        probs = self.softmax(kept)
        runs = which.shape[1]
        rows, which = x.repeat_interleave(runs, dim=0), which.reshape(-1)
        h = self.up(rows, which)
        if self.gated:
            gate, up = h.chunk(2, dim=-1)
            h = self.gate_mul(self.act(gate), up)
        elif self.act is not None:
            h = self.act(h)
        h = self.gate_weight(self.down(h, which), probs.gather(1, which.view(-1, runs)).reshape(-1, 1))
        out = self.sum(h, runs) if runs > 1 else h
        return out.view(shape)

"""Read a HuggingFace ``config.json`` (GPT-2, GPT-J, GPT-NeoX/Pythia, Llama/Mistral; BERT, RoBERTa, OPT, Qwen2,
Phi-1/2, Phi-3, Gemma, ViT, Mixtral in :mod:`picost.model.hf_families`) into a ModelSpec.

No hub access: the user passes the file. Keys that do not bear on cost are ignored (HF configs
carry many); the keys we need are required, and errors point at the HF key and its line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from picost.errors import UserError
from picost.model import limits
from picost.model.spec import ModelSpec, Origins, validate_spec
from picost.model import hf_families, hf_nearest
from picost.model.located_yaml import load_located

_GPT2_ACT = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu", "relu": "relu"}
_NEOX_ACT = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_fast": "gelu_tanh", "relu": "relu"}
_LLAMA_ACT = {"silu": "swiglu", "gelu": "geglu", "gelu_pytorch_tanh": "geglu"}


class _Reader:
    """Reads HF keys and remembers which HF key (and line) each spec field came from."""

    def __init__(self, raw: dict[str, Any], lines: dict[tuple, int], file: str) -> None:
        self.raw, self.lines, self.file = raw, lines, file
        self.origins: Origins = {}

    def take(self, field: str, *keys: str, default: Any = ..., convert: Callable[[Any], Any] | None = None) -> Any:
        for key in keys:
            if key in self.raw and self.raw[key] is not None:
                self.origins[field] = (self.file, self.lines.get((key,)))
                value = self.raw[key]
                if convert is None:
                    return value
                try:
                    return convert(value)
                except (KeyError, TypeError, ValueError):
                    raise UserError(f"unsupported value {limits.short(value)}", file=self.file,
                                    line=self.lines.get((key,)), field=key) from None
        if default is ...:
            raise UserError(f"required key missing (one of: {', '.join(keys)})", file=self.file,
                            field=keys[0])
        return default


def load_hf_config(path: Path) -> ModelSpec:
    raw, lines = load_located(path)
    file = str(path)
    if not isinstance(raw, dict):
        raise UserError("a HuggingFace config must be a JSON object", file=file, line=1)
    model_type = raw.get("model_type")
    builders = {"gpt2": _gpt2, "gptj": _gptj, "gpt_neox": _neox, "llama": _llama, "mistral": _llama,
                **hf_families.READERS}
    if isinstance(model_type, str) and model_type in hf_families.UNSUPPORTED:
        raise UserError(f"model_type {model_type!r} cannot be expressed: {hf_families.UNSUPPORTED[model_type]}",
                        file=file, line=lines.get(("model_type",)), field="model_type")
    if isinstance(model_type, str) and model_type in hf_nearest.SUGGESTERS:
        message = hf_nearest.SUGGESTERS[model_type](_Reader(raw, lines, file))
        raise UserError(message, file=file, line=lines.get(("model_type",)), field="model_type")
    if not isinstance(model_type, str) or model_type not in builders:
        raise UserError(
            f"unsupported model_type {model_type!r}; supported: {', '.join(builders)}",
            file=file, line=lines.get(("model_type",)), field="model_type",
        )
    r = _Reader(raw, lines, file)
    data = builders[model_type](r)
    given = raw.get("_name_or_path")
    data["name"] = (given if isinstance(given, str) and given else path.stem).rsplit("/", 1)[-1] or path.stem
    data["description"] = f"imported from HuggingFace config {path.name} (model_type {model_type})"
    if model_type in hf_families.NOTES:
        data["description"] += f"; {hf_families.NOTES[model_type]}"
    window = hf_families.sliding_window(r, model_type, data.get("n_layers"))
    if window is not None:
        data.setdefault("attention", {})["sliding_window"] = window
        data["description"] += f"; sliding window of {window} keys per query"
    elif model_type not in hf_families.WINDOWED and raw.get("sliding_window") and raw.get("use_sliding_window", True):
        data["description"] += (f"; sliding_window={raw['sliding_window']} is not modelled: attention is "
                                "costed over the full context")
    return validate_spec(data, r.origins, default_file=file)


def _gpt2(r: _Reader) -> dict[str, Any]:
    d_model = r.take("d_model", "n_embd")
    inner = r.take("d_ff", "n_inner", default=None)
    if inner is None and isinstance(d_model, int) and not isinstance(d_model, bool):
        inner = 4 * d_model
    return {
        "n_layers": r.take("n_layers", "n_layer"),
        "d_model": d_model,
        "n_heads": r.take("n_heads", "n_head"),
        "d_ff": inner if inner is not None else d_model,  # d_model's own error when it is not a count
        "vocab_size": r.take("vocab_size", "vocab_size"),
        "context_length": r.take("context_length", "n_positions", "n_ctx"),
        "activation": r.take("activation", "activation_function", default="gelu_tanh", convert=_GPT2_ACT.__getitem__),
        "norm": {"kind": "layernorm", "placement": "pre", "final": True},
        "positional": "learned",
        "tied_embeddings": r.take("tied_embeddings", "tie_word_embeddings", default=True),
        "bias": True,
    }


def _gptj(r: _Reader) -> dict[str, Any]:
    """GPT-J: GPT-2's keys, a parallel block on one shared LayerNorm (``ln_1``), RoPE on the first
    ``rotary_dim`` dims of each head (all of them when null), untied head."""
    data = _gpt2(r)
    d_model, heads = data["d_model"], data["n_heads"]
    rotary = r.take("rope_fraction", "rotary_dim", default=None, convert=hf_families.count)
    sizes_known = all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (d_model, heads))
    return {
        **data,
        "positional": "rope",
        "rope_fraction": rotary / (d_model // heads) if rotary is not None and sizes_known else 1.0,
        "tied_embeddings": r.take("tied_embeddings", "tie_word_embeddings", default=False),
        "parallel_residual": True,
        "parallel_norm": "shared",
    }


def _neox(r: _Reader) -> dict[str, Any]:
    return {
        **hf_families.sizes(r),
        "activation": r.take("activation", "hidden_act", default="gelu", convert=_NEOX_ACT.__getitem__),
        "norm": {"kind": "layernorm", "placement": "pre", "final": True},
        "positional": "rope",
        "rope_fraction": r.take("rope_fraction", "rotary_pct", default=1.0, convert=hf_families.fraction),
        "tied_embeddings": r.take("tied_embeddings", "tie_word_embeddings", default=False),
        "parallel_residual": r.take("parallel_residual", "use_parallel_residual", default=True),
        "bias": True,
    }


def _llama(r: _Reader) -> dict[str, Any]:
    data = {
        **hf_families.sizes(r),
        "n_kv_heads": r.take("n_kv_heads", "num_key_value_heads", default=None),
        "activation": r.take("activation", "hidden_act", default="silu", convert=_LLAMA_ACT.__getitem__),
        "norm": {"kind": "rmsnorm", "placement": "pre", "final": True},
        "positional": "rope",
        "tied_embeddings": r.take("tied_embeddings", "tie_word_embeddings", default=False),
        "bias": r.take("bias", "attention_bias", default=False),
    }
    head_dim = r.take("head_dim", "head_dim", default=None)
    if head_dim is not None:
        data["head_dim"] = head_dim
    return data

"""The nearest working spec for a HuggingFace family picost does not read: a one-line YAML spec
(a flow mapping, ``{extends: bert-base, n_layers: 6}``) that the refusal prints and that loads as
it stands when saved to a ``.yaml`` file.

Each suggester reads the config through the shared reader of :mod:`picost.model.hf_config`
(errors name the HF key and its line) and returns the whole refusal message. Only the fields
that differ from the shipped base spec are written out.
"""

from __future__ import annotations

from typing import Any, Callable

from picost.model import hf_families
from picost.model.located_yaml import load_located
from picost.shipped import shipped_dir


def _overlay(base: str, fields: dict[str, Any]) -> str:
    """``{extends: BASE, field: value, ...}`` with the fields whose values differ from the shipped
    spec ``base``'s."""
    written, _ = load_located(shipped_dir("model_specs") / f"{base}.yaml")
    changed = [f"{k}: {v}" for k, v in fields.items() if written.get(k) != v]
    return "{" + ", ".join([f"extends: {base}", *changed]) + "}"


def distilbert(r: Any) -> str:
    """DistilBERT: BERT's post-LN encoder with its own config keys (``dim``, ``hidden_dim``,
    ``n_layers``); no token-type embedding (no FLOPs either way)."""
    spec = _overlay("bert-base", {
        "n_layers": r.take("n_layers", "n_layers", convert=hf_families.count),
        "d_model": r.take("d_model", "dim", convert=hf_families.count),
        "n_heads": r.take("n_heads", "n_heads", convert=hf_families.count),
        "d_ff": r.take("d_ff", "hidden_dim", convert=hf_families.count),
        "vocab_size": r.take("vocab_size", "vocab_size", convert=hf_families.count),
        "context_length": r.take("context_length", "max_position_embeddings", convert=hf_families.count),
        "activation": r.take("activation", "activation", default="gelu", convert=hf_families.BERT_ACT.__getitem__),
    })
    sinusoidal = ("; its sinusoidal positions (sinusoidal_pos_embds) are public, and the spec's learned-position "
                  "add costs them as server-held" if r.raw.get("sinusoidal_pos_embds") else "")
    return ("model_type 'distilbert' is not read; DistilBERT is BERT's post-LN encoder under other config keys, and "
            "this spec expresses it (the encoder's hidden states; DistilBERT's dense + ReLU classifier head is not "
            f"modelled{sinusoidal}). Save it as a .yaml file: {spec}")


SUGGESTERS: dict[str, Callable[[Any], str]] = {"distilbert": distilbert}
"""model_type -> the refusal naming the nearest working spec."""

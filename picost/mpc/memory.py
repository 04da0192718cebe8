"""Refuse an engine run up front when its memory would exceed what the machine has.

The engine keeps every weight several times: the server's float reference weights (4 bytes per
parameter) and their ring encoding (8 bytes), the shares and the dealer's correlated randomness
for the linears (int64, 8 bytes each, at each party that holds them). :data:`BYTES_PER_PARAM`
sums these over the three parties on one machine, a deliberate over-estimate; activations are
small next to the weights of any model the engine can run.
"""

from __future__ import annotations

import os
from typing import Any

from picost.errors import UserError

BYTES_PER_PARAM = 48
"""Bytes of memory per model parameter over the three parties of a local run (see module)."""


def parameter_count(spec: Any) -> int:
    """Parameters of ``spec`` (a :class:`~picost.model.spec.ModelSpec`): embeddings, learned
    positions, attention and FFN weights and biases, norms, and an untied head."""
    d, hd, heads, kv = spec.d_model, spec.dim_head, spec.n_heads, spec.kv_heads
    attn = d * heads * hd + 2 * d * kv * hd + heads * hd * d
    gated = spec.activation in ("swiglu", "geglu")
    ffn = (3 if gated else 2) * d * spec.ffn_width
    if spec.ffn.fused:
        ffn = d * d
    per_layer = attn + 4 * d + (2 * d + spec.ffn_width if spec.bias else 0)
    layers = spec.n_layers * per_layer + (spec.n_layers - len(spec.pruned_ffn_layers)) * ffn
    embed = spec.vocab_size * d + (spec.context_length * d if spec.positional == "learned" else 0)
    head = 0 if spec.tied_embeddings else spec.vocab_size * d
    return embed + layers + head + 2 * d


def available_bytes() -> int | None:
    """Memory available to new processes (``MemAvailable`` of /proc/meminfo), or None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(spec: Any, force: bool = False) -> None:
    """Raise a :class:`UserError` (before any party starts) when running ``spec`` would need
    more memory than is available, unless ``force``."""
    if force:
        return
    need = parameter_count(spec) * BYTES_PER_PARAM
    have = available_bytes()
    if have is not None and need > have:
        raise UserError(f"running {spec.name} privately needs about {need / 2**30:.1f} GiB of memory "
                        f"({parameter_count(spec):,} parameters x {BYTES_PER_PARAM} bytes over three parties); "
                        f"this machine has {have / 2**30:.1f} GiB available. Pass --force to run anyway",
                        field="--force")

"""Refuse an engine run up front when its memory would exceed what the machine has.

What the three local processes hold (docs/mpc-engine.md, "GPT-2 small, all 12 layers"): the
server its weights ring-encoded (8 B per parameter) and, while an op runs, its share of that
op's dealer material (the op's offline bytes in ``picost-2pc``, truncation included); the
client the masked weights it keeps (8 B per weight element) and what it computes; the dealer
one weight's mask and one chunk of material at a time. :func:`needed_bytes` sums
:data:`BYTES_PER_PARAM` per parameter, twice the widest op's dealer bytes (the material and the
temporaries of computing on it) and :data:`BYTES_PER_PROCESS` for each interpreter with torch:
a deliberate over-estimate (GPT-2 at T = 128: 9.3 GiB, where the three measured peaks sum to
8.1 GiB).
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from picost.errors import UserError

BYTES_PER_PARAM = 24
"""Bytes per model parameter over the three processes (server, client, dealer: 8 each)."""
BYTES_PER_PROCESS = 1 << 29
"""An interpreter with torch and its libraries, and the heap it keeps (bytes)."""


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


def widest_op_dealer_bytes(spec: Any, context: int, options: Mapping[str, str] | None = None) -> int:
    """The most dealer bytes one op of ``spec`` at ``context`` tokens takes (its truncation
    included), by the ``picost-2pc`` table with ``options``: what a party holds at once under
    streamed preprocessing."""
    from picost.cost.protocol_table import load_protocol
    from picost.model.lower import lower

    per_op: dict[str, int] = {}
    for cost in load_protocol("picost-2pc", options).cost_ops(lower(spec, context).ops):
        per_op[cost.op.name] = per_op.get(cost.op.name, 0) + int(cost.offline_bytes or 0)
    return max(per_op.values(), default=0)


def needed_bytes(spec: Any, context: int, options: Mapping[str, str] | None = None) -> int:
    """Memory a local run of ``spec`` at ``context`` tokens needs over its three processes (bytes)."""
    return (parameter_count(spec) * BYTES_PER_PARAM + 2 * widest_op_dealer_bytes(spec, context, options)
            + 3 * BYTES_PER_PROCESS)


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


def check_memory(spec: Any, context: int, force: bool = False, options: Mapping[str, str] | None = None) -> None:
    """Raise a :class:`UserError` (before any party starts) when running ``spec`` at ``context``
    tokens would need more memory than is available, unless ``force``."""
    if force:
        return
    need = needed_bytes(spec, context, options)
    have = available_bytes()
    if have is not None and need > have:
        raise UserError(f"running {spec.name} privately at T = {context} needs about {need / 2**30:.1f} GiB of "
                        f"memory ({parameter_count(spec):,} parameters x {BYTES_PER_PARAM} bytes over three "
                        f"processes, twice its widest op's {widest_op_dealer_bytes(spec, context, options) / 2**30:.1f} GiB "
                        f"of dealer material, {3 * BYTES_PER_PROCESS / 2**30:.1f} GiB for the interpreters); this "
                        f"machine has {have / 2**30:.1f} GiB available. Pass --force to run anyway", field="--force")

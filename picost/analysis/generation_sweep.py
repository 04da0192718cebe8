"""Generation sweeps: a prefill of T tokens and N decode steps at every (protocol, network, T, N).

Vectorized like the context sweep (:mod:`picost.analysis.sweep`) and the generation
(:mod:`picost.analysis.generation`):

* the prefills are a context sweep (one symbolic lowering per protocol, evaluated over the T);
* the decode steps are lowered *once* per protocol over every cache length any point visits (the
  union of ``[T, T + max N - 1]`` over the T, :func:`~picost.analysis.generation.decode_costs`),
  and per class and field a cumulative sum gives each point's sum over its steps
  ``c = T .. T + N - 1`` as one difference, so the points cost no further lowering.

Latency is the estimate's model on the summed fields (it is linear in bytes, rounds and compute),
so a point's totals equal ``picost.estimate(spec, p, n, T, new_tokens=N).totals()`` to rounding
(``tests/test_generation_sweep.py``). Points are ordered protocol, network, T, N.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

from picost.analysis.closed_forms import COST_FIELDS
from picost.analysis.generation import MAX_NEW_TOKENS, check_new_tokens, decode_costs, step_latency
from picost.analysis.sweep import sweep
from picost.cost.network import Network
from picost.errors import UserError
from picost.model.limits import MAX_SWEEP_POINTS

if TYPE_CHECKING:
    import numpy as np

    from picost.cost.protocol_table import ProtocolTable
    from picost.model.spec import ModelSpec

FIELDS = COST_FIELDS + ("latency_s",)
PARTS = ("prefill", "decode")


@dataclass
class GenerationSweepResult:
    """Columns, one entry per point. ``parts[part][class][field]``: ``part`` is ``prefill`` (one
    pass over T tokens) or ``decode`` (the sum over the N steps); fields :data:`FIELDS` (floats)."""

    spec_name: str
    protocol: "np.ndarray"
    network: "np.ndarray"
    context: "np.ndarray"
    new_tokens: "np.ndarray"
    classes: tuple[str, ...]
    parts: dict[str, dict[str, dict[str, "np.ndarray"]]]
    networks: dict[str, Network] = field(default_factory=dict)
    uncosted: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.context)

    def part_total(self, part: str, field_name: str) -> "np.ndarray":
        import numpy as np

        return np.sum([self.parts[part][c][field_name] for c in self.classes], axis=0)

    def by_class(self, op_class: str, field_name: str) -> "np.ndarray":
        """Prefill + decode of one class."""
        return self.parts["prefill"][op_class][field_name] + self.parts["decode"][op_class][field_name]

    def total(self, field_name: str) -> "np.ndarray":
        return self.part_total("prefill", field_name) + self.part_total("decode", field_name)

    @property
    def ttft_s(self) -> "np.ndarray":
        """Time to first token: the prefill's latency."""
        return self.part_total("prefill", "latency_s")

    def per_token(self, field_name: str = "latency_s", op_class: str | None = None) -> "np.ndarray":
        """Mean over the N decode steps (of one class, or in total)."""
        part = (self.parts["decode"][op_class][field_name] if op_class is not None
                else self.part_total("decode", field_name))
        return part / self.new_tokens

    def share(self, op_class: str, field_name: str = "latency_s") -> "np.ndarray":
        """Fraction of the generation's total taken by ``op_class`` (0 where the total is 0)."""
        import numpy as np

        total, part = self.total(field_name), self.by_class(op_class, field_name)
        return np.divide(part, total, out=np.zeros_like(part), where=total != 0)


def check_new_tokens_list(values: Sequence[int], option: str = "--new-tokens") -> list[int]:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__") or not 0 < len(values) <= MAX_SWEEP_POINTS:
        raise UserError(f"new tokens must be a list of 1..{MAX_SWEEP_POINTS} whole numbers (see docs/limits.md)",
                        field=option)
    return [check_new_tokens(n, option) for n in values]


def visited_caches(contexts: Sequence[int], longest: int) -> tuple["np.ndarray", "np.ndarray"]:
    """The cache lengths the decode steps of every point visit, as one sorted array (the union of
    ``[T, T + longest - 1]``), and the index in it of each T."""
    import numpy as np

    starts = sorted(set(int(t) for t in contexts))
    pieces: list[list[int]] = []  # merged [lo, hi] intervals
    for t in starts:
        if pieces and t <= pieces[-1][1] + 1:
            pieces[-1][1] = max(pieces[-1][1], t + longest - 1)
        else:
            pieces.append([t, t + longest - 1])
    size = sum(hi - lo + 1 for lo, hi in pieces)
    if size > MAX_NEW_TOKENS:
        raise UserError(f"these contexts and new tokens visit {size:,} cache lengths; a generation sweep costs at most "
                        f"{MAX_NEW_TOKENS:,} (fewer or closer contexts, or fewer new tokens; see docs/limits.md)",
                        field="--new-tokens")
    cache = np.concatenate([np.arange(lo, hi + 1, dtype=np.int64) for lo, hi in pieces])
    return cache, np.searchsorted(cache, np.asarray(contexts, dtype=np.int64))


def _window_sums(arr: Any, at: "np.ndarray", lengths: "np.ndarray") -> "np.ndarray":
    """``sum(arr[at[i] : at[i] + lengths[j]])`` for every (i, j), i-major, as floats (integer
    arrays are summed exactly first)."""
    import numpy as np

    cum = np.concatenate([np.zeros(1, dtype=arr.dtype), np.cumsum(arr)])
    ends = at[:, None] + lengths[None, :]
    return (cum[ends] - cum[at][:, None]).astype(float).ravel()


def generation_sweep(spec: "ModelSpec", contexts: Sequence[int], new_tokens: Sequence[int],
                     tables: Sequence["ProtocolTable"], networks: Sequence[Network],
                     allow_uncosted: bool = False) -> GenerationSweepResult:
    """Costs of generating ``N`` tokens after a ``T``-token prompt at every (table, network, T, N)."""
    import numpy as np

    from picost.analysis.estimate import ROW_CLASSES

    counts = np.asarray(check_new_tokens_list(new_tokens), dtype=np.int64)
    if len(contexts) * len(counts) * max(1, len(tables)) * max(1, len(networks)) > MAX_SWEEP_POINTS:
        raise UserError(f"contexts x new tokens x protocols x networks exceed {MAX_SWEEP_POINTS} points "
                        "(see docs/limits.md)", field="--new-tokens")
    prefill_spec = spec if spec.phase == "prefill" else spec.model_copy(update={"phase": "prefill"})
    pre = sweep(prefill_spec, contexts, tables, networks, allow_uncosted)
    cache, at = visited_caches(contexts, int(counts.max()))
    n_T, n_N = len(contexts), len(counts)
    decoded = [decode_costs(prefill_spec, t, cache, allow_uncosted) for t in tables]
    classes = tuple(c for c in ROW_CLASSES if c in pre.classes or any(c in d.by_class for d in decoded))
    zeros = np.zeros(n_T * n_N)
    parts: dict[str, dict[str, dict[str, list[Any]]]] = {p: {c: {f: [] for f in FIELDS} for c in classes}
                                                        for p in PARTS}
    for t, costs in zip(tables, decoded):
        sums = {c: {f: (_window_sums(costs.by_class[c][f], at, counts)
                        if c in costs.by_class and costs.by_class[c][f] is not None else zeros)
                    for f in COST_FIELDS} for c in classes}
        for net in networks:
            for c in classes:
                latency = step_latency(sums[c], net, t)
                for f in COST_FIELDS:
                    parts["decode"][c][f].append(sums[c][f])
                parts["decode"][c]["latency_s"].append(latency)
    # the prefill sweep's points are (protocol, network, T); each repeats for every N
    for c in classes:
        for f in FIELDS:
            col = pre.by_class[c][f] if c in pre.by_class else np.zeros(len(pre))
            parts["prefill"][c][f] = [np.repeat(col, n_N)]
    columns = {p: {c: {f: np.concatenate(v) for f, v in fs.items()} for c, fs in cs.items()} for p, cs in parts.items()}
    uncosted = dict(pre.uncosted)
    for t, costs in zip(tables, decoded):
        if costs.uncosted:
            uncosted[t.label] = tuple(dict.fromkeys(uncosted.get(t.label, ()) + costs.uncosted))
    return GenerationSweepResult(spec.name, np.repeat(pre.protocol, n_N), np.repeat(pre.network, n_N),
                                 np.repeat(pre.context, n_N), np.tile(counts, len(pre)),
                                 classes, columns, pre.networks, uncosted)

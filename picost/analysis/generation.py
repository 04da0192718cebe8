"""Generation: a prefill over T prompt tokens, then N decode steps at a KV cache that grows by one.

Decode step ``i`` (1-based) runs one new token against a cache of ``T + i - 1`` tokens (its query
attends to ``T + i`` keys); the prefill's next token is step 1's input, so the generation emits
N + 1 tokens in all (the prefill's and one per step). Time to first token is the prefill's
latency; the per-token latency of step ``i`` is that step's latency.

Closed form in the cache length, not N lowerings: the decode phase is lowered *once* with the
cache length a numpy array ``c = [T, ..., T + N - 1]`` (:func:`picost.model.lower.lower` does only
arithmetic on sizes). Rows whose dims do not depend on ``c`` (the linears, norms, activations...)
are costed once by the table, as in the estimate; rows whose dims do (QK^T, AV, the softmax and
scalings) are costed by evaluating the table's formulas on the arrays. Integer costs stay exact
integers (int64), so the totals equal the sum of one prefill estimate and N decode-step
estimates (``tests/test_generation.py``); float fields (seconds, fractional bytes) agree to rounding.

Where a table has no decode-specific entry (none of the shipped ones has) a decode step reuses
the op entries at its shapes. Who holds the KV cache, and in what form, is the table's
``setting.kv_cache`` statement (:func:`kv_cache_statement`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from picost.analysis.estimate import ROW_CLASSES, Estimate, _spec, estimate_lowered, latency_s_of, with_machine
from picost.analysis.estimate import estimate as _one_pass
from picost.cost.network import Network, get_network
from picost.cost.hybrid import load_costing
from picost.cost.protocol_table import ProtocolTable
from picost.errors import UserError
from picost.model.lower import lower

if TYPE_CHECKING:
    import numpy as np

    from picost.model.spec import ModelSpec

#: Fields per decode step (per class and in total).
STEP_FIELDS = ("flops", "comm_bytes", "rounds", "compute_s", "latency_s", "offline_bytes",
               "bytes_client_to_server", "bytes_server_to_client")
_COST = ("comm_bytes", "rounds", "compute_s", "offline_bytes", "bytes_client_to_server", "bytes_server_to_client")

MAX_NEW_TOKENS = 1_000_000

DEFAULT_KV_CACHE = ("not stated by this table; decode steps reuse its op entries at their shapes, so the cached "
                    "keys and values are taken to stay in the form its activations have (for a secret-sharing "
                    "protocol: additive shares, one held by each party), with no cost to keep them")


def kv_cache_statement(table: ProtocolTable) -> str:
    """Who holds the KV cache, and in what form, under ``table``."""
    return getattr(table.setting, "kv_cache", None) or DEFAULT_KV_CACHE


@dataclass(frozen=True)
class DecodeSteps:
    """Costs of decode steps 1..N: ``cache[i]`` cached tokens at step ``i + 1``.

    ``by_class[c][f]`` and ``total[f]`` are numpy arrays of length N (int64 where exact, else
    float64), or ``None`` for a field no costed row gives (``bytes_*`` when a row lacks the
    directions, ``compute_s``/``offline_bytes`` when no row models them)."""

    cache: "np.ndarray"
    by_class: dict[str, dict[str, Any]]
    total: dict[str, Any]
    uncosted: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.cache)

    def step(self, i: int) -> dict[str, Any]:
        """Totals of step ``i`` (1-based) as Python numbers."""
        return {f: (None if v is None else v[i - 1].item()) for f, v in self.total.items()}


@dataclass(frozen=True)
class Generation:
    """What generating after a T-token prompt costs: the prefill and N decode steps."""

    spec_name: str
    prompt: int
    new_tokens: int
    protocol: ProtocolTable
    network: Network
    prefill: Estimate
    steps: DecodeSteps
    kv_cache: str
    batch_size: int = 1
    notes: tuple[str, ...] = field(default=())

    @property
    def ttft_s(self) -> float | None:
        """Time to first token: the prefill's latency."""
        return self.prefill.totals.latency_s

    @property
    def mean_token_s(self) -> float | None:
        lat = self.steps.total["latency_s"]
        return None if lat is None else float(lat.mean())

    @property
    def last_token_s(self) -> float | None:
        lat = self.steps.total["latency_s"]
        return None if lat is None else float(lat[-1])

    def totals(self) -> dict[str, Any]:
        """Prefill + every decode step, per field (``None`` where either side lacks the field), and
        ``setup_bytes``: the model's one-time setup, the prefill's (every step reuses the weights)."""
        p = self.prefill.totals
        out = {}
        for f in STEP_FIELDS:
            pv = getattr(p, f)
            sv = self.steps.total[f]
            out[f] = None if pv is None or sv is None else pv + _pysum(sv)
        out["setup_bytes"] = p.setup_bytes
        return out

    def decode_totals(self) -> dict[str, Any]:
        return {f: (None if v is None else _pysum(v)) for f, v in self.steps.total.items()}

    def class_totals(self) -> dict[str, dict[str, Any]]:
        """Per class: prefill + decode sums of FLOPs, bytes, rounds and latency."""
        prefill = self.prefill.by("class")
        out = {}
        for c in ROW_CLASSES:
            if c not in prefill and c not in self.steps.by_class:
                continue
            row = {}
            for f in ("flops", "comm_bytes", "rounds", "latency_s"):
                pv = getattr(prefill[c], f) if c in prefill else 0
                arr = self.steps.by_class.get(c, {}).get(f)
                row[f] = (pv or 0) + (_pysum(arr) if arr is not None else 0)
            out[c] = row
        return out


def _pysum(arr: Any) -> Any:
    """Sum of an array as a Python number (int stays int)."""
    total = arr.sum()
    return total.item() if hasattr(total, "item") else total


def generation(spec: "ModelSpec | str | Path", protocol: str | Path | ProtocolTable,
               network: str | Network | None = None, context: int | None = None, new_tokens: int = 1, *,
               bandwidth: str | None = None, rtt: str | None = None, allow_uncosted: bool = False,
               options: Mapping[str, str] | None = None, machine: Any = None, threads: Any = None,
               compute: str | None = None) -> Generation:
    """The Python API of ``picost estimate --new-tokens N``: prefill of ``context`` tokens (default:
    the spec's ``context_length``) and ``new_tokens`` decode steps; ``machine``/``threads``/``compute``
    as in :func:`~picost.analysis.estimate.estimate`."""
    model = _spec(spec)
    table = with_machine(load_costing(protocol, options), machine, threads, compute)
    link = get_network(network, bandwidth=bandwidth, rtt=rtt)
    return generation_of(model, table, link, context, new_tokens, allow_uncosted)


def check_new_tokens(n: Any, option: str = "--new-tokens") -> int:
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_NEW_TOKENS:
        raise UserError(f"new tokens must be a whole number from 1 to {MAX_NEW_TOKENS} (got {n!r})", field=option)
    return n


def generation_of(model: "ModelSpec", table: ProtocolTable, link: Network, context: int | None,
                  new_tokens: int, allow_uncosted: bool = False) -> Generation:
    T = model.context_length if context is None else context
    check_new_tokens(new_tokens)
    prefill_spec = model if model.phase == "prefill" else model.model_copy(update={"phase": "prefill"})
    prefill = estimate_lowered(lower(prefill_spec, T), table, link, allow_uncosted)
    steps = decode_steps(prefill_spec, table, link, T, new_tokens, allow_uncosted)
    notes = []
    if model.positional == "learned" and T + new_tokens > model.context_length:
        notes.append(f"{T + new_tokens} positions exceed the spec's context_length {model.context_length} "
                     "(learned positions): costed as if the table of positions were longer")
    return Generation(model.name, T, new_tokens, table, link, prefill, steps, kv_cache_statement(table),
                      model.batch_size, tuple(notes))


def decode_steps(spec: "ModelSpec", table: ProtocolTable, link: Network, prompt: int, new_tokens: int,
                 allow_uncosted: bool = False) -> DecodeSteps:
    """Costs of decode steps at caches ``prompt .. prompt + new_tokens - 1``, from one lowering."""
    import numpy as np

    cache = np.arange(prompt, prompt + new_tokens, dtype=np.int64)
    costs = decode_costs(spec, table, cache, allow_uncosted)
    by_class: dict[str, dict[str, Any]] = {}
    for cls, out in costs.by_class.items():
        out = dict(out)
        if all(v is None or v.strides == (0,) for v in out.values()):  # no field changes with the cache
            first = step_latency({f: None if v is None else v[:1] for f, v in out.items()}, link, table)
            out["latency_s"] = None if first is None else np.broadcast_to(first, cache.shape)
        else:
            out["latency_s"] = step_latency(out, link, table)
        by_class[cls] = out
    total: dict[str, Any] = {}
    for f in STEP_FIELDS:
        parts = [by_class[c][f] for c in by_class if by_class[c][f] is not None]
        if not parts and f != "flops":
            total[f] = None
        else:
            total[f] = sum(parts[1:], parts[0]) if parts else np.zeros(new_tokens, dtype=np.int64)
    return DecodeSteps(cache, by_class, total, costs.uncosted)


@dataclass(frozen=True)
class DecodeCosts:
    """Per op class, the cost fields (FLOPs and :data:`_COST`) of one decode step at each cache
    length of ``cache`` (arrays as long as ``cache``; ``None`` for a field no costed row of the
    class gives; the ``bytes_*`` directions ``None`` everywhere unless every costed row has them)."""

    cache: "np.ndarray"
    by_class: dict[str, dict[str, Any]]
    uncosted: tuple[str, ...] = ()


def step_latency(fields: Mapping[str, Any], link: Network, table: ProtocolTable) -> Any:
    """The estimate's latency model on arrays of one class's fields (``None`` without bytes)."""
    if fields["comm_bytes"] is None:
        return None
    return latency_s_of(fields["compute_s"], fields["comm_bytes"], fields["rounds"], link, table)


#: Cache lengths lowered and costed at once: the lowering's per-op dim arrays and the formulas'
#: temporaries are this long, whatever N is (memory bounded at ``MAX_NEW_TOKENS``).
DECODE_CHUNK = 1 << 15


def decode_costs(spec: "ModelSpec", table: ProtocolTable, cache: "np.ndarray",
                 allow_uncosted: bool = False) -> DecodeCosts:
    """One decode step of ``spec`` at every cache length of ``cache`` (a 1-D int64 array, any
    order): rows whose dims do not depend on the cache are costed once by the table, the others by
    evaluating its formulas on the arrays, :data:`DECODE_CHUNK` cache lengths at a time. A class's
    field that no cache length changes is a read-only broadcast of one number (no memory per step)."""
    import numpy as np

    n = len(cache)
    chunks = [_decode_chunk(spec, table, cache[i:i + DECODE_CHUNK], allow_uncosted)
              for i in range(0, max(n, 1), DECODE_CHUNK)]
    first = chunks[0]
    by_class: dict[str, dict[str, Any]] = {}
    for cls in ROW_CLASSES:
        if cls not in first.sums:
            continue
        out = {}
        for f, seen in first.seen[cls].items():
            if not seen:
                out[f] = None
                continue
            values = [c.sums[cls][f] for c in chunks]
            if not any(_is_array(v) for v in values) and len(set(map(repr, values))) == 1:
                out[f] = _constant(values[0], n)
            else:
                out[f] = _integral(np.concatenate([_full(v, len(c.cache)) for v, c in zip(values, chunks)]))
        if not first.directions:
            out["bytes_client_to_server"] = out["bytes_server_to_client"] = None
        by_class[cls] = out
    return DecodeCosts(cache, by_class, first.uncosted)


@dataclass(frozen=True)
class _Chunk:
    """The raw sums of one chunk of cache lengths: per class and field a number (no row of it
    depends on the cache) or an array; ``seen[class][field]``: some costed row gives the field."""

    cache: "np.ndarray"
    sums: dict[str, dict[str, Any]]
    seen: dict[str, dict[str, bool]]
    directions: bool
    uncosted: tuple[str, ...]


def _decode_chunk(spec: "ModelSpec", table: ProtocolTable, cache: "np.ndarray", allow_uncosted: bool) -> _Chunk:
    ops = lower(spec.model_copy(update={"phase": "decode"}), cache).ops
    acc: dict[str, dict[str, Any]] = {}
    present: dict[str, dict[str, bool]] = {}
    directions = True
    uncosted: list[str] = []
    for row in table.plan(ops):
        op, name, entry, dims, cls, owner = row.op, row.name, row.entry, row.dims, row.row_class, row.table
        a = acc.setdefault(cls, {f: 0 for f in STEP_FIELDS if f != "latency_s"})
        seen = present.setdefault(cls, {f: f == "flops" for f in a})
        if cls == op.op_class:
            a["flops"] = a["flops"] + op.flops
        if entry is None:
            if not allow_uncosted:
                raise owner.uncosted_error(op, name, row.is_truncation)
            uncosted.append(name)
            continue
        if any(_is_array(v) for v in dims.values()):
            values = _array_values(owner, entry, dims, name, owner.param_values, cache)
        else:
            values = owner.values(entry, {k: int(v) for k, v in dims.items()}, name)
        if "bytes_client_to_server" not in values:
            directions = False
        for f in _COST:
            if f in values:
                a[f] = a[f] + values[f]
                seen[f] = True
    return _Chunk(cache, acc, present, directions, tuple(uncosted))


def _constant(value: Any, n: int) -> Any:
    """One number as a read-only length-``n`` array (int64 for whole numbers below 2**53, as
    :func:`_integral` gives; Python ints beyond int64 as objects)."""
    import numpy as np

    if isinstance(value, float) and abs(value) < 2**53 and value == int(value):
        value = int(value)
    return np.broadcast_to(_full(value, 1), (n,))


def _integral(arr: Any) -> Any:
    """A float array of whole numbers (below 2**53, so exact) as int64, as the estimate gives ints."""
    import numpy as np

    if arr.dtype.kind == "f" and np.all(np.abs(arr) < 2**53) and np.all(arr == np.floor(arr)):
        return arr.astype(np.int64)
    return arr


def _is_array(x: Any) -> bool:
    return hasattr(x, "shape") and hasattr(x, "dtype")


def _full(value: Any, n: int) -> Any:
    """``value`` as an array of length ``n`` (ints stay int64 when they fit, else Python objects)."""
    import numpy as np

    if _is_array(value) and value.shape:
        return value
    if _is_array(value):  # a numpy number
        value = value.item()
    if isinstance(value, int) and abs(value) < 2**62:
        return np.full(n, value, dtype=np.int64)
    if isinstance(value, int):
        return np.full(n, value, dtype=object)
    return np.full(n, value, dtype=np.float64)


def _array_values(table: ProtocolTable, entry: Any, dims: Mapping[str, Any], row: str, params: Mapping[str, Any],
                  cache: "np.ndarray") -> dict[str, Any]:
    """An entry's formulas evaluated on dims that are arrays over the decode steps; checked finite and
    non-negative at every step (an error names the row, the field and the first bad cache length)."""
    import numpy as np

    env = {**params, **dims}
    out = {}
    for f, form in entry.formulas.items():
        with np.errstate(all="ignore"):
            try:
                value = form.value(env)
            except (ValueError, ZeroDivisionError, OverflowError) as exc:
                raise UserError(f"{f} of op {row} cannot be evaluated on the decode steps: {exc}", file=table.path,
                                line=entry.field_lines.get(f, entry.line), field=f"{entry.where}.{f}") from None
        arr = np.asarray(value)
        if arr.dtype.kind not in "iuf":
            arr = arr.astype(np.float64)
        bad = ~np.isfinite(arr) | (arr < 0) if arr.dtype.kind == "f" else arr < 0
        if np.any(bad):
            at = int(np.broadcast_to(cache, bad.shape)[bad][0]) if bad.shape else int(cache[0])
            shape = ", ".join(f"{k}={_at(env[k], cache, at)}" for k in entry.dims)
            raise UserError(f"{f} of op {row} is not a finite, non-negative number at decode cache length {at} "
                            f"({shape})", file=table.path, line=entry.field_lines.get(f, entry.line),
                            field=f"{entry.where}.{f}")
        out[f] = np.broadcast_to(arr, cache.shape).copy() if arr.shape != cache.shape else arr
    return out


def _at(value: Any, cache: "np.ndarray", at: int) -> Any:
    import numpy as np

    if _is_array(value):
        return value[int(np.flatnonzero(cache == at)[0])].item()
    return value


# -- symbolic: closed forms in T and N ----------------------------------------------------------

def generation_forms(spec: "ModelSpec", table: ProtocolTable, allow_uncosted: bool = False) -> dict[str, Any]:
    """Closed forms of a whole generation, per op class and field, in the prompt ``T`` and the
    number of decode steps ``N``: the prefill's forms at ``T`` plus the sum over the cache length
    ``c = T .. T + N - 1`` of one decode step's forms (sympy ``summation``; a sum sympy cannot close,
    e.g. over ``ceil(log2(c))``, stays a ``Sum``)."""
    import sympy

    from picost.analysis.closed_forms import FORM_FIELDS, class_forms, context_symbol

    T = context_symbol()
    N = sympy.Symbol("N", positive=True, integer=True)
    c = sympy.Symbol("c", positive=True, integer=True)
    prefill_spec = spec if spec.phase == "prefill" else spec.model_copy(update={"phase": "prefill"})
    pre = class_forms(prefill_spec, table, allow_uncosted)
    dec = class_forms(spec.model_copy(update={"phase": "decode"}), table, allow_uncosted)
    out: dict[str, dict[str, Any]] = {}
    for cls in ROW_CLASSES:
        if cls not in pre.forms and cls not in dec.forms:
            continue
        out[cls] = {}
        for f in FORM_FIELDS:
            p = pre.forms.get(cls, {}).get(f, sympy.Integer(0))
            d = dec.forms.get(cls, {}).get(f, sympy.Integer(0)).subs(dec.T, c)
            s = _sum_over_steps(d, (c, T, T + N - 1))
            out[cls][f] = sympy.simplify(p + s) if not s.has(sympy.Sum) else p + s
    return {"T": T, "N": N, "forms": out, "delays_per_round": table.setting.delays_per_round,
            "transfer_links": table.setting.transfer_links}


def _sum_over_steps(d: Any, bounds: tuple) -> Any:
    """``sum over bounds of d``: sympy's ``summation`` of the terms it can close; a table's search
    (``pick_min_N(c)``, computed rather than spelled out) and a term with a ``Max``/``Min`` of the
    cache length (a fitted hinge, a regime switch) stay a ``Sum`` (sympy would try every summation
    method on them at length: minutes for one generation's forms)."""
    import sympy
    from sympy.core.function import AppliedUndef

    c = bounds[0]
    hard = (AppliedUndef, sympy.Max, sympy.Min)

    def is_hard(term: Any) -> bool:
        return term.has(AppliedUndef) or any(m.has(c) for m in term.atoms(sympy.Max, sympy.Min))

    terms = sympy.Add.make_args(sympy.expand(d)) if d.has(*hard) else (d,)
    searches = [t for t in terms if is_hard(t)]
    rest = sympy.Add(*(t for t in terms if not is_hard(t)))
    return sympy.summation(rest, bounds) + (sympy.Sum(sympy.Add(*searches), bounds) if searches else 0)


def estimate(spec: "ModelSpec | str | Path", protocol: str | Path | ProtocolTable,
             network: str | Network | None = None, context: int | None = None, *,
             new_tokens: int | None = None, bandwidth: str | None = None, rtt: str | None = None,
             allow_uncosted: bool = False, options: Mapping[str, str] | None = None) -> "Estimate | Generation":
    """``picost.estimate``: one forward pass (:func:`picost.analysis.estimate.estimate`), or with
    ``new_tokens=N`` a whole generation (:func:`generation`: prefill of ``context`` tokens and N
    decode steps)."""
    if new_tokens is None:
        return _one_pass(spec, protocol, network, context, bandwidth=bandwidth, rtt=rtt,
                                 allow_uncosted=allow_uncosted, options=options)
    return generation(spec, protocol, network, context, new_tokens, bandwidth=bandwidth, rtt=rtt,
                      allow_uncosted=allow_uncosted, options=options)

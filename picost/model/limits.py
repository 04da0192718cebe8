"""Documented limits on every input, and the checks that apply them where values enter.

Every value that comes from YAML, JSON, the command line or the Python API is checked here (or
by the schema that calls these helpers) for type, range and finiteness; everything downstream may
assume valid input. The limits, and why each is where it is, are listed in ``docs/limits.md``.
A value past a limit is a :class:`~picost.errors.UserError` naming the field.

Units: sizes count elements, tokens or layers; bits are bits; seconds are seconds.
"""

from __future__ import annotations

import math
import operator
from typing import Any

from picost.errors import UserError

# -- model specs (counts) ---------------------------------------------------------------------
MAX_LAYERS = 4096
"""Transformer blocks in a spec. Largest published models have ~128; lowering makes ~20 ops per
layer, so this bounds a lowered model to ~100k ops (a few hundred MB at most)."""
MAX_WIDTH = 2**24
"""d_model, d_ff, head_dim, vocab_size (elements): 16M, ~100x the widest published model."""
MAX_HEADS = 2**16
"""n_heads, n_kv_heads."""
MAX_TOKENS = 2**31
"""Context T and context_length (tokens): 2.1 billion, 200x the longest published context (10M);
a position still fits a signed 32-bit index, and T**2 per head stays exact in int64 and float
sweeps."""
MAX_BATCH = 2**16
"""batch_size."""

# -- files --------------------------------------------------------------------------------------
MAX_FILE_BYTES = 4 * 2**20
"""A spec, HF config or protocol table file: 4 MiB (shipped files are < 40 kB)."""
MAX_YAML_NODES = 100_000
"""YAML nodes after alias expansion (an alias counts as the nodes it stands for): refuses
alias bombs ("billion laughs") while allowing any real table."""
MAX_YAML_DEPTH = 64
"""Nesting of YAML mappings and lists (real files nest < 10); also stops recursive aliases."""
MAX_EXTENDS_DEPTH = 32
"""Length of an ``extends:`` chain of specs."""

# -- formulas -----------------------------------------------------------------------------------
MAX_FORMULA_CHARS = 4000
"""Characters in one cost formula (the longest shipped one, spu-cheetah's linear with SPU's HE block search, has ~1,200)."""
MAX_FORMULA_NODES = 1000
"""Syntax-tree nodes (numbers, names, operators, calls) in one formula."""
MAX_FORMULA_DEPTH = 50
"""Nesting of one formula's syntax tree (parentheses, operators, calls)."""
MAX_INT_BITS = 1000
"""Largest integer a formula constant, a parameter or an intermediate power may reach (bits):
costs are < 2**128; 1000 bits still converts to a float (< 2**1024) and stays far below Python's 4300-digit conversion limit and keeps
every power cheap (``10**10**10`` is refused before it is computed)."""

# -- command-line values ------------------------------------------------------------------------
MAX_SWEEP_POINTS = 100_000
"""Contexts in one sweep (points x protocols x networks float arrays stay < 100 MB)."""
MAX_TIMEOUT_S = 7 * 86400.0
"""The engine's ``--timeout`` (seconds): a week."""
MIN_TIMEOUT_S = 0.1
"""The engine's shortest ``--timeout`` (seconds): below it no party can reach the rendezvous, and
the run would fail with a connection error that hides the argument's fault."""
MAX_SEED = 2**63 - 1
"""``--seed``: torch seeds are 64-bit."""
MAX_BANDWIDTH_BPS = 1e18
"""1 Ebit/s, 10^5 x the fastest links built; anything faster is a typo."""
MIN_BANDWIDTH_BPS = 1e-3
"""1 bit per 1000 s; below that (``1e-300bps``) a transfer time overflows to infinity. Totals are
checked finite anyway."""
MAX_DURATION_S = 1e9
"""Durations (``--rtt``, ``--latency``): ~30 years."""
MAX_BYTES = 1e21
"""Sizes (``--comm``): a zettabyte."""
MAX_ROUNDS = 10**15
"""``--rounds`` of ``picost check``."""


_SPEC_BOUNDS = {"n_layers": MAX_LAYERS, "d_model": MAX_WIDTH, "d_ff": MAX_WIDTH, "head_dim": MAX_WIDTH,
                "vocab_size": MAX_WIDTH, "n_heads": MAX_HEADS, "n_kv_heads": MAX_HEADS,
                "context_length": MAX_TOKENS, "batch_size": MAX_BATCH}


def spec_problem(spec: Any) -> tuple[str, str] | None:
    """``(field, message)`` for the first size of a spec past its limit, else None."""
    for name, bound in _SPEC_BOUNDS.items():
        value = getattr(spec, name)
        if value is not None and value > bound:
            return name, f"{name} = {short(value)} exceeds the limit {bound} (see docs/limits.md)"
    multiplier = spec.d_ff_multiplier
    if multiplier is not None and not (math.isfinite(multiplier) and multiplier * spec.d_model <= MAX_WIDTH):
        return "d_ff_multiplier", (f"d_ff_multiplier x d_model must be a finite width <= {MAX_WIDTH} "
                                   "(see docs/limits.md)")
    return None


def fail(message: str, field: str | None = None, file: str | None = None, line: int | None = None) -> UserError:
    """The :class:`UserError` for a value past a limit."""
    return UserError(message, file=file, line=line, field=field)


def whole(value: Any, field: str, lo: int = 1, hi: int | None = None, what: str = "a whole number") -> int:
    """``value`` as a Python int in ``lo..hi`` (numpy integers accepted; bools, floats and text not)."""
    if isinstance(value, bool) or isinstance(value, float):
        raise fail(f"{field} must be {what} (got {value!r})", field)
    try:
        number = operator.index(value)
    except TypeError:
        raise fail(f"{field} must be {what} (got {value!r})", field) from None
    if number < lo or (hi is not None and number > hi):
        upper = f"..{hi}" if hi is not None else " or more"
        raise fail(f"{field} must be in {lo}{upper} (got {short(number)})", field)
    return int(number)


def context(value: Any, field: str = "context") -> Any:
    """A context T: a whole number of tokens in ``1..MAX_TOKENS``, or a sympy expression (symbolic
    lowering) which passes unchanged, or a numpy array of such numbers (generation lowers the decode
    phase once over its cache lengths), each checked."""
    if hasattr(value, "free_symbols") and getattr(value, "free_symbols", None):
        return value
    if hasattr(value, "dtype") and getattr(value, "ndim", 0) == 1:
        for item in value.tolist():
            whole(item, field, 1, MAX_TOKENS, "a whole number of tokens")
        return value
    if hasattr(value, "is_Integer") and getattr(value, "is_Integer", False):
        value = int(value)
    return whole(value, field, 1, MAX_TOKENS, "a whole number of tokens")


def finite(value: Any, field: str, lo: float | None = None, hi: float | None = None) -> float:
    """``value`` as a finite float in ``[lo, hi]`` (ints accepted; bools and text not)."""
    if isinstance(value, bool):
        raise fail(f"{field} must be a number (got {value!r})", field)
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise fail(f"{field} must be a finite number (got {short(value)})", field) from None
    if not math.isfinite(number):
        raise fail(f"{field} must be a finite number (got {short(value)})", field)
    if (lo is not None and number < lo) or (hi is not None and number > hi):
        raise fail(f"{field} must be in [{lo:g}, {hi:g}] (got {number:g})", field)
    return number


def number_ok(value: Any) -> bool:
    """Whether ``value`` is a finite int or float within :data:`MAX_INT_BITS` (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(value, int):
        return value.bit_length() <= MAX_INT_BITS
    return math.isfinite(value)


def power_ok(base: Any, exponent: Any) -> bool:
    """Whether ``base ** exponent`` stays within :data:`MAX_INT_BITS` when both are whole numbers
    (floats overflow by themselves); checked before the power is computed. A negative exponent is
    held to the same bound: exactly (sympy) it is a fraction whose denominator is that power
    (``297145 ** -1000000`` would take minutes)."""
    try:
        b, e = int(base), int(exponent)
    except (TypeError, ValueError, OverflowError):
        return True
    if b != base or e != exponent or abs(b) <= 1 or e == 0:
        return True
    return abs(b).bit_length() * abs(e) <= MAX_INT_BITS + abs(b).bit_length()


def short(value: Any) -> str:
    """A value for a message, never thousands of digits long."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."

"""Side-by-side comparison of models under one protocol and network, with savings (x).

Savings of a model against the first (the reference) are ``reference / model`` per op class and
in total, for each metric: above 1 the model is cheaper. A class a model does not have (e.g. the
norms of a LayerNorm-free model) has cost 0 and infinite savings; a class only the model has
shows 0x.

Generations (:func:`compare_generations`) line up the same way on their totals (prefill + N
decode steps), with two more rows: ``prefill`` (its latency is the time to first token) and
``per_token`` (the mean of a decode step).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from picost.analysis.estimate import ROW_CLASSES, Estimate

METRICS = ("comm_bytes", "rounds", "latency_s", "flops")


def savings(reference: float, value: float) -> float | None:
    """``reference / value``; inf when only the reference costs, None when neither does."""
    if value == 0:
        return None if reference == 0 else float("inf")
    return reference / value


@dataclass(frozen=True)
class Comparison:
    """Per model (in order), per class (and ``total``), per metric: the value, and savings."""

    estimates: tuple[Any, ...]
    """The compared :class:`Estimate` s (or :class:`~picost.analysis.generation.Generation` s)."""
    classes: tuple[str, ...]
    values: tuple[dict[str, dict[str, Any]], ...]
    """``values[i][class][metric]``; ``class`` includes ``"total"`` (and the :attr:`phases`)."""
    phases: tuple[str, ...] = ()
    """Generations only: ``prefill`` and ``per_token``, rows after ``total``."""

    def savings(self, i: int, op_class: str, metric: str) -> float | None:
        return savings(self.values[0][op_class][metric], self.values[i][op_class][metric])


def compare(estimates: Sequence[Estimate]) -> Comparison:
    """Group each estimate by class and line them up; the first is the reference."""
    grouped = [e.by("class") for e in estimates]
    classes = tuple(c for c in ROW_CLASSES if any(c in g for g in grouped))
    values = []
    for est, g in zip(estimates, grouped):
        per = {c: {m: (getattr(g[c], m) or 0) if c in g else 0 for m in METRICS} for c in classes}
        per["total"] = {m: getattr(est.totals, m) or 0 for m in METRICS}
        values.append(per)
    return Comparison(tuple(estimates), classes + ("total",), tuple(values))


GENERATION_PHASES = ("prefill", "per_token")


def compare_generations(generations: Sequence[Any]) -> Comparison:
    """Generations side by side: per class and in total (prefill + every decode step), then the
    prefill and the mean decode step; the first is the reference."""
    grouped = [g.class_totals() for g in generations]
    classes = tuple(c for c in ROW_CLASSES if any(c in g for g in grouped))
    values = []
    for gen, g in zip(generations, grouped):
        per = {c: {m: (g[c][m] or 0) if c in g else 0 for m in METRICS} for c in classes}
        totals, pre = gen.totals(), gen.prefill.totals
        per["total"] = {m: totals[m] or 0 for m in METRICS}
        per["prefill"] = {m: getattr(pre, m) or 0 for m in METRICS}
        per["per_token"] = {m: (gen.decode_totals()[m] or 0) / gen.new_tokens for m in METRICS}
        values.append(per)
    return Comparison(tuple(generations), classes + ("total",), tuple(values), GENERATION_PHASES)

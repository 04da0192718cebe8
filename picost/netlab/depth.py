"""Round depth from wall time: the slope of an op's time over the injected one-way delay.

An op whose critical path crosses the network ``D`` times takes ``compute + D * delay`` when
every packet is held ``delay`` seconds (and bandwidth is not the limit), so measuring it at two
or more delays and fitting a line gives ``D``, its depth in one-way delays, as the slope; the
intercept is the time at zero delay. A table's ``rounds`` is then ``D / delays_per_round`` (see
docs/latency-model.md): the SPU tables keep ``delays_per_round`` at 1, so their rounds are the
measured one-way delays.

Pure functions (no root, no engine): :func:`fit_line` and :func:`summarize`.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Mapping, Sequence


@dataclass(frozen=True)
class LineFit:
    slope: float
    """Seconds of wall time per second of one-way delay: the depth in one-way delays."""
    intercept_s: float
    max_residual_s: float


def fit_line(delays_s: Sequence[float], walls_s: Sequence[float]) -> LineFit:
    """Least-squares line through ``(delay, wall)`` points (two distinct delays at least)."""
    if len(delays_s) != len(walls_s) or len(set(delays_s)) < 2:
        raise ValueError("a slope needs walls at two or more distinct delays")
    n = len(delays_s)
    mx, my = sum(delays_s) / n, sum(walls_s) / n
    sxx = sum((x - mx) ** 2 for x in delays_s)
    slope = sum((x - mx) * (y - my) for x, y in zip(delays_s, walls_s)) / sxx
    intercept = my - slope * mx
    residual = max(abs(y - (intercept + slope * x)) for x, y in zip(delays_s, walls_s))
    return LineFit(slope, intercept, residual)


def summarize(walls_by_delay: Mapping[float, Sequence[float]]) -> dict:
    """Depth of one op from its runs: ``{delay_s: [wall_s of each run]}`` (each wall the slowest
    party's): ``depth_delays`` is the slope through the per-delay medians, ``depth_delays_min``
    the slope through the per-delay minima (load on a shared machine only adds time, so the
    fastest run is the least disturbed; ``benchmarks/spu_fit.py`` uses it, the median is the check)."""
    delays = sorted(walls_by_delay)
    medians = [statistics.median(walls_by_delay[d]) for d in delays]
    minima = [min(walls_by_delay[d]) for d in delays]
    by_median, by_min = fit_line(delays, medians), fit_line(delays, minima)
    return {"depth_delays": round(by_median.slope, 3), "depth_delays_min": round(by_min.slope, 3),
            "intercept_s": round(by_median.intercept_s, 6), "max_residual_s": round(by_median.max_residual_s, 6),
            "median_walls_s": [round(w, 6) for w in medians]}

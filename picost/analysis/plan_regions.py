"""Exact winner regions of affine latencies over a (bandwidth, RTT) box, and the boundaries between them.

Each protocol's latency is affine in ``x = 1 / bandwidth_bps`` (seconds per bit) and ``y = rtt_s``
(:class:`picost.analysis.plan.LatencyForm`): ``latency_s = c + a * x + b * y``. The set where
protocol ``p`` is fastest is the box intersected with the half-planes ``latency_p <= latency_q``:
a convex polygon in (x, y), found here by clipping the box with one half-plane per rival
(Sutherland-Hodgman). No grid is involved: a region's edges lie on the lines where two latencies
are equal, and those edges are the boundaries, exact up to floating-point rounding.

Ties: where two protocols are equal everywhere (the same form), the first keeps the region; at a
boundary both are fastest. A protocol's region may be empty (it never wins in the box).

The clipping runs in coordinates scaled to the box (``u = (x - x_lo) / (x_hi - x_lo)``, the
same for ``v`` and ``y``), so that seconds per bit (1e-10) and seconds (1e-3) meet on equal
terms. An axis given as one value is a zero-width box along it: regions are then segments (or
points) and the boundaries points.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

#: Relative tolerance of "on the line where two latencies are equal" (of the latencies' size).
TIE_RTOL = 1e-9


@dataclass(frozen=True)
class Affine:
    """``c + a * x + b * y`` (seconds, with x = 1 / bandwidth in s/bit and y = RTT in s)."""

    c: float
    a: float
    b: float

    def at(self, x: float, y: float) -> float:
        return self.c + self.a * x + self.b * y


@dataclass(frozen=True)
class Region:
    """Where protocol number ``protocol`` is fastest: a convex polygon's vertices in order, as
    ``(bandwidth_bps, rtt_s)`` (two or one vertices when an axis is a single value)."""

    protocol: int
    vertices: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class Boundary:
    """Where protocols number ``first`` and ``second`` (first < second) have equal latency and
    both are fastest: the straight segment in (1 / bandwidth, RTT) between ``ends`` (each
    ``(bandwidth_bps, rtt_s)``; one point when an axis is a single value).

    The line is ``rtt_s = rtt_intercept_s + rtt_per_inverse_bandwidth / bandwidth_bps`` (seconds,
    and seconds x bit/s), or, when the two latencies differ by no RTT term, the constant
    bandwidth ``at_bandwidth_bps``. ``lower_rtt_wins`` is the protocol that wins on the smaller-RTT
    side (or, for a constant-bandwidth line, on the higher-bandwidth side)."""

    first: int
    second: int
    ends: tuple[tuple[float, float], ...]
    rtt_intercept_s: float | None
    rtt_per_inverse_bandwidth: float | None
    at_bandwidth_bps: float | None
    lower_rtt_wins: int


def winner_regions(forms: Sequence[Affine], bandwidth_bps: tuple[float, float],
                   rtt_s: tuple[float, float]) -> tuple[list[Region], list[Boundary]]:
    """The regions of the box ``bandwidth_bps = (low, high)`` x ``rtt_s = (low, high)`` where each
    form is the least, and the boundaries between them (see the module)."""
    x_lo, x_hi = 1 / bandwidth_bps[1], 1 / bandwidth_bps[0]
    y_lo, y_hi = rtt_s
    dx, dy = x_hi - x_lo, y_hi - y_lo
    scaled = [Affine(f.c + f.a * x_lo + f.b * y_lo, f.a * dx, f.b * dy) for f in forms]
    box = _box(dx > 0, dy > 0)
    scale = max(max(abs(f.at(u, v)) for u, v in ((0, 0), (0, 1), (1, 0), (1, 1))) for f in scaled) or 1.0
    tol = TIE_RTOL * scale

    def unscaled(point: tuple[float, float]) -> tuple[float, float]:
        u, v = point
        return 1 / (x_lo + u * dx), y_lo + v * dy

    cells: list[list[tuple[float, float]]] = []
    for p, fp in enumerate(scaled):
        cell = [] if any(_same(fp, scaled[q], tol) for q in range(p)) else list(box)
        for q, fq in enumerate(scaled):
            if q != p and cell:
                cell = _clip(cell, Affine(fp.c - fq.c, fp.a - fq.a, fp.b - fq.b), tol)
        cells.append(cell)
    regions = [Region(p, tuple(unscaled(v) for v in cell)) for p, cell in enumerate(cells) if cell]
    boundaries = []
    two_d = dx > 0 and dy > 0
    for p, cell in enumerate(cells):
        for q in range(p + 1, len(scaled)):
            if not cells[q]:
                continue
            diff = Affine(scaled[p].c - scaled[q].c, scaled[p].a - scaled[q].a, scaled[p].b - scaled[q].b)
            on_line = _distinct([v for v in cell if abs(diff.at(*v)) <= tol])
            if not on_line or (two_d and len(on_line) < 2):
                continue  # no contact, or (on a 2-D map) a corner touch
            ends = _extremes(on_line)
            boundaries.append(_boundary(p, q, forms[p], forms[q], tuple(unscaled(e) for e in ends)))
    return regions, boundaries


def _box(wide: bool, tall: bool) -> list[tuple[float, float]]:
    """The unit box's corners in order (a segment or a point for a single-valued axis)."""
    corners = [(0.0, 0.0), (1.0 if wide else 0.0, 0.0), (1.0 if wide else 0.0, 1.0 if tall else 0.0),
               (0.0, 1.0 if tall else 0.0)]
    return _distinct(corners)


def _same(f: Affine, g: Affine, tol: float) -> bool:
    """Whether two forms are equal over the whole unit box."""
    return all(abs(f.at(u, v) - g.at(u, v)) <= tol for u, v in ((0, 0), (0, 1), (1, 0), (1, 1)))


def _clip(polygon: list[tuple[float, float]], diff: Affine, tol: float) -> list[tuple[float, float]]:
    """The part of a convex polygon (or segment, or point) where ``diff <= 0`` (Sutherland-Hodgman)."""
    if len(polygon) == 1:
        return polygon if diff.at(*polygon[0]) <= tol else []
    out: list[tuple[float, float]] = []
    n = len(polygon)
    for i in range(n if n > 2 else 1):  # a segment has one edge, a polygon n
        start, end = polygon[i], polygon[(i + 1) % n]
        ds, de = diff.at(*start), diff.at(*end)
        if ds <= tol:
            out.append(start)
        if (ds < -tol and de > tol) or (ds > tol and de < -tol):
            t = ds / (ds - de)
            out.append((start[0] + t * (end[0] - start[0]), start[1] + t * (end[1] - start[1])))
        if n == 2 and de <= tol:
            out.append(end)
    return _distinct(out)


def _distinct(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """``points`` without repeats (within 1e-12 of the unit box), in order."""
    out: list[tuple[float, float]] = []
    for p in points:
        if not any(abs(p[0] - q[0]) <= 1e-12 and abs(p[1] - q[1]) <= 1e-12 for q in out):
            out.append(p)
    if len(out) > 1 and abs(out[0][0] - out[-1][0]) <= 1e-12 and abs(out[0][1] - out[-1][1]) <= 1e-12:
        out.pop()
    return out


def _extremes(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The two points farthest apart (the ends of collinear points); one point stays one."""
    if len(points) == 1:
        return points
    pairs = [(a, b) for i, a in enumerate(points) for b in points[i + 1:]]
    a, b = max(pairs, key=lambda ab: (ab[0][0] - ab[1][0]) ** 2 + (ab[0][1] - ab[1][1]) ** 2)
    return [a, b]


def _boundary(p: int, q: int, fp: Affine, fq: Affine, ends: tuple[tuple[float, float], ...]) -> Boundary:
    """The line ``fp = fq`` in the user's units, and which side each protocol wins."""
    dc, da, db = fp.c - fq.c, fp.a - fq.a, fp.b - fq.b
    if db != 0:  # rtt = -(dc + da / bandwidth) / db; p is less where db * rtt < -(dc + da x)
        return Boundary(p, q, ends, -dc / db, -da / db, None, p if db > 0 else q)
    # no RTT term: the line is at x = -dc / da; p is less where da * x < -dc, i.e. for high bandwidth if da > 0
    return Boundary(p, q, ends, None, None, -da / dc if dc else None, p if da > 0 else q)

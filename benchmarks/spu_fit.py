"""Fit the spu-* protocol tables' measured entries to SPU 0.9.5 runs, shape-aware.

Reads the campaign's raw runs (``benchmarks/results/spu/{semi2k,aby3,cheetah}.jsonl``, made by
``benchmarks/spu_campaign.py``) and fits, per series (one op kind under one construction and one
operand setting), the bytes on the wire (``total_bytes``: all parties' sent bytes of a warm run)
as a non-negative combination of the series' basis terms (:data:`BASES`: a documented
functional form per op kind, e.g. ``a + b*rows + c*rows*(cols - 1) + d*rows*cols`` for softmax and argmax: a row's max is cols - 1
comparisons), minimising the
*relative* error at the fitted points. The held-out point of each series (``heldout``) is not
used in the fit; its error is reported. ``messages`` are SPU's send actions (per party; not a
depth): the largest count measured over the series' sizes (row ops: a line in
``log2(cols)`` through the largest counts). ``depth`` (where ``benchmarks/spu_depth.py`` measured
the series: ``benchmarks/results/spu/depth-<protocol>.jsonl``) is the sequential depth in one-way
delays -- the slope through the per-delay *fastest* runs (load and CHEETAH's OT refills only add
time, and at zero delay some runs stall ~36 ms: ABY3's ReLU 0.013 s once, 0.048 s twice), the
median-based slope kept as a check -- rounded per size, as a formula (:func:`depth_formula`): a constant (the largest), or for
row ops whose depth grows with the row a line in ``log2(cols)``; the tables write it as ``rounds``.

Writes ``benchmarks/results/spu/fits.json``: per series the formula (picost's restricted
grammar, over the op kind's dimension symbols), the points, the residual at each fitted point,
the held-out error, and the ranges covered. Run with picost's interpreter (needs numpy)::

    python benchmarks/spu_fit.py                  # all protocols; prints a summary
    python benchmarks/spu_fit.py --check          # exit 1 if a fit misses 3% or a rule below

Rules checked per series (issue 9): at least 4 fitted sizes spanning at least 16x in elements;
row ops over at least 4 row lengths from 16 to 1024, norms over widths 64 to 4096; max fitted
residual 3%; a held-out point.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from picost.cost import formula

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "spu"
PROTOCOLS = ("semi2k", "aby3", "cheetah")
MAX_RESIDUAL = 0.03

#: Basis terms per op kind, in picost's formula grammar over the kind's dims (``poly_n``: the HE
#: polynomial degree, a table parameter). The fit keeps the non-negative combination.
BASES: dict[str, tuple[str, ...]] = {
    **{k: ("1", "n") for k in ("add", "scale", "weight_mul", "mul", "rope", "gelu", "gelu_tanh", "relu",
                               "silu", "truncation")},
    "softmax": ("1", "rows", "rows*(cols - 1)", "rows*cols"),
    "argmax": ("1", "rows", "rows*(cols - 1)", "rows*cols"),
    "layernorm": ("1", "rows", "cols", "rows*cols"),
    "rmsnorm": ("1", "rows", "cols", "rows*cols"),
    "embedding": ("1", "tokens", "tokens*vocab", "vocab*width", "tokens*width"),
    "linear": ("1", "m*k", "k*n", "m*n"),
    "matmul": ("b", "b*m*k", "b*k*n", "b*m*n"),
}
#: CHEETAH's products are HE: ciphertext counts, not elements (see protocols/bumblebee.yaml).
HE_BASES: dict[str, tuple[str, ...]] = {
    "linear": ("1", "ceil(m*k/poly_n)", "ceil(k*n/poly_n)", "ceil(m*n/poly_n)", "m*n"),
    "matmul": ("b", "b*ceil(m*k/poly_n)", "b*ceil(k*n/poly_n)", "b*ceil(m*n/poly_n)", "b*m*n"),
}
ROW_KINDS = ("softmax", "argmax", "layernorm", "rmsnorm")

#: CHEETAH series whose bytes follow two regimes, fitted apart: up to poly_n elements SPU's
#: products use cached Beaver triples (a fixed ~10 MB per call, then per element), past it they go
#: by HE, the activations in whole pairs of polynomials (GELU-tanh: 12,288 elements cost about what
#: 16,384 do, 24,576 what 32,768 do; 9,216 still go the first way) and softmax as if rows were
#: padded to a power of two (128x96: 5,251 B per element, 256x128: 4,109).
#: SEMI2K and ABY3 show no such step, nor does PUMA's softmax. Series (and its sub-series, e.g.
#: the causal ones) -> (elements, small-regime basis, HE-regime basis); the formula is
#: ``let(he, min(1, floor(elements/(poly_n + 1))), (1 - he)*(small) + he*(HE))``.
REGIMES: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "softmax.stock": ("rows*cols", ("1", "rows*cols"), ("rows*cols", "rows*2**ceil(log2(cols))")),
    "gelu.stock_tanh": ("n", ("1", "n"), ("1", "2*poly_n*ceil(n/(2*poly_n))")),
    "silu": ("n", ("1", "n"), ("1", "2*poly_n*ceil(n/(2*poly_n))")),
}
POLY_N = 8192  # SPU 0.9.5 CHEETAH's logged degree (protocols/bumblebee.yaml poly_n)

#: Fitted coefficients are kept to this many significant digits, as soon as they are fitted.
#: A least-squares solution's last bits depend on the BLAS kernel the CPU selects (the same runs
#: gave ``15.999999999999982`` under one OpenBLAS kernel and ``...979`` under another), so a
#: committed table written from unrounded values is "stale" on another CPU. Kernels differ by
#: ~1e-14 relative; six digits move only where a value lies that close to a rounding boundary.
SIGNIFICANT_DIGITS = 6


def significant(value: float) -> float:
    """``value`` rounded to :data:`SIGNIFICANT_DIGITS` significant digits."""
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}")


def term_value(expr: str, dims: dict) -> float:
    """``expr`` (picost's formula grammar, :mod:`picost.cost.formula`) at ``dims`` and poly_n."""
    env = {"poly_n": POLY_N, **dims}
    return float(_parsed(expr, tuple(sorted(env))).value(env))


@functools.lru_cache(maxsize=None)
def _parsed(expr: str, names: tuple[str, ...]) -> "formula.Formula":
    return formula.parse(expr, names)


def _elements(kind: str, d: dict) -> int:
    if kind in ROW_KINDS:
        return d["rows"] * d["cols"]
    if kind == "embedding":
        return d["tokens"] * d["vocab"]
    if kind == "linear":
        return d["m"] * d["k"] * d["n"]
    if kind == "matmul":
        return d["b"] * d["m"] * d["k"] * d["n"]
    return d["n"]


def nnls_relative(A: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Non-negative least squares on relative error: min |w (A x - y) / y| with x >= 0 (``w``:
    ``weights``, default 1), by dropping the most negative coefficient and refitting until none is
    negative."""
    scale = np.where(y > 0, y, 1.0)
    if weights is not None:
        scale = scale / weights
    active = list(range(A.shape[1]))
    while True:
        x = np.zeros(A.shape[1])
        if active:
            sol, *_ = np.linalg.lstsq(A[:, active] / scale[:, None], y / scale, rcond=None)
            x[active] = sol
        negative = [i for i in active if x[i] < 0]
        if not negative:
            return x
        active.remove(min(negative, key=lambda i: x[i]))


def _formula(terms: tuple[str, ...], coefs: np.ndarray) -> str:
    parts = [f"{c:.6g}" if t == "1" else f"{c:.6g} * {t}" for t, c in zip(terms, coefs) if c > 0]
    return " + ".join(parts) if parts else "0"


def _messages(kind: str, points: list[dict]) -> str:
    actions = [p["max_send_actions"] for p in points]
    if kind in ROW_KINDS and len({p["dims"]["cols"] for p in points}) > 1:
        by_cols: dict[int, int] = defaultdict(int)
        for p in points:
            by_cols[p["dims"]["cols"]] = max(by_cols[p["dims"]["cols"]], p["max_send_actions"])
        x = np.log2(np.array(sorted(by_cols)))
        y = np.array([by_cols[c] for c in sorted(by_cols)], dtype=float)
        slope, _ = np.polyfit(x, y, 1)
        slope = round(float(slope), 3) if slope > 1e-6 else 0.0
        icpt = round(float(np.max(y - slope * x)), 3)  # through the largest counts: an upper bound at every size
        if not slope:
            return f"{max(actions)}"
        return f"ceil({icpt:g} + {slope:g} * log2(cols))" if icpt > 0 else f"ceil({slope:g} * log2(cols))"
    return str(max(actions))


def _bytes(run: dict) -> float:
    """What a run sends: the mean over its warm runs where recorded (CHEETAH's runs differ: pool
    refills and cached Beaver triples land on some runs only, and a model pays them on average),
    else the warm run (SEMI2K and ABY3 send the same bytes on every warm run)."""
    return run.get("mean_warm_bytes", run["total_bytes"])


def fit_series(protocol: str, series: str, rows: list[dict]) -> dict:
    kind = rows[0]["kind"]
    fit_pts = [r for r in rows if not r.get("heldout")]
    held = [r for r in rows if r.get("heldout")]
    regime = next((v for k, v in REGIMES.items() if series == k or series.startswith(k + ".")), None)
    if protocol == "cheetah" and regime:
        small = [r for r in fit_pts if _elements(kind, r["dims"]) <= POLY_N]
        parts = [_fit_basis(regime[1], small), _fit_basis(regime[2], [r for r in fit_pts if r not in small])]
        terms = parts[0][0] + parts[1][0]
        coefs = np.concatenate([parts[0][1], parts[1][1]])
        comm_bytes = (f"let(he, min(1, floor({regime[0]}/(poly_n + 1))), "
                   f"(1 - he)*({_formula(*parts[0])}) + he*({_formula(*parts[1])}))")
        regimes = [list(parts[0][0]), list(parts[1][0])]
    else:
        terms, coefs = _fit_basis((HE_BASES if protocol == "cheetah" else {}).get(kind, BASES[kind]), fit_pts)
        comm_bytes, regimes = _formula(terms, coefs), None
    pred = np.array([term_value(comm_bytes, r["dims"]) for r in fit_pts])
    y = np.array([float(_bytes(r)) for r in fit_pts])

    def rel(p: float, m: float) -> float:
        return 0.0 if m == 0 and p == 0 else (p - m) / m if m else math.inf

    residuals = [rel(p, m) for p, m in zip(pred, y)]
    held_err = [rel(term_value(comm_bytes, r["dims"]), float(_bytes(r))) for r in held]
    elements = [_elements(kind, r["dims"]) for r in fit_pts]
    out = {"protocol": protocol, "series": series, "kind": kind,
           "options": {k: rows[0].get(k) for k in ("construction", "weights", "input", "mask", "operands")},
           "basis": list(terms), "coefficients": [float(c) for c in coefs], **({"regimes": regimes} if regimes else {}),
           "comm_bytes": comm_bytes, "messages": _messages(kind, fit_pts or rows),
           "points": [{"dims": r["dims"], "total_bytes": _bytes(r), "max_send_actions": r["max_send_actions"],
                       "heldout": bool(r.get("heldout")),
                       **({"cheapest_bytes": r["total_bytes"]} if "mean_warm_bytes" in r else {})} for r in rows],
           "residuals": residuals, "max_residual": max((abs(r) for r in residuals), default=0.0),
           "heldout_errors": held_err, "n_fit": len(fit_pts),
           "element_span": (max(elements) / min(elements)) if elements and min(elements) else None}
    if kind in ROW_KINDS:
        out["cols"] = sorted({r["dims"]["cols"] for r in fit_pts})
    out["problems"] = problems(out)
    return out


def _fit_basis(terms: tuple[str, ...], points: list[dict]) -> tuple[tuple[str, ...], np.ndarray]:
    """Non-negative relative least squares of ``points``' bytes over ``terms`` (terms worth under
    half a byte anywhere dropped as noise): ``(terms, coefficients)``."""
    if not points:
        return terms, np.zeros(len(terms))
    A = np.array([[term_value(t, r["dims"]) for t in terms] for r in points])
    y = np.array([float(_bytes(r)) for r in points])
    coefs = nnls_relative(A, y)
    negligible = coefs * A.max(axis=0) < 0.5
    if negligible.any():
        coefs = np.zeros(len(terms))
        coefs[~negligible] = nnls_relative(A[:, ~negligible], y)
    return terms, np.array([significant(c) for c in coefs])


def problems(fit: dict) -> list[str]:
    """The rules of issue 9 this fit breaks (empty if none)."""
    out = []
    if fit["n_fit"] < 4:
        out.append(f"{fit['n_fit']} fitted sizes (< 4)")
    span = fit["element_span"]
    if span is not None and span < 16:
        out.append(f"sizes span {span:.1f}x in elements (< 16x)")
    if fit["max_residual"] > MAX_RESIDUAL:
        out.append(f"max residual {100 * fit['max_residual']:.1f}% (> 3%)")
    if not fit["heldout_errors"]:
        out.append("no held-out point")
    cols = fit.get("cols")
    if cols is not None:
        lo, hi = (64, 4096) if fit["kind"] in ("layernorm", "rmsnorm") else (16, 1024)
        if len(cols) < 4 or min(cols) > lo or max(cols) < hi:
            out.append(f"row lengths {cols} do not cover {lo}..{hi} with 4 values")
    return out


def depth_formula(kind: str, points: list[tuple[dict, float, int | None]]) -> str:
    """Depth (one-way delays) as a formula over the op's dims from ``(dims, measured depth,
    messages)`` points, each depth rounded to an integer:

    * the same message count at every size: the depth of the smallest size (the fewest bytes).
      A larger size can measure deeper without a message more: its large messages take more than
      one TCP window per crossing (round trips of the transport, not flights of the protocol);
    * row ops measured at several row lengths whose depths differ: ``ceil(a + b * log2(cols))``
      through the deepest point per length (an upper bound at every measured length);
    * a batched matmul whose depth differs with ``b`` (SPU runs the b products one after the
      other): ``c * b``, ``c`` the largest depth per product;
    * otherwise the largest depth.
    """
    depths = [(d, max(0, round(x)), m) for d, x, m in points]
    if len({m for _, _, m in depths}) == 1:
        smallest = min(depths, key=lambda p: math.prod(p[0].values()))
        return str(smallest[1])
    if kind == "matmul" and len({x for _, x, _ in depths}) > 1:
        per = max(math.ceil(x / d["b"]) for d, x, _ in depths)
        return f"{per} * b"
    by_cols: dict[int, int] = {}
    if kind in ROW_KINDS:
        for d, x, _ in depths:
            by_cols[d["cols"]] = max(by_cols.get(d["cols"], 0), x)
    if len(set(by_cols.values())) > 1:
        cols = sorted(by_cols)
        x = np.log2(np.array(cols, dtype=float))
        y = np.array([by_cols[c] for c in cols], dtype=float)
        slope = max(0.0, round(float(np.polyfit(x, y, 1)[0]), 3))
        icpt = round(float(np.max(y - slope * x)), 3)
        if slope:
            return f"ceil({icpt:g} + {slope:g} * log2(cols))" if icpt > 0 else f"ceil({slope:g} * log2(cols))"
    return str(max(x for _, x, _ in depths))


def _rows_by_series(path: Path) -> dict[str, list[dict]]:
    """The JSON lines of ``path`` (none if it is missing) grouped by their ``series``."""
    series: dict[str, list[dict]] = defaultdict(list)
    if path.is_file():
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                series[row["series"]].append(row)
    return series


def load_depths(protocol: str) -> dict[str, dict]:
    """Per series: the measured depth points, the formula and the run (``spu_depth.py``)."""
    series = _rows_by_series(RESULTS / f"depth-{protocol}.jsonl")
    out = {}
    for name, rows in sorted(series.items()):
        out[name] = {"formula": depth_formula(rows[0]["kind"], [(r["dims"], r["depth_delays_min"], r["max_send_actions"])
                                                       for r in rows]),
                     "runs": sorted({f"{r['run']} ({r['date']})" for r in rows}),
                     "points": [{"dims": r["dims"], "depth_delays": r["depth_delays"],
                                 "depth_delays_min": r["depth_delays_min"], "messages": r["max_send_actions"]}
                                for r in rows]}
    return out


#: Basis of the compute-time fits per op kind (seconds): a fixed time, the op's work, and for
#: products the elements its shares open or convert.
COMPUTE_BASES: dict[str, tuple[str, ...]] = {
    "linear": ("1", "m*k*n", "(m*k + k*n + m*n)"),
    "matmul": ("1", "b*m*k*n", "b*(m*k + k*n + m*n)"),
    "embedding": ("1", "tokens*vocab*width", "vocab*width"),
    **{kind: ("1", "rows*cols", "rows") for kind in ROW_KINDS},
}
COMPUTE_DEFAULT_BASIS = ("1", "n")
#: SPU's (SEMI2K, ABY3) linear apart from :data:`COMPUTE_BASES` (which crypten_compute.py shares):
#: the weight's elements on their own (k*n: the private weight made a share, its mask opened):
#: GPT-2's lm head, 1x768x50257, takes SEMI2K 4.3 s for 39 M multiply-accumulates.
SPU_COMPUTE_BASES: dict[str, tuple[str, ...]] = {"linear": ("1", "m*k*n", "(m*k + m*n)", "k*n")}

#: The size measure of an op kind (what ``spu_compute.work`` spreads sizes over): elements, or
#: multiply-accumulates of a product, ``tokens*vocab*width`` for the embedding. The tables write
#: the largest size a compute fit used as ``compute_range``.
COMPUTE_SIZE: dict[str, str] = {
    "linear": "m*k*n", "matmul": "b*m*k*n", "embedding": "tokens*vocab*width",
    **{kind: "rows*cols" for kind in ROW_KINDS},
}
COMPUTE_DEFAULT_SIZE = "n"


def _cheetah_compute_bases() -> dict[str, tuple[str, ...]]:
    """CHEETAH's products go by HE: their compute follows the ciphertexts of SPU's block search
    (``spu_tables.HE_CIPHERTEXTS``: encrypting, packing and decrypting are per ciphertext) and the
    plaintext-ciphertext block products (about ``m*k*n/poly_n``: the MACs), the server's weights
    encoded as plaintext polynomials (``k*n``: GPT-2's lm head, 1x768x50257, takes 7.2 s where
    64x768x768, as many block products, takes 2.0), plus the truncation per output; the embedding is one such product, one_hot(ids) (tokens x vocab) by the table
    (vocab x width)."""
    from spu_tables import HE_CIPHERTEXTS

    emb = f"let(m, tokens, let(k, vocab, let(n, width, {HE_CIPHERTEXTS})))"
    return {
        "linear": ("1", f"({HE_CIPHERTEXTS})", "m*k*n", "k*n", "m*n"),
        "matmul": ("1", f"b*({HE_CIPHERTEXTS})", "b*m*k*n", "b*m*n"),
        "embedding": ("1", emb, "tokens*vocab*width", "tokens*vocab"),
    }


#: CHEETAH's series whose compute goes by HE past poly_n elements, in polynomials: series ->
#: (elements, basis up to it, basis past it, the first size computed by HE). The bytes'
#: :data:`REGIMES`, the erf GELU (measured past poly_n at scale only) and the secret product,
#: which takes cached Beaver triples below poly_n elements and goes by HE from poly_n on
#: (picost/spu/runner.py: 1,024 elements 3 ms, 8,192 41 ms).
COMPUTE_REGIMES: dict[str, tuple[str, tuple[str, ...], tuple[str, ...], str]] = {
    **{k: (*v, "poly_n + 1") for k, v in REGIMES.items()},
    "gelu.stock_erf": (*REGIMES["gelu.stock_tanh"], "poly_n + 1"),
    "mul": ("n", ("1", "n"), ("1", "n"), "poly_n"),
}
#: Products and the embedding: their bases have a term per cost the engine has (MACs, opened or
#: converted elements, ciphertexts), fitted through the at-scale runs as they are.
PRODUCT_KINDS = ("linear", "matmul", "embedding")


def compute_size(kind: str) -> str:
    return COMPUTE_SIZE.get(kind, COMPUTE_DEFAULT_SIZE)


def _timed(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r.get("min_wall_s") is not None]


#: How much an at-scale run's relative error counts in a compute fit against a campaign size's:
#: the fits are for the sizes users ask about (DESIGN.md principle 7), and the campaign's small
#: sizes (milliseconds, measured on a busier machine) scatter more than the model can follow.
AT_SCALE_WEIGHT = 3.0


def _fit_time(terms: tuple[str, ...], points: list[dict], weighted: bool = True) -> np.ndarray:
    if not points:
        return np.zeros(len(terms))
    A = np.array([[term_value(t, r["dims"]) for t in terms] for r in points])
    y = np.array([r["min_wall_s"] for r in points])
    weights = np.array([AT_SCALE_WEIGHT if weighted and r.get("at_scale") else 1.0 for r in points])
    return np.array([significant(c) for c in nnls_relative(A, y, weights if (weights != 1).any() else None)])


def fit_compute(rows: list[dict], protocol: str = "", series: str = "", at_scale: bool | None = None) -> dict:
    """``compute_s`` of one series from its zero-delay runs (``spu_compute.py``, with its at-scale
    runs): the basis of :data:`COMPUTE_BASES` fitted to the fastest run per size (non-negative,
    relative least squares), its residuals, the error at the held-out size and the runs that did
    not finish (``timeouts``, ``failed``). With ``protocol`` (an SPU protocol's series): SPU's
    bases (:data:`SPU_COMPUTE_BASES`; CHEETAH's products: :func:`_cheetah_compute_bases`;
    CHEETAH's series of :data:`COMPUTE_REGIMES`: one basis up to poly_n elements, per polynomial
    past it), a hinge past the campaign's sizes for elementwise and row ops measured at scale, and
    at-scale runs weighted :data:`AT_SCALE_WEIGHT`. Without (crypten_compute.py): the plain basis,
    with the hinge and the weights where ``at_scale`` (default: with ``protocol``)."""
    kind = rows[0]["kind"]
    timed = _timed(rows)
    fit_pts = [r for r in timed if not r.get("heldout")]
    held = [r for r in timed if r.get("heldout")]
    regime = next((v for k, v in COMPUTE_REGIMES.items() if series == k or series.startswith(k + ".")), None)
    he_bases = _cheetah_compute_bases() if protocol == "cheetah" else {}
    size = compute_size(kind)
    first_he = term_value(regime[3], {}) if regime else None
    if protocol == "cheetah" and regime and any(_elements(kind, r["dims"]) >= first_he for r in fit_pts):
        small = [r for r in fit_pts if _elements(kind, r["dims"]) < first_he]
        large = [r for r in fit_pts if r not in small]
        small_terms = COMPUTE_BASES.get(kind, COMPUTE_DEFAULT_BASIS)
        large_terms = ("1",) + tuple(t for t in regime[2] if t != "1")
        if len(large) < len(large_terms):  # fewer HE-regime points than terms: the per-polynomial term alone
            large_terms = large_terms[1:2]
        small_coefs, large_coefs = _fit_time(small_terms, small), _fit_time(large_terms, large)
        terms = small_terms + large_terms
        formula_text = (f"let(he, min(1, floor({regime[0]}/({regime[3]}))), "
                        f"(1 - he)*({_formula(small_terms, small_coefs)}) + he*({_formula(large_terms, large_coefs)}))")
        coefs = np.concatenate([small_coefs, large_coefs])
        regimes = [list(small_terms), list(large_terms)]
    else:
        spu_bases = SPU_COMPUTE_BASES if protocol else {}
        terms = he_bases.get(kind, spu_bases.get(kind, COMPUTE_BASES.get(kind, COMPUTE_DEFAULT_BASIS)))
        campaign = [r for r in fit_pts if not r.get("at_scale")]
        at_scale = bool(protocol) if at_scale is None else at_scale
        if at_scale and kind not in PRODUCT_KINDS and len(campaign) < len(fit_pts) and campaign:
            # past the campaign's sizes an element costs more (working sets leave the caches): a
            # hinge at the largest campaign size, its slope fitted through the at-scale runs
            knee = int(max(term_value(size, r["dims"]) for r in campaign))
            terms = tuple(terms) + (f"max(0, {size} - {knee})",)
        coefs = _fit_time(terms, fit_pts, weighted=at_scale)
        formula_text, regimes = _formula(terms, coefs), None
    predict = lambda r: term_value(formula_text, r["dims"])  # noqa: E731
    residuals = [predict(r) / r["min_wall_s"] - 1 for r in fit_pts]
    return {"formula": formula_text, "basis": list(terms), "coefficients": [float(c) for c in coefs],
            **({"regimes": regimes} if regimes else {}),
            "residuals": residuals, "max_residual": max(abs(e) for e in residuals),
            "heldout_errors": [predict(r) / r["min_wall_s"] - 1 for r in held],
            "points": [{"dims": r["dims"], "min_wall_s": r["min_wall_s"], "heldout": bool(r.get("heldout")),
                        **({"at_scale": True} if r.get("at_scale") else {})} for r in timed],
            "timeouts": [{"dims": r["dims"], "timeout_s": r["timeout_s"], "predicted_s": predict(r)}
                         for r in rows if r.get("timeout_s") is not None and r.get("min_wall_s") is None],
            "failed": [{"dims": r["dims"], "error": r["error"], "predicted_s": predict(r)}
                       for r in rows if r.get("error") and r.get("min_wall_s") is None],
            "size": size, "max_size": int(max(term_value(size, r["dims"]) for r in fit_pts)),
            "runs": _runs_text(rows)}


def _runs_text(rows: list[dict]) -> list[str]:
    """The runs of ``rows``, one per command and machine, with the dates (first .. last) they ran."""
    dates: dict[tuple[str, str], list[str]] = defaultdict(list)
    for r in rows:
        dates[(r["run"], r["host"])].append(r["date"])
    return sorted(f"{run} ({min(d)}{' .. ' + max(d) if max(d) != min(d) else ''}; {host})"
                  for (run, host), d in dates.items())


def load_computes(protocol: str) -> dict[str, dict]:
    """Per series: the compute-time fit of its runs (``spu_compute.py``), where measured at 3 or
    more fitted sizes."""
    series = _rows_by_series(RESULTS / f"compute-{protocol}.jsonl")
    return {name: fit_compute(_fastest(rows), protocol, name) for name, rows in sorted(series.items())
            if sum(not r.get("heldout") for r in _timed(rows)) >= 3}


def _fastest(rows: list[dict]) -> list[dict]:
    """One row per size: the fastest timed one where a size was run more than once (a rerun at a
    quieter time: load only ever adds time), else its timeout row."""
    best: dict[str, dict] = {}
    for r in rows:
        key = json.dumps([r["dims"], bool(r.get("heldout"))], sort_keys=True)
        old = best.get(key)
        if old is None or (r.get("min_wall_s") is not None
                           and (old.get("min_wall_s") is None or r["min_wall_s"] < old["min_wall_s"])):
            best[key] = r
    return list(best.values())


#: Parties of the protocols whose core scaling is measured (the model's P).
SCALING_PARTIES = 2


def scaling_point(t_x: float, t_y: float, t_z: float) -> dict:
    """The (s, c) of one op from its times with each party on its own core (X), unpinned (Y)
    and both parties on one core (Z), with P = 2 parties: a fraction c of the pinned time has both
    parties computing at once, and within a party's compute a fraction s does not speed up with
    cores, so t_Z = t_X (1 + c) and t_Y = t_X (c + (1 - c)(s + (1 - s)/2)). ``s`` is None when
    c > 0.9 (then t_Y says nothing about s)."""
    c = min(1.0, max(0.0, t_z / t_x - 1))
    s = None if c > 0.9 else min(1.0, max(0.0, 2 * (t_y / t_x - c) / (1 - c) - 1))
    return {"t_x": t_x, "t_y": t_y, "t_z": t_z, "concurrent": c, "serial": s}


def oversubscription(points: list[dict], serial: float, concurrent: float) -> float:
    """rho of ``picost/cost/machine.py``: the median over ``points`` of the unpinned time t_Y over
    the one the model gives for (``serial``, ``concurrent``), rounded to 2 digits; 1 where that is
    at most 1.05 (the model reproduces Y: CrypTen's parties, each running as many threads as the
    host has cores, are slower unpinned on two cores than both on one)."""
    model = concurrent + (1 - concurrent) * (serial + (1 - serial) / 2)
    rho = float(np.median([p["t_y"] / (p["t_x"] * model) for p in points]))
    return round(rho, 2) if rho > 1.05 else 1.0


def load_scaling(protocol: str) -> dict[str, dict]:
    """Per measured op kind (the kind of the series' op): the median (s, c) over its sizes
    (``scaling-<protocol>.jsonl``, placements X, Y and Z of ``spu_compute.py --at-scale``), each
    rounded to 2 digits, with the points and the runs. A kind whose every c is above 0.9 gets
    s = 1 (undetermined), said in ``note``."""
    rows = [json.loads(line) for line in (RESULTS / f"scaling-{protocol}.jsonl").read_text().splitlines()
            if line.strip()] if (RESULTS / f"scaling-{protocol}.jsonl").is_file() else []
    times: dict[tuple, dict] = defaultdict(dict)
    meta: dict[tuple, dict] = {}
    for r in rows:
        if r.get("min_wall_s") is None:
            continue
        key = (r["kind"], r["series"], json.dumps(r["dims"], sort_keys=True))
        times[key][r["placement"]] = min(r["min_wall_s"], times[key].get(r["placement"], math.inf))
        meta.setdefault(key, {"runs": set()})["runs"].add(f"{r['date'][:10]}; {r['host']}")
    by_kind: dict[str, list[dict]] = defaultdict(list)
    for key, t in sorted(times.items()):
        if set(t) >= {"X", "Y", "Z"}:
            point = scaling_point(t["X"], t["Y"], t["Z"])
            by_kind[key[0]].append({"series": key[1], "dims": json.loads(key[2]), **point,
                                    "runs": sorted(meta[key]["runs"])})
    return {kind: kind_scaling(points) for kind, points in sorted(by_kind.items())}


def kind_scaling(points: list[dict]) -> dict:
    """One op kind's core scaling from its :func:`scaling_point` s: the median concurrent
    fraction c and serial fraction s, rounded to 2 digits (s = 1 when every c is above 0.9, said
    in ``note``), the :func:`oversubscription` rho where it is not 1, and the points."""
    c = float(np.median([p["concurrent"] for p in points]))
    ss = [p["serial"] for p in points if p["serial"] is not None]
    serial = round(float(np.median(ss)), 2) if ss and c <= 0.9 else 1.0
    rho = oversubscription(points, serial, round(c, 2))
    return {"serial": serial, "concurrent": round(c, 2), "points": points,
            **({"oversubscribed": rho} if rho != 1 else {}),
            **({"note": "c > 0.9: s not determined, 1 used"} if not ss or c > 0.9 else {})}


def load_runs(protocol: str) -> dict[str, list[dict]]:
    path = RESULTS / f"{protocol}.jsonl"
    series: dict[str, list[dict]] = defaultdict(list)
    if not path.is_file():
        return series
    for line in path.read_text().splitlines():
        if line.strip():
            run = json.loads(line)
            if "error" not in run:
                series[run["series"]].append(run)
    return series


#: Protocols whose core scaling cannot be measured on the 2-core reference VM, and the protocol whose
#: measured fractions they take: ABY3's three parties cannot each be pinned to a core of two, and
#: SEMI2K is the same SPU engine with the same local ring kernels (a derivation, said in each entry).
SCALING_FROM = {"aby3": "semi2k"}


def scaling_of(protocol: str) -> dict[str, dict]:
    """:func:`load_scaling` of ``protocol``, or, where it has none, its :data:`SCALING_FROM`'s with a note."""
    own = load_scaling(protocol)
    if own or protocol not in SCALING_FROM:
        return own
    donor = SCALING_FROM[protocol]
    note = (f"derived: {donor.upper()}'s measured fractions ({protocol.upper()}'s three parties cannot each be "
            f"pinned to a core of the 2-core reference; same SPU engine and local kernels)")
    return {kind: {**v, "note": f"{note}; {v['note']}" if v.get("note") else note}
            for kind, v in load_scaling(donor).items()}


def fit_all() -> dict[str, dict[str, dict]]:
    out = {}
    for p in PROTOCOLS:
        depths, computes, scaling = load_depths(p), load_computes(p), scaling_of(p)
        out[p] = {name: {**fit_series(p, name, rows), **({"depth": depths[name]} if name in depths else {}),
                         **({"compute": computes[name]} if name in computes else {}),
                         **({"compute_scaling": scaling[rows[0]["kind"]]} if rows[0]["kind"] in scaling else {})}
                  for name, rows in sorted(load_runs(p).items())}
    return out


def _compute_text(compute: dict | None) -> str:
    if compute is None:
        return "-"
    held = ", ".join(f"{100 * e:+.0f}%" for e in compute["heldout_errors"]) or "none"
    scale = ", ".join(f"{100 * e:+.0f}%" for p, e in zip([p for p in compute["points"] if not p["heldout"]],
                                                          compute["residuals"]) if p.get("at_scale")) or "none"
    timeouts = "".join(f"; timed out {t['dims']} >= {t['timeout_s']:g} s (fit {t['predicted_s']:.0f} s)"
                       for t in compute["timeouts"])
    return (f"{compute['formula'][:160]} s (max res {100 * compute['max_residual']:.0f}%, held-out {held}, "
            f"at scale {scale}{timeouts})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if any fit breaks a rule")
    ns = parser.parse_args(argv)
    fits = fit_all()
    (RESULTS / "fits.json").write_text(json.dumps(fits, indent=1, sort_keys=True) + "\n")
    bad = 0
    for protocol, series in fits.items():
        for name, f in series.items():
            held = ", ".join(f"{100 * e:+.1f}%" for e in f["heldout_errors"]) or "none"
            flag = "; ".join(f["problems"])
            bad += bool(f["problems"])
            print(f"{protocol:8} {name:34} n={f['n_fit']:2} max res {100 * f['max_residual']:5.2f}% "
                  f"held-out {held:>8}  bytes = {f['comm_bytes']}  messages = {f['messages']}"
                  f"  depth = {f['depth']['formula'] if 'depth' in f else '-'}"
                  f"  compute = {_compute_text(f.get('compute'))}"
                  + (f"  !! {flag}" if flag else ""))
    print(f"wrote {RESULTS / 'fits.json'}; {bad} series break a rule")
    return 1 if ns.check and bad else 0


if __name__ == "__main__":
    sys.exit(main())

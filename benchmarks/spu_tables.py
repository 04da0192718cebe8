"""Write the stock-SPU protocol tables (protocols/spu-{semi2k,aby3,cheetah}.yaml) from the fits.

Every measured entry of these tables comes from ``benchmarks/results/spu/fits.json`` (made by
``benchmarks/spu_fit.py`` from the runs of ``benchmarks/spu_campaign.py``), so the tables cannot
drift from the data: regenerate them with::

    python benchmarks/spu_fit.py && python benchmarks/spu_tables.py

and ``tests/test_spu_tables.py`` fails when a committed table differs from what this script
writes. The mapping from measured series to table entries and options is :data:`ENTRIES` and
:data:`OPTIONS` below; the tables model SPU 0.9.5 running a JAX model written the obvious way
(``picost/spu/jax_ops.py``): defaults client-private token ids, server-private weights (SPU's
colocated optimization), stock ``jax.nn.gelu`` / ``jax.nn.softmax``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from spu_fit import nnls_relative, term_value  # noqa: E402

FITS = REPO / "benchmarks" / "results" / "spu" / "fits.json"

#: Base entries (the defaults): op kind -> measured series.
ENTRIES = {
    "add": "add.secret",
    "weight_add": "add.weight.server-private",
    "scale": "scale",
    "rope": "rope",
    "mul": "mul",
    "relu": "relu",
    "silu": "silu",
    "gelu": "gelu.stock_erf",
    "gelu_tanh": "gelu.stock_tanh",
    "softmax": "softmax.stock",
    "argmax": "argmax",
    "matmul": "matmul",
    "truncation": "truncation",
    "linear": "linear.server-private",
    "weight_mul": "weight_mul.server-private",
    "layernorm": "layernorm.server-private",
    "rmsnorm": "rmsnorm.server-private",
    "embedding": "embedding.client-private.server-private",
}

#: option -> (description, default, {choice: (what it means, {kind: series})}).
OPTIONS = {
    "weights": ("who holds the model's weights (linears, learned scales, norm gains)", "server-private", {
        "server-private": ("the server's private inputs (VIS_PRIVATE, colocated optimization): the entries "
                           "under ops:", {}),
        "shared": ("weights secret-shared between the parties (VIS_SECRET)",
                   {"linear": "linear.shared", "weight_mul": "weight_mul.shared", "layernorm": "layernorm.shared",
                    "rmsnorm": "rmsnorm.shared", "weight_add": "add.weight.shared"}),
        "public": ("weights known to both parties (VIS_PUBLIC); the embedding keeps its ids cost (an upper "
                   "bound: with a public table SPU looks up client-private ids locally)",
                   {"linear": "linear.public", "weight_mul": "weight_mul.public", "layernorm": "layernorm.public",
                    "rmsnorm": "rmsnorm.public", "weight_add": "add.weight.public"}),
    }),
    "input": ("how the client's tokens enter (the embedding table is server-private)", "client-private", {
        "client-private": ("token ids private to the client; one_hot(ids) @ wte: the entry under ops:", {}),
        "shared": ("token ids secret-shared", {"embedding": "embedding.shared.server-private"}),
        "client-embedded": ("the client feeds embedded vectors (it holds the table)",
                            {"embedding": "embedding.client-embedded.server-private"}),
    }),
    "gelu": ("GELU construction", "stock", {
        "stock": ("jax.nn.gelu as written: erf form for gelu, tanh form for gelu_tanh (the entries under ops:)", {}),
        "puma": ("PUMA's piecewise polynomial (PUMA §4.2) for both forms",
                 {"gelu": "gelu.puma", "gelu_tanh": "gelu.puma"}),
    }),
    "softmax": ("softmax construction", "stock", {
        "stock": ("jax.nn.softmax (the entry under ops:)", {}),
        "puma": ("PUMA's softmax (PUMA §4.3 Alg. 2)", {"softmax": "softmax.puma"}),
    }),
}

PROTOCOL_HEADERS = {
    "semi2k": {
        "description": "SecretFlow SPU 0.9.5 SEMI2K (2PC additive sharing, trusted-dealer Beaver triples) running a "
                       "JAX model written the obvious way; measured",
        "parties": 2, "correlated_randomness": "third_party", "transfer": "parallel",
        "spu": "SecretFlow SPU 0.9.5 (pip spu==0.9.5), SEMI2K protocol, FM64, 18 fractional bits, in-process "
               "simulator, warm run",
    },
    "aby3": {
        "description": "SecretFlow SPU 0.9.5 ABY3 (3PC replicated sharing, honest majority) running a JAX model "
                       "written the obvious way; measured",
        "parties": 3, "correlated_randomness": "none", "transfer": "parallel",
        "spu": "SecretFlow SPU 0.9.5 (pip spu==0.9.5), ABY3 protocol, FM64, 18 fractional bits, in-process "
               "simulator, warm run",
    },
    "cheetah": {
        "description": "SecretFlow SPU 0.9.5 CHEETAH (2PC, silent OT and RLWE HE matmuls) running a JAX model "
                       "written the obvious way; measured",
        "parties": 2, "correlated_randomness": "none",
        "spu": "SecretFlow SPU 0.9.5 (pip spu==0.9.5), CHEETAH protocol, FM64, 18 fractional bits, in-process "
               "simulator, warm run",
    },
}


def _dims_text(points: list[dict]) -> str:
    keys = sorted(points[0]["dims"])
    lo = {k: min(p["dims"][k] for p in points) for k in keys}
    hi = {k: max(p["dims"][k] for p in points) for k in keys}
    return ", ".join(f"{k} {lo[k]}" + (f"..{hi[k]}" if hi[k] != lo[k] else "") for k in keys)


TABLE_TERM = "vocab*width"
TABLE_PARAM = "table_share_bytes"


def _coefficient(fit: dict, term: str) -> float:
    return dict(zip(fit["basis"], fit["coefficients"])).get(term, 0.0)


def _embedding_formula(fit: dict) -> str:
    """A fitted embedding formula with its ``vocab*width`` term (bringing the server's table into
    the computation) as ``table_share_bytes * vocab*width``: the weights option sets that. A run
    that never touches the server's table (the client embeds) keeps its fit as it is."""
    if not _coefficient(fit, TABLE_TERM):
        return fit["comm_bytes"]
    parts = [f"{c:.6g}" if t == "1" else f"{c:.6g} * {t}" for t, c in zip(fit["basis"], fit["coefficients"])
             if c > 0 and t != TABLE_TERM]
    return " + ".join(parts + [f"{TABLE_PARAM} * {TABLE_TERM}"])


def _table_share_bytes(fits: dict, weights: str) -> tuple[float, str]:
    """Bytes per table element under ``weights``, from the client-private-ids runs, and a note
    where the same decomposition does not hold for shared ids (then the other terms are the
    server-private table's, and the note says by how much that is off)."""
    value = _coefficient(fits[f"embedding.client-private.{weights}"], TABLE_TERM)
    base = fits["embedding.shared.server-private"]
    other = fits.get(f"embedding.shared.{weights}")
    if other is None:
        return value, ""
    worst = 0.0
    for p in other["points"]:
        d = {**p["dims"]}
        predicted = sum(c * term_value(t, d) for t, c in zip(base["basis"], base["coefficients"]) if t != TABLE_TERM)
        predicted += value * d["vocab"] * d["width"]
        worst = max(worst, abs(predicted / p["total_bytes"] - 1) if p["total_bytes"] else 0.0)
    if worst <= 0.01:
        return value, ""
    return value, (f"; with shared ids and weights={weights} this decomposition is up to {100 * worst:.0f}% off the "
                   f"runs of embedding.shared.{weights}")


#: CHEETAH's HE products, derived rather than fitted (protocols/bumblebee.yaml gives the
#: derivation): ciphertexts of poly_n coefficients out (one per poly_n elements of the encrypted
#: operand) and back (one per poly_n outputs, interleaved), times the measured ciphertext sizes,
#: plus SPU's truncation of each output. term -> coefficient (in the table's parameters).
#: A product of m*k*n <= poly_n fits one polynomial: SPU sends one smaller response per product
#: (its log: "Pack 0 ms (none)"), else interleaved responses of ct_out_bytes. ONE_POLY is 1 for the
#: first and 0 for the second (m, k, n >= 1); MANY_POLY the opposite.
MANY_POLY = "min(1, floor((m*k*n - 1)/poly_n))"
ONE_POLY = f"(1 - {MANY_POLY})"

#: The largest power of two <= k: SPU 0.9.5 cuts the inner dimension into blocks of a power of two
#: (MatMatProtocol::GetSubMatShape, matmat_prot.cc: ``d1 = d1 * 2`` while ``d1 <= k``), so k = 96
#: is two blocks (64 + 32) and two encrypted ciphertexts even when m*k <= poly_n.
K_BLOCK = "2**floor(log2(k))"


def _he_search(value: str = "ct_in_bytes*sent + ct_out_bytes*back") -> str:
    """Bytes of one packed HE product's ciphertexts, as SPU 0.9.5 chooses its block shape
    (``MatMatProtocol::GetSubMatShape``): the shape of least cost to SPU, ``1000 x (operand
    ciphertexts + response ciphertexts) + ceil(m*n/poly_n) x d1`` (automorphisms) ``+ blocks/10``,
    over 42 candidates ``j``: d1 = 2^(j mod 14) <= k (and <= poly_n), and three ways to cut the
    rest of the polynomial, v = floor(j/14): the rows of m into the fewest blocks that fit
    poly_n/d1, evenly (v = 0), the columns of n likewise (v = 1), or row blocks of half the largest
    power of two that fits (v = 2); the other side's block as wide as the rest allows. SPU searches
    every row block d0 in 1..m; these three give its ciphertexts at 19,894 of 19,950 products with
    m up to 1,024 and k, n up to 50,257 (benchmarks/results/spu/README.md; tests/test_spu_tables.py
    holds 593 of them exact). SPU encrypts the side with fewer ciphertexts (``min(b0, b2) * b1``)
    and packs responses d1 to a ciphertext (BumbleBee's interleaving: cheetah_dot.cc
    ``num_ct_to_recv = CeilDiv(blk0*blk2, subshape[1])``)."""
    swap = "min(v, 2 - v)"  # 1 for v = 1: the columns' side is cut
    rows, cols = f"(m + (n - m)*{swap})", f"(n + (m - n)*{swap})"
    fit = "max(1, floor(poly_n/d1))"  # rows of one block at most
    even = f"ceil(r/ceil(r/min(r, {fit})))"
    halved = f"max(1, 2**floor(log2(min(r, {fit})))/2)"

    def candidate(of: str) -> str:
        """``of`` (in the candidate's names) for candidate ``j``: its shape, its block counts."""
        return (f"let(v, floor(j/14), let(d1, 2**(j - 14*v), let(r, {rows}, let(c, {cols}, "
                f"let(d0, min(1, 2 - v)*{even} + max(0, v - 1)*{halved}, "
                "let(b0, ceil(r/d0), let(b1, ceil(k/d1), let(b2, ceil(c/max(1, floor(poly_n/(d0*d1)))), "
                f"let(sent, min(b0, b2)*b1, let(back, ceil(b0*b2/d1), {of}))))))))))")

    key = ("1000*(sent + back) + ceil(m*n/poly_n)*d1 + b0*b1*b2/10"
           " + 10**15*min(1, floor(d1/(k + 1)) + floor(d1/(poly_n + 1)))")
    return f"pick_min(j, 0, 41, {candidate(key)}, {candidate(value)})"


#: 1 when SPU packs the responses (the blocking above leaves more than one output block), 0 for
#: one unpacked response ("Pack 0 ms (none)"): m*n times a k block fits one polynomial
HE_PACKED = f"min(1, floor((m*n*{K_BLOCK} - 1)/poly_n))"
#: One HE product's ciphertexts: SPU's search (above), or unpacked: one operand ciphertext and a
#: response of ct_one_bytes per poly_n/(m*k) output columns (SPU re-blocks with any d1 <= k:
#: 8x48x32 => 8x48x21, two responses) plus ct_one_per_output per output.
HE_DOT = (f"{HE_PACKED}*{_he_search()} + (1 - {HE_PACKED})*("
          "ct_in_bytes + ct_one_bytes*ceil(n/max(1, floor(poly_n/(m*k)))) + ct_one_per_output*m*n)")

#: The ciphertexts of one HE product (operand ciphertexts sent plus responses): what CHEETAH's
#: compute follows (encrypting, multiplying by the plaintext blocks, packing and decrypting are
#: per ciphertext). The unpacked case: one operand ciphertext and ceil(n/floor(poly_n/(m*k))) responses.
HE_CIPHERTEXTS = (f"{HE_PACKED}*{_he_search('sent + back')} + (1 - {HE_PACKED})*("
                  "1 + ceil(n/max(1, floor(poly_n/(m*k)))))")

#: The plaintext-ciphertext block products of one packed HE product (b0*b1*b2 of SPU's block shape).
HE_BLOCK_PRODUCTS = (f"{HE_PACKED}*{_he_search('b0*b1*b2')} + (1 - {HE_PACKED})*"
                     "ceil(n/max(1, floor(poly_n/(m*k))))")


def spu_dot_ciphertexts(m: int, k: int, n: int, poly_n: int = 8192) -> tuple[tuple[int, int, int], int, int, str]:
    """What SPU 0.9.5 CHEETAH does for one m x k by k x n HE product, re-derived in Python from its
    code (``MatMatProtocol::GetSubMatShape`` in matmat_prot.cc: the block shape minimising
    1000 x ciphertexts sent and received + automorphisms + products / 10, the last of equals; and
    ``CheetahDot::Impl::doDotOLE`` in cheetah_dot.cc: no packing when one output block is left, else
    BumbleBee's interleaving, or PackLWEs when m*n <= the block's k): ``(block shape, operand
    ciphertexts, response ciphertexts, packing)``. The check of :data:`HE_DOT` (tests/test_spu_tables.py),
    not used by the tables."""
    def cdiv(a: int, b: int) -> int:
        return -(-a // b)

    def search(disable_pack: bool) -> tuple[int, int, int]:
        best, least = (0, 0, 0), float("inf")
        for d0 in range(1, min(poly_n, m) + 1):
            d1 = 1
            while d1 <= k and d0 * d1 <= poly_n:
                d2 = min(n, poly_n // d0 // d1)
                b0, b1, b2 = cdiv(m, d0), cdiv(k, d1), cdiv(n, d2)
                cost = ((min(b0, b2) * b1 + cdiv(b0 * b2, d1)) * 1000.0
                        + (0 if disable_pack else cdiv(m * n, poly_n) * d1) + b0 * b1 * b2 / 10.0)
                if cost <= least:
                    best, least = (d0, d1, d2), cost
                d1 = d1 + 1 if disable_pack else d1 * 2
        return best

    shape = search(False)
    blocks = [cdiv(x, d) for x, d in zip((m, k, n), shape)]
    if blocks[0] * blocks[2] <= 1:
        packing = "none"
        shape = search(True)
        blocks = [cdiv(x, d) for x, d in zip((m, k, n), shape)]
    else:
        packing = "interleave" if shape[1] < m * n else "pack_lwes"
    sent = min(blocks[0] * blocks[1], blocks[1] * blocks[2])
    back = {"interleave": cdiv(blocks[0] * blocks[2], shape[1]), "pack_lwes": cdiv(m * n, poly_n),
            "none": blocks[0] * blocks[2]}[packing]
    return shape, sent, back, packing


#: series -> its derived formula: a string (in the table's parameters and the op's dims), or
#: (term, coefficient) pairs summed
HE_PRODUCTS = {
    # secret x server-private: ONE HE product (mmul_av), then SPU's truncation of every output
    "linear.server-private": f"{HE_DOT} + 3.125*m*n",
    # secret x shared: two HE products (one per share of W)
    "linear.shared": f"2*({HE_DOT}) + 3.125*m*n",
    "matmul": (("b*ceil(min(m*k, k*n)/poly_n)", "2*ct_in_bytes"),
               (f"b*ceil(m*n/poly_n)*{MANY_POLY}", "2*ct_out_bytes"),
               (f"b*{ONE_POLY}", "2*ct_one_bytes"), (f"b*m*n*{ONE_POLY}", "2*ct_one_per_output"),
               ("b*m*n", "3.125")),
}
HE_PARAMS = {
    "ct_in_bytes": (184983, "bytes per encrypted-operand ciphertext",
                    "measured: least squares over six SPU 0.9.5 CHEETAH matmul runs with SPU's logged ciphertext "
                    "counts (protocols/bumblebee.yaml param ct_in_bytes: one seeded polynomial of poly_n "
                    "coefficients at about 180 bits)"),
    "ct_out_bytes": (254349, "bytes per response ciphertext",
                     "measured: same fit (protocols/bumblebee.yaml param ct_out_bytes: two polynomials at about "
                     "124 bits each)"),
    "ct_one_bytes": (127207, "bytes per unpacked response (SPU logs 'Pack (none)': one output block, as when m*k*n <= poly_n), fixed part",
                     "measured: least squares over the 10 CHEETAH runs with m*k*n <= poly_n (benchmarks/spu_campaign.py "
                     "--protocol CHEETAH, series matmul and linear.server-private; SPU logs 'Pack (none)'), fastest "
                     "warm run less the operand ciphertexts and the truncation: within 0.1% at every run"),
    "ct_one_per_output": (17.52, "bytes per output of a one-polynomial product's response",
                          "measured: same fit (127207 + 17.52 * m*n bytes per response)"),
}


def he_bytes(series: str, dims: dict) -> float:
    """The derived HE formula of ``series`` at ``dims`` (with the table's parameter values)."""
    values = {name: v for name, (v, _, _) in HE_PARAMS.items()}
    formula = HE_PRODUCTS[series]
    if isinstance(formula, str):
        return term_value(formula, {**dims, **values})
    return sum(float(eval(c, {"__builtins__": {}}, values)) * term_value(t, dims)  # noqa: S307 - our constants
               for t, c in formula)


def _he_fit(fit: dict) -> dict:
    """``fit`` with its bytes replaced by the derived HE formula and its errors against the same
    runs (their mean warm run, as fitted entries are; ``cheapest_errors`` against their cheapest
    warm run: the op's own traffic without an OT setup or refill landing on it)."""
    formula = HE_PRODUCTS[fit["series"]]

    def err(p: dict, key: str = "total_bytes") -> float:
        return he_bytes(fit["series"], p["dims"]) / p.get(key, p["total_bytes"]) - 1

    fitted = [p for p in fit["points"] if not p["heldout"]]
    if isinstance(formula, str):
        basis, coefs, comm_bytes = [formula], [1.0], formula
    else:
        values = {name: v for name, (v, _, _) in HE_PARAMS.items()}
        basis = [t for t, _ in formula]
        coefs = [float(eval(c, {"__builtins__": {}}, values)) for _, c in formula]  # noqa: S307 - our constants
        comm_bytes = " + ".join(f"{c} * {t}" for t, c in formula)
    return {**fit, "basis": basis, "coefficients": coefs, "derived": True, "comm_bytes": comm_bytes,
            "residuals": [err(p) for p in fitted], "max_residual": max(abs(err(p)) for p in fitted),
            "cheapest_errors": [err(p, "cheapest_bytes") for p in fitted],
            "heldout_errors": [err(p) for p in fit["points"] if p["heldout"]]}


def _linear_formula(fit: dict, with_bias: dict) -> tuple[str, str]:
    """The linear formula: the fit without a bias, plus ``bias *`` what the runs with a bias add
    (per basis term), and a note on how the composed formula does on the bias runs."""
    import numpy as np

    base = dict(zip(fit["basis"], fit["coefficients"]))

    def without_bias(dims: dict) -> float:
        if fit.get("derived"):
            return he_bytes(fit["series"], dims)
        return sum(c * term_value(t, dims) for t, c in base.items())

    # what a bias adds: the bias runs minus the no-bias formula at their sizes, fitted per call and
    # per output element (the bias runs vary m and n only, so a fit of their own would not separate
    # the no-bias terms)
    points = with_bias["points"]
    predicted = np.array([without_bias({**p["dims"]}) for p in points])
    measured = np.array([float(p["total_bytes"]) for p in points])
    basis = ("1", "m*n")
    A = np.array([[term_value(t, p["dims"]) for t in basis] for p in points])
    delta = nnls_relative(A, np.maximum(measured - predicted, 0.0))
    extra = dict(zip(basis, delta))
    parts = [fit["comm_bytes"]] if fit.get("derived") else [
        f"{c:.6g}" if t == "1" else f"{c:.6g} * {t}" for t, c in base.items() if c > 0]
    parts += [f"{c:.6g} * bias" if t == "1" else f"{c:.6g} * bias * {t}" for t, c in extra.items() if c > 0.5]
    errors = []
    for p in with_bias["points"]:
        d = {**p["dims"], "bias": 1}
        value = without_bias(p["dims"]) + sum(
            c * term_value(t, d) for t, c in extra.items() if c > 0.5)
        errors.append(abs(value / p["total_bytes"] - 1) if p["total_bytes"] else 0.0)
    note = (f" With a bias (bias = 1): series {with_bias['series']}, {len(errors)} sizes, max error "
            f"{100 * max(errors):.2f}%.")
    return " + ".join(parts) or "0", note


def _entry(protocol: str, fit: dict, fits: dict | None = None) -> dict:
    if protocol == "cheetah" and fit["series"] in HE_PRODUCTS:
        fit = _he_fit(fit)
    fitted = [p for p in fit["points"] if not p["heldout"]]
    held = [p for p in fit["points"] if p["heldout"]]
    held_text = "; ".join(
        f"held out {', '.join(f'{k}={v}' for k, v in sorted(p['dims'].items()))} ({p['total_bytes']:,} B): {100 * e:+.2f}%"
        for p, e in zip(held, fit["heldout_errors"]))
    basis = " + ".join(f"c{i}*{t}" if t != "1" else f"c{i}" for i, t in enumerate(fit["basis"]))
    comm_bytes = _embedding_formula(fit) if fit["kind"] == "embedding" else fit["comm_bytes"]
    bias_note = ""
    bias_series = fit["series"].replace("linear.", "linear.bias.", 1)
    if fit["kind"] == "linear" and fits is not None and bias_series in fits:
        comm_bytes, bias_note = _linear_formula(fit, fits[bias_series])
    elif fit["kind"] == "linear":
        bias_note = f" A bias was not measured in this setting ({bias_series}); costed as without one."
    rounds, rounds_source, rounds_note = _rounds(fit)
    compute, compute_source, compute_note = _compute(fit)
    return {
        "comm_bytes": comm_bytes,
        "rounds": rounds,
        "messages": fit["messages"],
        **compute,
        **({"includes_truncation": True} if fit["kind"] in ("mul", "weight_mul", "linear", "matmul", "scale", "rope")
           else {}),
        "source": (f"derived: CHEETAH's HE product (HE_PRODUCTS in benchmarks/spu_tables.py; SPU 0.9.5's blocking: "
                   f"benchmarks/results/spu/README.md), checked against benchmarks/spu_campaign.py --protocol "
                   f"CHEETAH (series {fit['series']}, {fit['n_fit']} sizes: {_dims_text(fitted)}): within 0.1% at "
                   f"{sum(abs(r) <= 0.001 for r in fit['residuals'])} of them, max residual "
                   f"{100 * fit['max_residual']:.2f}%{_cheapest_text(fit)}" if fit.get("derived") else
                   f"measured: benchmarks/spu_campaign.py --protocol {protocol.upper()} (series {fit['series']}, "
                   f"{fit['n_fit']} sizes: {_dims_text(fitted)}), fitted by benchmarks/spu_fit.py as {basis} "
                   f"(non-negative, relative least squares): max residual {100 * fit['max_residual']:.2f}%"
                   f"{rounds_source}"),
        **compute_source,
        "notes": (f"{held_text or 'no held-out point'}.{bias_note} {rounds_note} Messages: SPU send actions, the most "
                  f"over the measured sizes. Bytes: all parties' sent bytes, warm run.{compute_note}"),
    }


def _cheapest_text(fit: dict) -> str:
    """How a derived formula does against each size's cheapest warm run, where the runs say."""
    errors = [e for e in fit.get("cheapest_errors", []) if e is not None]
    if not errors or len(errors) != len(fit["residuals"]):
        return ""
    return (f" (mean warm run: a per-process OT setup of ~266 kB lands on a warm run of some sizes); against "
            f"each size's cheapest warm run within 0.5% at {sum(abs(e) <= 0.005 for e in errors)} of "
            f"{len(errors)}, max {100 * max(abs(e) for e in errors):.2f}%")


def _rounds(fit: dict) -> tuple[str, str, str]:
    """``(rounds formula, addition to the source, note)``: the measured depth where
    benchmarks/spu_depth.py measured the series (one-way delays; these tables keep
    delays_per_round at 1), else 0 for a series without messages, else the message count in its
    place, said so."""
    depth = fit.get("depth")
    if depth is not None:
        sizes = "; ".join(f"{', '.join(f'{k}={v}' for k, v in sorted(p['dims'].items()))}: {p['depth_delays_min']:g} "
                          f"delays, {p['messages']} messages" for p in depth["points"])
        return (depth["formula"], f"; rounds measured: {' and '.join(depth['runs'])}, series {fit['series']}",
                f"Rounds: sequential depth, the slope of wall time over the one-way delay with the parties as "
                f"processes on delayed links, in one-way delays ({sizes}); where the message count does not change "
                "with the size, the smallest size's (a larger one's big messages add transport round trips: "
                "benchmarks/spu_fit.py depth_formula).")
    if fit["messages"] == "0":
        return "0", "", "Rounds: 0 (no messages)."
    return (fit["messages"], "", "Rounds: depth not measured; SPU's send actions (messages) stand in for it (not a "
                                 "bound: measured depths range from below the send actions to a few % above).")


def _compute(fit: dict) -> tuple[dict, dict, str]:
    """``({"compute_s", "compute_range"[, "compute_scaling"]} or {}, {"compute_source": ...} or {}, note)``
    from the series' compute fit (benchmarks/spu_compute.py, with its at-scale runs) and the core
    scaling of its op kind (``spu_compute.py --at-scale --placement X|Y|Z``), if measured."""
    compute = fit.get("compute")
    if compute is None:
        return {}, {}, " Compute: not measured (no compute_s)."
    sizes = "; ".join(f"{', '.join(f'{k}={v}' for k, v in sorted(p['dims'].items()))}: {p['min_wall_s']:.4g} s"
                      for p in compute["points"] if not p["heldout"])
    held = "; ".join(f"{100 * e:+.0f}%" for e in compute["heldout_errors"]) or "none"
    timeouts = "".join(
        f" Did not finish a step (compile and warm-up, or a run) within {t['timeout_s']:g} s: "
        f"{', '.join(f'{k}={v}' for k, v in sorted(t['dims'].items()))} (the formula gives {t['predicted_s']:.0f} s)."
        for t in compute.get("timeouts", []))
    timeouts += "".join(
        f" Did not run: {', '.join(f'{k}={v}' for k, v in sorted(t['dims'].items()))}, {t['error']} on this machine "
        f"(the formula gives {t['predicted_s']:.0f} s)." for t in compute.get("failed", []))
    values = {"compute_s": compute["formula"],
              "compute_range": {"size": compute["size"], "max": compute["max_size"]}}
    source = f"measured: {' and '.join(compute['runs'])}, series {fit['series']}"
    scaling = fit.get("compute_scaling")
    if scaling is not None:
        values["compute_scaling"] = {"serial": scaling["serial"], "concurrent": scaling["concurrent"],
                                     **({"oversubscribed": scaling["oversubscribed"]} if "oversubscribed" in scaling else {})}
        points = "; ".join(
            f"{p['series']} {', '.join(f'{k}={v}' for k, v in sorted(p['dims'].items()))}: "
            f"t_X {p['t_x']:.4g} s, t_Y {p['t_y']:.4g} s, t_Z {p['t_z']:.4g} s ({'; '.join(p['runs'])})"
            for p in scaling["points"])
        source += (f"; core scaling (kind {fit['kind']}, median over its sizes"
                   + (f"; {scaling['note']}" if scaling.get("note") else "")
                   + f"): benchmarks/spu_compute.py --at-scale --scaling --placement X|Y|Z, X each party pinned "
                   f"to its own core, Y unpinned, Z both on core 0: {points}")
    return (values, {"compute_source": source},
            f" Compute: seconds of the slowest party with the parties as processes and no delay ({sizes}), fitted "
            f"as {' + '.join(_term_text(t) for t in compute['basis'])} (non-negative, relative least squares"
            f"{'; up to poly_n elements and past it apart' if compute.get('regimes') else ''}): max residual "
            f"{100 * compute['max_residual']:.0f}%, held-out size {held}; includes moving the bytes over an unshaped "
            f"local link.{timeouts}")


def _term_text(term: str) -> str:
    """A basis term for the notes: SPU's HE block search by name (HE_CIPHERTEXTS), not written out."""
    if "pick_min" not in term:
        return term
    where = "(tokens, vocab, width)" if "tokens" in term else "(m, k, n)"
    return f"{'b*' if term.startswith('b*') else ''}ciphertexts{where} (HE_CIPHERTEXTS in benchmarks/spu_tables.py)"


def _used_series() -> set[str]:
    used = set(ENTRIES.values())
    for _, _, choices in OPTIONS.values():
        for _, kinds in choices.values():
            used |= set(kinds.values())
    return used


def _confidence(protocol: str, fits: dict[str, dict]) -> str:
    """The table's confidence, from its fits: how far the worst entries miss their runs."""
    rough = sorted(((f["max_residual"], s) for s, f in fits.items() if s in _used_series()
                    and f["max_residual"] > 0.03), reverse=True)
    head = (f"what SPU 0.9.5 {protocol.upper()} sends for these JAX functions (picost/spu/jax_ops.py): every entry "
            "is fitted over at least 4 sizes spanning at least 16x, with a held-out size (notes). ")
    used = [s for s in sorted(_used_series()) if s in fits]
    with_messages = [s for s in used if fits[s]["messages"] != "0"]
    measured = [s for s in with_messages if "depth" in fits[s]]
    tail = (f"Rounds are sequential depth measured with the parties on delayed links (benchmarks/spu_depth.py) for "
            f"{len(measured)} of the {len(with_messages)} entries with messages; the others keep SPU's message "
            "count in its place (each entry's notes say which). Compute (compute_s) is measured with the parties "
            "as processes (benchmarks/spu_compute.py; each entry's compute_source names the run and the machine) "
            f"for {sum('compute' in fits[s] for s in used)} of the {len(used)} measured series, "
            f"{sum(any(p.get('at_scale') for p in fits[s]['compute']['points']) for s in used if 'compute' in fits[s])} "
            "of them also at the sizes users ask about (GPT-2 small / BERT-base at T = 128 and beyond: "
            "spu_compute.py --at-scale; each entry's compute_range gives the largest size its fit used). "
            + ("Transfer is parallel: every party sends its share of an opening at once, so an op's bytes cross "
               "the parties' links together (measured: docs/latency-model-check.md). "
               if PROTOCOL_HEADERS[protocol].get("transfer") == "parallel" else "")
            + "Whole models: `picost validate --against spu` and docs/validation.md; latency against the clock: "
            "docs/latency-model-check.md.")
    if not rough:
        return f"Medium-high for {head}Every fit is within 3% of its runs. {tail}"
    worst = ", ".join(f"{s} {100 * r:.0f}%" for r, s in rough[:6])
    return (f"Medium-low for {head}{protocol.upper()}'s bytes are not smooth in the size (HE packing steps, OT pool "
            f"refills and cached Beaver triples land on some calls only; fitted on the mean warm run), so {len(rough)} "
            f"entries miss some of their runs by more than 3% (worst: {worst}). {tail}")


def build(protocol: str, fits: dict[str, dict]) -> dict:
    """The table of ``protocol`` as a YAML-ready mapping."""
    head = PROTOCOL_HEADERS[protocol]
    missing = sorted({s for s in ENTRIES.values() if s not in fits}
                     | {s for _, _, ch in OPTIONS.values() for _, kinds in ch.values() for s in kinds.values()
                        if s not in fits})
    if missing:
        raise SystemExit(f"spu-{protocol}: no fit for series {', '.join(missing)} (run the campaign and spu_fit.py)")
    table = {
        "name": f"spu-{protocol}",
        "description": head["description"],
        "citations": {"spu": head["spu"],
                      "puma": "Dong et al., PUMA: Secure Inference of LLaMA-7B in Five Minutes, arXiv 2307.12533v3"},
        "setting": {"parties": head["parties"], "threat_model": "semi-honest", "correlated_randomness":
                    head["correlated_randomness"], "ring_bits": 64, "fractional_bits": 18,
                    **({"transfer": head["transfer"]} if "transfer" in head else {})},
        "confidence": _confidence(protocol, fits),
    }
    notes = "".join(_table_share_bytes(fits, w)[1] for w in ("server-private", "shared", "public"))
    table["params"] = {TABLE_PARAM: {
        "value": _table_share_bytes(fits, "server-private")[0], "unit": "bytes per embedding-table element",
        "source": (f"measured: benchmarks/spu_campaign.py --protocol {protocol.upper()}, the {TABLE_TERM} "
                   "coefficient of series embedding.client-private.server-private (benchmarks/spu_fit.py): what "
                   "bringing the server's private table into one_hot(ids) @ wte costs; the weights option sets it "
                   f"from the runs with a shared or public table{notes}")}}
    if protocol == "cheetah":
        for name, (value, unit, source) in HE_PARAMS.items():
            table["params"][name] = {"value": value, "unit": unit, "source": source}
        table["params"]["poly_n"] = {"value": 8192, "unit": "RLWE polynomial degree N", "source":
                                     "measured: SPU 0.9.5 CHEETAH log line of every dot ('CheetahDot uses 3@2 "
                                     "modulus 8192 degree for 64 bit ring', cheetah_dot.cc:310)"}
    options = {}
    for name, (description, default, choices) in OPTIONS.items():
        options[name] = {"description": description, "default": default, "choices": {}}
        for choice, (meaning, kinds) in choices.items():
            series = sorted(set(kinds.values()) | ({f"embedding.client-private.{choice}"}
                                                   if name == "weights" and choice != default else set()))
            entry = {"source": (f"measured: benchmarks/spu_campaign.py --protocol {protocol.upper()}, series "
                                f"{', '.join(series)}: {meaning}") if series else f"derived: {meaning}"}
            if name == "weights" and choice != default:
                entry["params"] = {TABLE_PARAM: _table_share_bytes(fits, choice)[0]}
            if kinds:
                entry["ops"] = {kind: _entry(protocol, fits[s], fits) for kind, s in kinds.items()}
            options[name]["choices"][choice] = entry
    table["options"] = options
    table["ops"] = {kind: _entry(protocol, fits[series], fits) for kind, series in ENTRIES.items()}
    return table


def dump(table: dict) -> str:
    import yaml

    header = ("# Generated by benchmarks/spu_tables.py from benchmarks/results/spu/fits.json; do not edit.\n"
              "# Regenerate: python benchmarks/spu_fit.py && python benchmarks/spu_tables.py\n")
    return header + yaml.safe_dump(table, sort_keys=False, width=110, allow_unicode=True)


def expected_tables(fits: dict | None = None) -> dict[Path, str]:
    """``{path: text}`` of every table whose protocol has fits (default: the committed fits.json)."""
    fits = json.loads(FITS.read_text()) if fits is None else fits
    return {REPO / "protocols" / f"spu-{p}.yaml": dump(build(p, fits[p])) for p in PROTOCOL_HEADERS if fits.get(p)}


def main(argv: list[str] | None = None) -> int:
    for path, text in expected_tables().items():
        path.write_text(text)
        print(f"wrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

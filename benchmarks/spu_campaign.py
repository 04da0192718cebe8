"""Measure every picost op kind in SPU 0.9.5 over enough sizes to fit the spu-* protocol tables.

Regenerates ``benchmarks/results/spu/{semi2k,aby3,cheetah}.jsonl``: one JSON line per measurement,
as ``picost/spu/runner.py`` reports it (``total_bytes`` = all parties' sent bytes of a warm run,
``max_send_actions``, ``warm_s``, ...; see its docstring for the method and what SPU does with
private operands), plus ``series`` (the name of the series it belongs to) and ``heldout`` (true for
the one extra size per series kept out of fits, to check them). Run it with the SPU interpreter::

    bash scripts/setup-spu.sh                                   # makes .venv-spu
    .venv-spu/bin/python benchmarks/spu_campaign.py             # all protocols, resumable
    .venv-spu/bin/python benchmarks/spu_campaign.py --protocol SEMI2K --list   # the plan only

Series (per protocol; defaults: weights server-private, input client-private ids):

* elementwise kinds over n = 1024, 2048, 8192, 16384 (held out: 5120); GELU in each
  construction (stock_erf, stock_tanh, puma -- the gelu_tanh kind is the stock_tanh function);
  weight_mul and a residual/position add with the second operand a weight, per weights setting;
* softmax (stock and puma, no mask) on rows x cols = {8, 32} x {16, 64, 256, 1024} (held out
  16 x 128); causal (mask by ``where`` and by ``bias``) on square T x T and 4T x T (heads) grids;
* layernorm / rmsnorm on {4, 16} rows x widths {64, 256, 1024, 4096} (held out 8 x 768), per
  weights setting; argmax on {1, 4} rows x {16, 64, 256, 1024} (held out 2 x 512);
* linear: SEMI2K/ABY3 the full grid m in {4, 16, 64} x k, n in {64, 256, 768} per weights setting
  (held out 32 x 512 x 128), a few with a bias; CHEETAH (HE, slow) a 12-point design plus 6 sizes
  with k not a power of two per weights setting; matmul (secret x secret) at attention shapes,
  b in {1, 4};
* embedding: tokens 4 -> 64, vocab 256 -> 4096, width 64/256, per input x weights setting.

Measurements already in a file (same protocol and options, no error) are skipped, so an
interrupted campaign resumes where it stopped. Failures are written as lines with ``error``.
SEMI2K and ABY3 measurements run in batches of 12 per child process (each on fresh runtimes;
their bytes are the same as one per child), CHEETAH's one per child. About an hour on 2 busy
cores, most of it CHEETAH.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "picost" / "spu"))
import runner  # noqa: E402  (the SPU harness, run by path: it never imports picost)

OUT = REPO / "benchmarks" / "results" / "spu"
ORDER = ("SEMI2K", "ABY3", "CHEETAH")
WEIGHTS = ("server-private", "shared", "public")
N_FIT, N_HELD = (1024, 2048, 8192, 16384), 5120
BATCH = 12  # SEMI2K/ABY3 measurements per child process
KEY_FIELDS = ("kind", "dims", "construction", "weights", "input", "operands", "causal", "mask", "bias",
              "rotated")


def _series(name: str, base: dict, fit: list[dict], held: dict) -> list[dict]:
    return ([{**base, "dims": d, "series": name, "heldout": False} for d in fit]
            + [{**base, "dims": held, "series": name, "heldout": True}])


def _elementwise(kind: str, name: str | None = None, **opts) -> list[dict]:
    return _series(name or kind, {"kind": kind, **opts}, [{"n": n} for n in N_FIT], {"n": N_HELD})


def _rows(kind: str, rows: tuple[int, ...], cols: tuple[int, ...], held: tuple[int, int], name: str,
          **opts) -> list[dict]:
    fit = [{"rows": r, "cols": c} for r, c in itertools.product(rows, cols)]
    return _series(name, {"kind": kind, **opts}, fit, {"rows": held[0], "cols": held[1]})


#: CHEETAH products small enough for one polynomial (m*k*n <= 8192), at attention-head shapes
SMALL_PRODUCTS = ((1, 8, 16, 8), (1, 16, 16, 16), (1, 16, 32, 16), (1, 8, 16, 32), (4, 8, 16, 8), (2, 16, 32, 16))


#: CHEETAH norms at small models' sizes (rows x cols from 256 to 3072 elements), where the OT pool
#: refills (~1.1 MB each) dominate
SMALL_NORMS = ((8, 32), (16, 32), (8, 128), (16, 128), (4, 768))


def plan(protocol: str) -> list[dict]:
    """Every measurement of ``protocol``, cheapest kinds first (so a partial run is useful)."""
    cheetah = protocol == "CHEETAH"
    p: list[dict] = []
    # -- elementwise ------------------------------------------------------------------------
    p += _elementwise("add", "add.secret", operands=["shared", "shared"])
    for w in WEIGHTS:
        p += _elementwise("add", f"add.weight.{w}", operands=["shared", "server"], weights=w)
    p += _elementwise("scale")
    p += _elementwise("truncation")
    p += _elementwise("rope", rotated=64)
    p += _elementwise("mul")
    for w in WEIGHTS:
        p += _elementwise("weight_mul", f"weight_mul.{w}", weights=w)
    p += _elementwise("relu")
    p += _elementwise("gelu", "gelu.puma", construction="puma")
    p += _elementwise("gelu", "gelu.stock_tanh", construction="stock_tanh")
    p += _elementwise("silu")
    p += _elementwise("gelu", "gelu.stock_erf", construction="stock_erf")
    if cheetah:  # past poly_n elements CHEETAH computes by HE, in whole polynomials (measured 2026-12-01)
        p += [{"kind": "gelu", "construction": "stock_tanh", "dims": {"n": n}, "series": "gelu.stock_tanh",
               "heldout": False} for n in (9216, 12288, 24576, 32768, 49152)]
        p += [{"kind": "silu", "dims": {"n": n}, "series": "silu", "heldout": False} for n in (9216, 12288, 18432, 24576)]
    # -- row ops ----------------------------------------------------------------------------
    cols = (16, 64, 256, 1024)
    p += _rows("argmax", (1, 4), cols, (2, 512), "argmax")
    for how in ("puma", "stock"):
        p += _rows("softmax", (8, 32), cols, (16, 128), f"softmax.{how}", construction=how)
    # rows not a power of two wide (contexts such as 48 or 96): from ~8,192 elements CHEETAH's
    # products go by HE and such rows cost more per element (measured 2026-12-01)
    p += [{"kind": "softmax", "construction": "stock", "dims": {"rows": r, "cols": c}, "series": "softmax.stock",
           "heldout": False} for r, c in ((32, 96), (64, 48), (128, 96), (256, 128))]
    for how, mask in (("puma", "where"), ("stock", "where"), ("stock", "bias")):
        fit = [{"rows": h * t, "cols": t} for t in (16, 64) for h in (1, 4)]
        fit += [{"rows": 256, "cols": 256}]
        p += _series(f"softmax.{how}.causal.{mask}", {"kind": "softmax", "construction": how, "causal": True,
                                                      "mask": mask}, fit, {"rows": 64, "cols": 32})
    for kind in ("layernorm", "rmsnorm"):
        for w in WEIGHTS:
            p += _rows(kind, (4, 16), (64, 256, 1024, 4096), (8, 768), f"{kind}.{w}", weights=w)
            if cheetah and w in ("server-private", "shared"):  # CHEETAH's bytes step with OT pool refills
                p += [{"kind": kind, "weights": w, "dims": {"rows": r, "cols": c}, "series": f"{kind}.{w}",
                       "heldout": False} for r, c in SMALL_NORMS]
    # -- embedding ----------------------------------------------------------------------------
    emb_fit = [{"tokens": 4, "vocab": 256, "width": 64}, {"tokens": 16, "vocab": 256, "width": 64},
               {"tokens": 64, "vocab": 256, "width": 64}, {"tokens": 16, "vocab": 1024, "width": 64},
               {"tokens": 16, "vocab": 4096, "width": 64}, {"tokens": 16, "vocab": 1024, "width": 256}]
    emb_held = {"tokens": 32, "vocab": 512, "width": 128}
    settings = [("client-private", "server-private"), ("shared", "shared"), ("shared", "server-private"),
                ("client-private", "shared"), ("client-private", "public"), ("client-embedded", "server-private")]
    for inp, w in settings:
        p += _series(f"embedding.{inp}.{w}", {"kind": "embedding", "input": inp, "weights": w}, emb_fit, emb_held)
    # -- matmul (secret x secret: attention) ------------------------------------------------
    mm_fit = [{"b": b, "m": t, "k": k, "n": n} for b in (1, 4)
              for t, k, n in ((16, 16, 16), (64, 64, 64), (128, 64, 128), (128, 128, 64))]
    if cheetah:  # products of m*k*n <= poly_n fit one polynomial: SPU logs "Pack (none)", smaller responses
        mm_fit += [{"b": b, "m": m, "k": k, "n": n} for b, m, k, n in SMALL_PRODUCTS]
    p += _series("matmul", {"kind": "matmul"}, mm_fit, {"b": 2, "m": 32, "k": 32, "n": 32})
    # -- linear -------------------------------------------------------------------------------
    held = {"m": 32, "k": 512, "n": 128}
    if cheetah:
        design = [(4, 16, 32), (8, 32, 32), (16, 16, 32),  # m*k*n <= poly_n: one polynomial, "Pack (none)"
                  (4, 64, 64), (16, 64, 64), (64, 64, 64), (16, 256, 256), (64, 256, 256), (16, 768, 256),
                  (16, 256, 768), (4, 768, 768), (64, 768, 768),
                  # k not a power of two (Llama's d_ff = 3/8 x 4d): SPU blocks k in powers of two
                  (8, 48, 32), (16, 48, 32), (8, 96, 64), (32, 96, 64), (16, 192, 128), (32, 192, 128)]
    else:
        design = list(itertools.product((4, 16, 64), (64, 256, 768), (64, 256, 768)))
    fit = [{"m": m, "k": k, "n": n} for m, k, n in design]
    for w in WEIGHTS:
        # CHEETAH's shared weights (two HE products per dot): 4 sizes spanning 256x in m*k*n
        w_fit = ([{"m": m, "k": k, "n": n} for m, k, n in ((4, 64, 64), (16, 256, 256), (64, 256, 256),
                                                            (16, 768, 256), (16, 96, 64))]
                 if cheetah and w == "shared" else fit)
        p += _series(f"linear.{w}", {"kind": "linear", "weights": w}, w_fit, held)
    bias_fit = [{"m": m, "k": 64, "n": n} for m, n in ((4, 64), (16, 64), (64, 64), (64, 256))]
    # a bias is a local add for SEMI2K and CHEETAH whoever holds it; ABY3 converts a private one
    for w in (("server-private",) if cheetah else WEIGHTS):
        p += _series(f"linear.bias.{w}", {"kind": "linear", "weights": w, "bias": True}, bias_fit,
                     {"m": 32, "k": 64, "n": 128})
    for m in p:
        m["protocol"] = protocol
        if cheetah and m["kind"] in ("linear", "matmul", "embedding"):
            m["runs"] = 3  # HE dominates; one refill (~1.1 MB) is small against them
    if cheetah:  # slow: the default settings' series first, so a partial campaign covers them
        p.sort(key=lambda m: _CHEETAH_PRIORITY.get(m["series"], 2))
    return p


#: CHEETAH series measured before the rest (0 first; stable order otherwise)
_CHEETAH_PRIORITY = {
    **{s: 0 for s in ("add.secret", "add.weight.server-private", "add.weight.shared", "add.weight.public",
                      "scale", "truncation", "rope", "mul", "weight_mul.server-private", "weight_mul.shared",
                      "weight_mul.public", "relu", "gelu.puma", "gelu.stock_tanh", "silu", "gelu.stock_erf",
                      "argmax", "softmax.puma", "softmax.stock", "layernorm.server-private",
                      "rmsnorm.server-private")},
    "linear.server-private": 1,
    **{s: 1.5 for s in ("matmul", "embedding.client-private.server-private", "softmax.puma.causal.where",
                        "softmax.stock.causal.where")},
}


def _key(m: dict) -> str:
    full = {**runner.MEASUREMENT_DEFAULTS, **m}
    return json.dumps([m["protocol"]] + [full.get(k) for k in KEY_FIELDS], sort_keys=True)


def _done(path: Path) -> set[str]:
    if not path.exists():
        return set()
    keys = set()
    for line in path.read_text().splitlines():
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "error" not in r:
            keys.add(_key(r))
    return keys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--protocol", nargs="+", choices=ORDER, default=list(ORDER))
    parser.add_argument("--series", nargs="*", help="only series whose name starts with one of these")
    parser.add_argument("--list", action="store_true", help="print the plan and exit")
    parser.add_argument("--out", type=Path, default=OUT)
    ns = parser.parse_args(argv)
    failed = 0
    for protocol in [p for p in ORDER if p in ns.protocol]:
        todo = plan(protocol)
        if ns.series:
            todo = [m for m in todo if any(m["series"].startswith(s) for s in ns.series)]
        if ns.list:
            for m in todo:
                print(json.dumps(m))
            continue
        path = ns.out / f"{protocol.lower()}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        done = _done(path)
        todo = [m for m in todo if _key(m) not in done]
        print(f"{protocol}: {len(todo)} to measure ({len(done)} already in {path.name})", flush=True)
        # CHEETAH: one child per measurement; SEMI2K/ABY3: batches in one child (same bytes)
        size = 1 if protocol == "CHEETAH" else BATCH
        for start_i in range(0, len(todo), size):
            batch = todo[start_i:start_i + size]
            start = time.perf_counter()
            if size == 1:
                try:
                    results = [runner.measure(batch[0])]
                except Exception as exc:  # noqa: BLE001 - record and go on
                    results = [{**batch[0], "error": str(exc)[-2000:]}]
            else:
                results = runner.measure_batch(batch)
            took = time.perf_counter() - start
            with path.open("a") as f:
                for m, result in zip(batch, results):
                    result["series"], result["heldout"] = m["series"], m["heldout"]
                    failed += "error" in result
                    f.write(json.dumps(result) + "\n")
            for j, (m, result) in enumerate(zip(batch, results), start_i + 1):
                print(f"  [{j}/{len(todo)}] {m['series']} {m['dims']}: {result.get('total_bytes', 'ERROR')} B"
                      + (f", {took:.1f} s" if size == 1 else f" (batch of {len(batch)}: {took:.1f} s)"),
                      flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

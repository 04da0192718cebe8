"""Measure CrypTen 0.4.1's compute time per op and write it into protocols/crypten.yaml (root to measure).

The compute term of the ``crypten`` table (``compute_s``, seconds on the machine named in each
run's ``host`` field). The two parties run as separate processes in netlab namespaces
(``picost/netlab/crypten_runs.py``: CrypTen's gloo communicator) on unshaped links through a lab
without a delay line, as ``benchmarks/spu_compute.py``; each op is warmed up once and run
``--repeats`` times; its time is the fastest run of the slower party. Moving the op's bytes over
the veths and its round trips (tens of microseconds each) count in this time, so it slightly
overstates compute.

The ops are those of ``benchmarks/crypten_ops.py`` (``picost/crypten_engine/ct_ops.py`` BENCH, the
functions ``picost validate --against crypten`` runs inside models), one per op kind of the
table, at :data:`SHAPES` (four fitted ``ROWSxCOLS`` and one held out); ``benchmarks/spu_fit.py``'s
``fit_compute`` fits each kind over its basis. CrypTen rescales a fixed-point product inside the
op (a local division in 2PC), so the op's time includes it and the truncation rows get
``compute_s: 0``.

    sudo .venv/bin/python benchmarks/crypten_compute.py            # measure (resumable), then write
    sudo .venv/bin/python benchmarks/crypten_compute.py --at-scale # GPT-2/BERT T = 128 sizes (AT_SCALE)
    sudo .venv/bin/python benchmarks/crypten_compute.py --at-scale --scaling --placement X   # core scaling
    .venv/bin/python benchmarks/crypten_compute.py --write-only    # rewrite the table from the runs

At scale (``--at-scale``): the same ops at the sizes of GPT-2 small / BERT-base at T = 128
(:data:`AT_SCALE`), fitted with the rest. ``--placement X|Y|Z`` pins the parties as
``benchmarks/spu_compute.py`` does (X each its own core, Y unpinned = the reference, Z both on core
0); X and Z rows go to ``benchmarks/results/crypten/scaling.jsonl`` and, with the at-scale Y rows of
``compute.jsonl``, give each kind's serial and concurrent fractions (``spu_fit.scaling_point``).

Results: ``benchmarks/results/crypten/compute.jsonl``. ``tests/test_crypten_compute.py`` fails
when the table's compute lines differ from what this script writes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

OUT = REPO / "benchmarks" / "results" / "crypten" / "compute.jsonl"
SCALING_OUT = REPO / "benchmarks" / "results" / "crypten" / "scaling.jsonl"
PLACEMENTS = {"X": ("0", "1"), "Y": (None, None), "Z": ("0", "0")}
#: GPT-2 small / BERT-base at T = 128 (d 768, d_ff 3072, 12 heads of 64) as CrypTen's BENCH ops run
#: them over a ROWS x COLS input: (kind, rows, cols, extra case fields). A linear is ROWS x COLS times
#: COLS x COLS (128x1536 has the multiply-accumulates of 128x768x3072), a matmul x x^T (one head:
#: 128x64 by 64x128), the embedding a one-hot over the vocabulary times the table (width 768).
AT_SCALE: tuple[tuple[str, int, int, dict], ...] = (
    ("add", 128, 768, {}), ("mul", 128, 3072, {}), ("weight_mul", 128, 768, {}),
    ("gelu", 128, 3072, {}), ("gelu_tanh", 128, 3072, {}), ("relu", 128, 3072, {}),
    ("softmax", 1536, 128, {}), ("layernorm", 128, 768, {}),
    ("linear", 128, 768, {}), ("linear", 128, 1536, {}), ("matmul", 128, 64, {}),
    ("embedding", 128, 50257, {"width": 768}), ("embedding", 128, 4096, {"width": 768}),
)
#: The at-scale cases timed in every placement: one per kind group.
SCALING = ("mul", "gelu", "softmax", "layernorm", "linear")
TABLE = REPO / "protocols" / "crypten.yaml"
#: Tables built on CrypTen's primitives, and the kinds they cost with their own constructions
#: (which keep no CrypTen compute): shaft runs SHAFT's softmax and GELUs on CrypTen.
TABLES = {TABLE: frozenset(), REPO / "protocols" / "shaft.yaml": frozenset({"softmax", "gelu", "gelu_tanh"})}

#: op kind -> (BENCH op, the kind's dims of a ROWS x COLS input)
KINDS = {
    "add": ("add", lambda r, c: {"n": r * c}),
    "weight_add": ("weight_add", lambda r, c: {"n": r * c}),
    "scale": ("scale", lambda r, c: {"n": r * c}),
    "mul": ("mul", lambda r, c: {"n": r * c}),
    "weight_mul": ("weight_mul", lambda r, c: {"n": r * c}),
    "relu": ("relu", lambda r, c: {"n": r * c}),
    "gelu": ("gelu", lambda r, c: {"n": r * c}),
    "gelu_tanh": ("gelu_tanh", lambda r, c: {"n": r * c}),
    "silu": ("silu", lambda r, c: {"n": r * c}),
    "softmax": ("softmax_row", lambda r, c: {"rows": r, "cols": c}),
    "layernorm": ("layernorm_row", lambda r, c: {"rows": r, "cols": c}),
    "rmsnorm": ("rmsnorm_row", lambda r, c: {"rows": r, "cols": c}),
    "argmax": ("argmax_row", lambda r, c: {"rows": r, "cols": c}),
    "linear": ("linear", lambda r, c: {"m": r, "k": c, "n": c}),
    "matmul": ("matmul", lambda r, c: {"b": 1, "m": r, "k": c, "n": r}),
    "embedding": ("embedding", lambda r, c: {"tokens": r, "vocab": c, "width": 16}),
}
#: per kind group: fitted shapes and the held-out one (ROWS, COLS)
SHAPES = {
    "elementwise": ([(8, 128), (32, 128), (64, 256), (128, 512)], (16, 320)),
    "rows": ([(8, 16), (32, 64), (128, 32), (64, 256)], (16, 128)),
    "products": ([(8, 64), (32, 128), (32, 256), (64, 512)], (16, 192)),
}
ROW_KINDS = ("softmax", "layernorm", "rmsnorm", "argmax")
PRODUCT_KINDS = ("linear", "matmul", "embedding")


def plan() -> list[dict]:
    out = []
    for kind, (op, _) in KINDS.items():
        group = "rows" if kind in ROW_KINDS else "products" if kind in PRODUCT_KINDS else "elementwise"
        fitted, held = SHAPES[group]
        out += [{"kind": kind, "op": op, "rows": r, "cols": c, "heldout": (r, c) == held} for r, c in fitted + [held]]
    return out


def _key(m: dict) -> str:
    return json.dumps([m["kind"], m["rows"], m["cols"]] + ([m["width"]] if m.get("width") else []))


def at_scale_plan(scaling: bool = False) -> list[dict]:
    """The :data:`AT_SCALE` cases (with ``scaling``: the first case of each :data:`SCALING` kind)."""
    out, seen = [], set()
    for kind, rows, cols, extra in AT_SCALE:
        if scaling and (kind not in SCALING or kind in seen):
            continue
        seen.add(kind)
        out.append({"kind": kind, "op": KINDS[kind][0], "rows": rows, "cols": cols, "heldout": False,
                    "at_scale": True, **extra})
    return out


def case_dims(case: dict) -> dict:
    """The table kind's dims of a case (the embedding's width as the case gives it)."""
    dims = KINDS[case["kind"]][1](case["rows"], case["cols"])
    return {**dims, "width": case["width"]} if "width" in case else dims


def run_measurements(repeats: int, at_scale: bool = False, scaling: bool = False, placement: str = "Y") -> None:
    from crypten_depth import crypten_python
    from spu_compute import host

    from picost.netlab.crypten_runs import time_crypten_cases
    from picost.netlab.lab import netlab_unavailable_reason

    reason = netlab_unavailable_reason()
    if reason:
        raise SystemExit(reason)
    target = OUT if placement == "Y" else SCALING_OUT
    done = {_key(r) + r.get("placement", "Y") for r in _rows(target)}
    cases = at_scale_plan(scaling) if at_scale else plan()
    todo = [m for m in cases if _key(m) + placement not in done]
    run = {"run": f"benchmarks/crypten_compute.py --repeats {repeats}" + (" --at-scale" if at_scale else "")
                  + (" --scaling" if scaling else "") + (f" --placement {placement}" if placement != "Y" else ""),
           "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "host": host()}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    by_key = {_key(m): m for m in todo}

    def save(result: dict) -> None:
        case = by_key[_key(result)] if _key(result) in by_key else result
        row = {**run, **{k: result[k] for k in ("kind", "op", "rows", "cols", "heldout", "min_wall_s",
                                                 "median_wall_s", "walls_s")},
               **({"width": case["width"]} if "width" in case else {}), "placement": placement,
               "at_scale": bool(case.get("at_scale")), "dims": case_dims(case),
               "loadavg": [round(x, 2) for x in os.getloadavg()]}
        with target.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"{placement} {result['kind']:12} {result['rows']}x{result['cols']:<6} {result['min_wall_s']:9.4f} s",
              flush=True)

    time_crypten_cases(todo, [0.0], crypten_python(), repeats=repeats, on_result=save, delay_line=False,
                       cpus=PLACEMENTS[placement])


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def fits() -> dict[str, dict]:
    """Per op kind: ``spu_fit.fit_compute`` of its runs, with its core scaling where measured."""
    from spu_fit import fit_compute

    by_kind: dict[str, list[dict]] = {}
    for row in _rows(OUT):
        by_kind.setdefault(row["kind"], []).append(row)
    measured = scaling()
    return {kind: {**fit_compute(rows, at_scale=True), **({"scaling": measured[kind]} if kind in measured else {})}
            for kind, rows in by_kind.items()}


def scaling() -> dict[str, dict]:
    """Per op kind timed in all three placements: the median serial and concurrent fractions of its
    cases (``spu_fit.scaling_point``: X from scaling.jsonl, Y the at-scale reference run of
    compute.jsonl, Z from scaling.jsonl), rounded to 2 digits, and the times behind them."""
    from spu_fit import kind_scaling, scaling_point

    times: dict[str, dict[str, float]] = {}
    for row in [r for r in _rows(OUT) if r.get("at_scale")] + _rows(SCALING_OUT):
        times.setdefault(_key(row), {})[row.get("placement", "Y")] = row["min_wall_s"]
    points: dict[str, list[dict]] = {}
    for key, t in times.items():
        if set(t) >= set(PLACEMENTS):
            points.setdefault(json.loads(key)[0], []).append(scaling_point(t["X"], t["Y"], t["Z"]))
    return {kind: kind_scaling(pts) for kind, pts in points.items()}


def compute_lines(kind: str, fit: dict | None) -> list[str]:
    """The ``compute_s`` and ``compute_source`` lines of one entry (4-space indented)."""
    if kind == "truncation":
        return ['    compute_s: "0"',
                '    compute_source: "derived: CrypTen rescales inside each op (a local division in 2PC); the '
                'measured compute_s of the op includes it (benchmarks/crypten_compute.py)"']
    if fit is None:
        return []
    sizes = "; ".join(f"{'x'.join(str(v) for v in p['dims'].values())}: {p['min_wall_s']:.3g} s"
                      for p in fit["points"] if not p["heldout"])
    held = ", ".join(f"{100 * e:+.0f}%" for e in fit["heldout_errors"]) or "none"
    source = (f"measured: {' and '.join(fit['runs'])}, op {KINDS[kind][0]} ({sizes}), fitted as "
              f"{' + '.join(fit['basis'])}: max residual {100 * fit['max_residual']:.0f}%, held-out {held}")
    lines = [f"    compute_s: {json.dumps(fit['formula'])}", f"    compute_source: {json.dumps(source)}",
             f"    compute_range: {{size: {json.dumps(SIZE.get(kind, 'n'))}, max: {largest_size(kind, fit)}}}"]
    if "scaling" in fit:
        sc = fit["scaling"]
        times = "; ".join(f"X {p['t_x']:.3g} s, Y {p['t_y']:.3g} s, Z {p['t_z']:.3g} s" for p in sc["points"])
        lines[1] = lines[1][:-1] + (f"; core scaling from the parties each on its own core (X), unpinned (Y) and both "
                                    f"on one core (Z): {times}\"")
        rho = f", oversubscribed: {sc['oversubscribed']}" if "oversubscribed" in sc else ""
        lines.append(f"    compute_scaling: {{serial: {sc['serial']}, concurrent: {sc['concurrent']}{rho}}}")
    return lines


#: The size each kind's compute is measured over (the table's ``compute_range``): multiply-accumulates
#: of a product, elements otherwise (what ``spu_compute.work`` spreads sizes over).
SIZE = {"linear": "m*k*n", "matmul": "b*m*k*n", "embedding": "tokens*vocab*width",
        **{k: "rows*cols" for k in ROW_KINDS}}


def largest_size(kind: str, fit: dict) -> int:
    """The largest :data:`SIZE` among the runs the fit used (held-out one included: it was measured)."""
    from picost.cost.formula import parse

    size = parse(SIZE.get(kind, "n"), set(fit["points"][0]["dims"]))
    return max(int(size.value(p["dims"])) for p in fit["points"])


def write_table(text: str, kind_fits: dict[str, dict], own: frozenset[str] = frozenset()) -> str:
    """A table's text (``protocols/crypten.yaml`` or one of :data:`TABLES`) with every ``ops:``
    entry's compute lines replaced; the kinds in ``own`` get none."""
    kind_fits = {k: f for k, f in kind_fits.items() if k not in own}
    lines = text.splitlines()
    out: list[str] = []
    in_ops, kind = False, None

    def close() -> None:
        if kind is not None:
            while out and not out[-1].strip():
                out.pop()
            out.extend(compute_lines(kind, kind_fits.get(kind)))

    for line in lines:
        if not line.startswith(" ") and line.strip():
            close()
            kind = None
            in_ops = line.startswith("ops:")
        elif in_ops and line.startswith("  ") and not line.startswith("   ") and line.rstrip().endswith(":"):
            close()
            kind = line.strip()[:-1]
        if in_ops and kind is not None and line.startswith(("    compute_s:", "    compute_source:", "    compute_range:", "    compute_scaling:")):
            continue
        out.append(line)
    close()
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write-only", action="store_true", help="rewrite the table from the recorded runs")
    parser.add_argument("--at-scale", action="store_true", help="the AT_SCALE cases instead of the fitted shapes")
    parser.add_argument("--scaling", action="store_true", help="with --at-scale: only the core-scaling cases")
    parser.add_argument("--placement", choices=sorted(PLACEMENTS), default="Y",
                        help="X: each party on its own core; Y: unpinned (the reference); Z: both on core 0")
    ns = parser.parse_args(argv)
    if not ns.write_only:
        run_measurements(ns.repeats, ns.at_scale, ns.scaling, ns.placement)
    kind_fits = fits()
    for kind, f in sorted(kind_fits.items()):
        held = ", ".join(f"{100 * e:+.0f}%" for e in f["heldout_errors"])
        print(f"{kind:12} compute_s = {f['formula']}  (max res {100 * f['max_residual']:.0f}%, held-out {held})")
    for path, own in TABLES.items():
        path.write_text(write_table(path.read_text(), kind_fits, own))
        print(f"wrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

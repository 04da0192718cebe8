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
    .venv/bin/python benchmarks/crypten_compute.py --write-only    # rewrite the table from the runs

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
    return json.dumps([m["kind"], m["rows"], m["cols"]])


def run_measurements(repeats: int) -> None:
    from crypten_depth import crypten_python
    from spu_compute import host

    from picost.netlab.crypten_runs import time_crypten_cases
    from picost.netlab.lab import netlab_unavailable_reason

    reason = netlab_unavailable_reason()
    if reason:
        raise SystemExit(reason)
    done = {_key(json.loads(line)) for line in OUT.read_text().splitlines() if line.strip()} if OUT.is_file() else set()
    todo = [m for m in plan() if _key(m) not in done]
    run = {"run": f"benchmarks/crypten_compute.py --repeats {repeats}",
           "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "host": host()}
    OUT.parent.mkdir(parents=True, exist_ok=True)

    def save(result: dict) -> None:
        dims = KINDS[result["kind"]][1](result["rows"], result["cols"])
        row = {**run, **{k: result[k] for k in ("kind", "op", "rows", "cols", "heldout", "min_wall_s",
                                                 "median_wall_s", "walls_s")},
               "dims": dims, "loadavg": [round(x, 2) for x in os.getloadavg()]}
        with OUT.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"{result['kind']:12} {result['rows']}x{result['cols']:<6} {result['min_wall_s']:9.4f} s", flush=True)

    time_crypten_cases(todo, [0.0], crypten_python(), repeats=repeats, on_result=save, delay_line=False)


def fits() -> dict[str, dict]:
    """Per op kind: ``spu_fit.fit_compute`` of its runs."""
    from spu_fit import fit_compute

    by_kind: dict[str, list[dict]] = {}
    for line in OUT.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            by_kind.setdefault(row["kind"], []).append(row)
    return {kind: fit_compute(rows) for kind, rows in by_kind.items()}


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
    return [f"    compute_s: {json.dumps(fit['formula'])}", f"    compute_source: {json.dumps(source)}",
            f"    compute_range: {{size: {json.dumps(SIZE.get(kind, 'n'))}, max: {largest_size(kind, fit)}}}"]


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
        if in_ops and kind is not None and line.startswith(("    compute_s:", "    compute_source:", "    compute_range:")):
            continue
        out.append(line)
    close()
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write-only", action="store_true", help="rewrite the table from the recorded runs")
    ns = parser.parse_args(argv)
    if not ns.write_only:
        run_measurements(ns.repeats)
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

"""Benchmark the picost two-party engine per op and shape: bytes per element per party
(online), rounds, dealer bytes, wall time and elements per second, beside CrypTen 0.4.1.

    .venv/bin/python benchmarks/mpc_ops.py            # default shapes, one launch
    .venv/bin/python benchmarks/mpc_ops.py --quick    # small shapes (seconds)
    .venv/bin/python benchmarks/mpc_ops.py --vs-crypten [--repeats 3]   # GPT-2-sized ops, beside CrypTen
    .venv/bin/python benchmarks/mpc_ops.py --option comparison=tree ...  # the engine's tree comparison

``--vs-crypten`` (needs .venv-crypten: bash scripts/setup-crypten.sh) runs each op of
:data:`VS_CRYPTEN` in picost's engine and in CrypTen 0.4.1 (two processes, its trusted-first-party
defaults: its preprocessing is inside its wall time), alternating, and prints per op online bytes
per party, rounds, dealer bytes and wall time (picost: online + preprocessing) side by side;
writes benchmarks/results/mpc_vs_crypten.jsonl. The engine runs with :data:`VS_CRYPTEN_OPTIONS`
(CrypTen's own construction choices where picost-2pc offers them: local truncation, the limit
exp; and the tree comparison) unless ``--option`` says otherwise, e.g. ``--option
truncation=exact --option exp=spline --option comparison=tables`` for picost-2pc's defaults.

Writes benchmarks/results/mpc_ops.jsonl (one line per op and shape). Online wall time is the
client's time inside the op (its truncation row included) in the online run, all three parties
on localhost; "offline s" is the slower party's rehearsal (drawing and receiving the dealer's
material while the dealer computes it). Elements: n for elementwise ops, rows x cols for row
ops, outputs for products.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from picost.cost.protocol_table import load_protocol  # noqa: E402
from picost.cost.table_options import options_for, parse_option_args  # noqa: E402
from picost.mpc.launcher import run_batch  # noqa: E402
from picost.mpc.validate import ops_job  # noqa: E402
from picost.model.ops import Block, Holder, Op  # noqa: E402

CRYPTEN = {  # per party, online; CrypTen 0.4.1, Z_2^64, f = 16 (issue 4; protocols/crypten.yaml)
    "relu": (232, 9), "exp": (64, 8), "softmax": (745, 116),
}

SHAPES = {
    "default": [("relu", {"n": 4096}), ("exp", {"n": 4096}), ("gelu", {"n": 4096}), ("silu", {"n": 4096}),
                ("softmax", {"rows": 16, "cols": 128, "valid": 16 * 128}),
                ("layernorm", {"rows": 16, "cols": 768}), ("rmsnorm", {"rows": 16, "cols": 768}),
                ("mul", {"n": 4096}), ("matmul", {"b": 12, "m": 16, "k": 64, "n": 16}),
                ("linear", {"m": 16, "k": 768, "n": 768}), ("argmax", {"rows": 1, "cols": 1024})],
    "quick": [("relu", {"n": 512}), ("exp", {"n": 512}), ("gelu", {"n": 512}),
              ("softmax", {"rows": 4, "cols": 128, "valid": 4 * 128}), ("layernorm", {"rows": 4, "cols": 64}),
              ("linear", {"m": 4, "k": 64, "n": 64})],
}


VS_CRYPTEN_OPTIONS = {"comparison": "tree", "truncation": "local", "exp": "limit"}
"""picost-2pc options of --vs-crypten unless overridden: the construction choices CrypTen 0.4.1 makes
(its two-party rescale is local, its exp the limit of eight squarings), and the comparison that is
faster end to end (tree: small dealer material)."""

VS_CRYPTEN = [  # (picost kind, dims, CrypTen op of picost/crypten_engine/ct_ops.py BENCH, its ROWSxCOLS)
    ("relu", {"n": 128 * 768}, "relu", (128, 768)),
    ("gelu", {"n": 128 * 768}, "gelu", (128, 768)),
    ("exp", {"n": 128 * 768}, "exp", (128, 768)),
    ("softmax", {"rows": 12 * 128, "cols": 128, "valid": 12 * 128 * 128}, "softmax_row", (12 * 128, 128)),
    ("layernorm", {"rows": 128, "cols": 768}, "layernorm_row", (128, 768)),
    ("matmul", {"b": 1, "m": 128, "k": 768, "n": 768}, "linear", (128, 768)),  # X (128x768) @ shared W (768x768)
]


def crypten_op(op: str, shape: tuple[int, int]) -> dict:
    """One CrypTen run of ``op`` at ``shape`` (rank 0's counters and wall time)."""
    python = REPO / ".venv-crypten" / "bin" / "python"
    if not python.exists():
        raise SystemExit("--vs-crypten needs CrypTen 0.4.1 in .venv-crypten: bash scripts/setup-crypten.sh")
    out = subprocess.run([str(python), str(REPO / "picost" / "crypten_engine" / "runner.py"), "ops", op,
                          "--shape", f"{shape[0]}x{shape[1]}"], capture_output=True, text=True, check=True, cwd="/tmp")
    return json.loads(out.stdout.strip().splitlines()[-1])


def engine_op(kind: str, dims: dict[str, int], options: dict[str, str]) -> dict:
    """One engine run of op ``kind`` at ``dims`` (picost-2pc ``options``): per-party online bytes,
    rounds, dealer bytes, walls."""
    op = Op(f"{kind}.0", kind, Block.FFN, None, dims, (Holder.SHARED,))
    run = run_batch([ops_job([op], seed=1, options=options)], timeout_s=900)[0]
    rows = [op.name, f"{op.name}.trunc"]
    st = {role: [run.stats[role][r] for r in rows if r in run.stats[role]] for role in ("client", "server", "dealer")}
    return {"client_sent": sum(s["bytes_sent"] for s in st["client"]),
            "server_sent": sum(s["bytes_sent"] for s in st["server"]),
            "rounds": sum(s["rounds"] for s in st["client"]), "dealer_bytes": sum(s["offline_bytes"] for s in st["dealer"]),
            "online_s": sum(s["wall_s"] for s in st["client"]),
            "preprocess_s": max(run.preprocess_s["client"], run.preprocess_s["server"])}


def vs_crypten(repeats: int, out: Path, options: dict[str, str]) -> int:
    """Each op of :data:`VS_CRYPTEN` in both engines, alternating; the best of ``repeats`` wall times."""
    print(f"{'op':9} {'elements':>8} | {'picost B/elem/party':>19} {'rounds':>6} {'dealer B/elem':>13} {'online s':>8} "
          f"{'prep s':>7} {'total s':>7} | {'CrypTen B/elem/party':>20} {'rounds':>6} {'wall s':>7} | {'time ratio':>10}")
    lines = []
    for kind, dims, ct_name, shape in VS_CRYPTEN:
        ours, theirs = [], []
        for _ in range(repeats):
            ours.append(engine_op(kind, dims, options))
            theirs.append(crypten_op(ct_name, shape))
        n = elements(kind, dims)
        best = min(ours, key=lambda r: r["online_s"] + r["preprocess_s"])
        ct = min(theirs, key=lambda r: r["wall_s"])
        total = best["online_s"] + best["preprocess_s"]
        per_party = max(best["client_sent"], best["server_sent"]) / n
        record = {"op": kind, "dims": dims, "elements": n, "options": options, "picost": best, "crypten": ct,
                  "picost_bytes_per_element_per_party": per_party,
                  "crypten_bytes_per_element_per_party": ct["sent_bytes"] / n,
                  "time_ratio": total / ct["wall_s"], "repeats": repeats}
        lines.append(record)
        print(f"{kind:9} {n:8d} | {per_party:19.1f} {best['rounds']:6d} {best['dealer_bytes'] / n:13.0f} "
              f"{best['online_s']:8.2f} {best['preprocess_s']:7.2f} {total:7.2f} | {ct['sent_bytes'] / n:20.1f} "
              f"{ct['rounds']:6d} {ct['wall_s']:7.2f} | {total / ct['wall_s']:10.2f}")
    no_worse = sum(r["picost_bytes_per_element_per_party"] <= r["crypten_bytes_per_element_per_party"]
                   and r["picost"]["rounds"] <= r["crypten"]["rounds"] for r in lines)
    within = sum(r["time_ratio"] <= 1.5 for r in lines)
    better = sum(r["time_ratio"] < 1.0 for r in lines)
    print(f"online bytes and rounds no worse than CrypTen's on {no_worse} of {len(lines)} ops; wall time within "
          f"1.5x on {within}, below CrypTen's on {better}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r) + "\n" for r in lines))
    print(f"wrote {out}")
    return 0


def elements(kind: str, dims: dict[str, int]) -> int:
    if "n" in dims and kind not in ("linear", "matmul"):
        return dims["n"]
    if kind == "linear":
        return dims["m"] * dims["n"]
    if kind == "matmul":
        return dims["b"] * dims["m"] * dims["n"]
    return dims["rows"] * dims["cols"]


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small shapes")
    ap.add_argument("--out", type=Path, default=None,
                    help="output file (default benchmarks/results/mpc_ops.jsonl, or mpc_vs_crypten.jsonl)")
    ap.add_argument("--vs-crypten", action="store_true", help="GPT-2-sized ops beside CrypTen 0.4.1, alternating")
    ap.add_argument("--repeats", type=int, default=1, help="--vs-crypten: runs of each op in each engine (best kept)")
    ap.add_argument("--option", action="append", default=[], help="a picost-2pc option, e.g. comparison=tree")
    args = ap.parse_args(argv)
    chosen = options_for("picost-2pc", parse_option_args(args.option))
    options = {**VS_CRYPTEN_OPTIONS, **chosen} if args.vs_crypten else chosen
    load_protocol("picost-2pc", options)  # an unknown option fails here
    results = REPO / "benchmarks" / "results"
    if args.vs_crypten:
        print("picost-2pc options: " + ", ".join(f"{k}={v}" for k, v in sorted(options.items())))
        return vs_crypten(args.repeats, args.out or results / "mpc_vs_crypten.jsonl", options)
    args.out = args.out or results / "mpc_ops.jsonl"
    shapes = SHAPES["quick" if args.quick else "default"]
    ops = [Op(f"{kind}.{i}", kind, Block.FFN, None, dims, (Holder.SHARED,)) for i, (kind, dims) in enumerate(shapes)]
    runs = run_batch([ops_job([op], seed=1, options=options) for op in ops], timeout_s=300)
    lines = []
    header = (f"{'op':10} {'shape':28} {'elements':>8} {'B/elem c->s':>11} {'B/elem s->c':>11} {'rounds':>6} "
              f"{'dealer B/elem':>13} {'offline s':>9} {'online s':>8} {'elem/s':>9}  CrypTen 0.4.1 (B/elem, rounds)")
    print(header)
    for op, run in zip(ops, runs):
        rows = [op.name, f"{op.name}.trunc"]
        st = {role: [run.stats[role][r] for r in rows if r in run.stats[role]] for role in ("client", "server", "dealer")}
        n = elements(op.kind, dict(op.dims))
        c2s = sum(s["bytes_sent"] for s in st["client"])
        s2c = sum(s["bytes_sent"] for s in st["server"])
        rounds = sum(s["rounds"] for s in st["client"])
        dealer = sum(s["offline_bytes"] for s in st["dealer"])
        wall = sum(s["wall_s"] for s in st["client"])
        offline = max(run.preprocess_s["client"], run.preprocess_s["server"])
        peer = CRYPTEN.get(op.kind)
        record = {"op": op.kind, "dims": dict(op.dims), "elements": n, "options": options, "bytes_client_to_server": c2s,
                  "bytes_server_to_client": s2c, "rounds": rounds, "offline_bytes": dealer, "wall_s": wall, "offline_s": offline,
                  "bytes_per_element_client": c2s / n, "bytes_per_element_server": s2c / n,
                  "elements_per_s": n / wall if wall else None,
                  "crypten_bytes_per_element": peer[0] if peer else None, "crypten_rounds": peer[1] if peer else None}
        lines.append(record)
        shape = ",".join(f"{k}={v}" for k, v in op.dims.items())
        print(f"{op.kind:10} {shape:28} {n:8d} {c2s / n:11.2f} {s2c / n:11.2f} {rounds:6d} {dealer / n:13.0f} "
              f"{offline:9.3f} {wall:8.3f} {n / wall:9.0f}  {'%d, %d' % peer if peer else '-'}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(r) + "\n" for r in lines))
    print(f"launch wall time {runs[0].wall_s:.1f} s; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

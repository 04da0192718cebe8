"""Run ops and whole models in CrypTen 0.4.1 between two processes and report its own counters.

The one CrypTen harness of picost. It runs inside the CrypTen virtualenv (``bash
scripts/setup-crypten.sh`` makes ``.venv-crypten``) and imports nothing but torch, crypten, the
standard library and its siblings ``ct_ops.py`` / ``ct_model.py`` (by path), never picost. Run it
from anywhere outside the crypten package directory::

    .venv-crypten/bin/python picost/crypten_engine/runner.py ops relu exp --shape 4x128 [--weights public]
    .venv-crypten/bin/python picost/crypten_engine/runner.py model < request.json

Both launch two parties with ``crypten.mpc.run_multiprocess`` (forked processes, gloo over a
rendezvous file, CrypTen's defaults: trusted-first-party Beaver triples, 16 fractional bits) with
``cfg.communicator.verbose`` on. CrypTen counts per party: ``rounds`` (communication calls) and
``bytes`` = 8 x the elements it logs, which for a two-party ``all_reduce`` of n elements is 2n
(sent + received), so one party's ``bytes`` is all bytes on the wire of a symmetric exchange.

``ops`` (``benchmarks/crypten_ops.py`` runs it): each named op of :data:`ct_ops.BENCH` at each
shape on a fresh ``ROWSxCOLS`` tensor of N(0, 1) values, counters reset right before the op; one
JSON line per op and shape with rank 0's ``rounds``, ``bytes``, ``sent_bytes`` = bytes / 2 and
``wall_s`` (the op's wall seconds, its trusted-first-party preprocessing included).

``model``: a JSON request ``{"arch", "ops", "ids", "params_file", "weights", "norm_gain"}`` (see
``ct_model.py``; picost's ``bridge.py`` writes it). Prints one JSON object: per op in execution
order its name, kind, rounds and bytes of each rank; the forward pass's totals per rank
(``total``: counted from before the embedding to after the last op, so communication outside
the ops would show as a difference); the decrypted logits (``(1, rows, vocab)`` as nested lists),
the decrypted argmax one-hot's index; the wall seconds of the forward pass per rank.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ct_ops  # noqa: E402


def _two_parties(party: Callable[[str], None]) -> list[dict[str, Any]]:
    """Run ``party(out_dir)`` as ranks 0 and 1; each writes ``rank{r}.json`` there (a file, not
    the launcher's queue, which deadlocks on large results)."""
    import crypten

    with tempfile.TemporaryDirectory(prefix="picost-crypten-") as out_dir:
        done = crypten.mpc.run_multiprocess(world_size=2)(party)(out_dir)
        if done is None:
            raise SystemExit("a CrypTen party failed (its traceback is above)")
        return [json.loads((Path(out_dir) / f"rank{r}.json").read_text()) for r in range(2)]


def _start_party() -> int:
    import crypten.communicator as comm
    import torch
    from crypten.config import cfg

    torch.set_num_threads(1)
    cfg.communicator.verbose = True
    return comm.get().get_rank()


def _write(out_dir: str, rank: int, result: Any) -> None:
    (Path(out_dir) / f"rank{rank}.json").write_text(json.dumps(result))


# ---------------------------------------------------------------------------------------------
# ops
# ---------------------------------------------------------------------------------------------

def run_ops(ops: list[str], shapes: list[tuple[int, int]], weights: str) -> list[dict[str, Any]]:
    """Rank 0's counts of each op at each shape (see the module doc)."""
    unknown = [op for op in ops if op not in ct_ops.BENCH]
    if unknown:
        raise SystemExit(f"unknown op(s) {', '.join(unknown)}: one of {', '.join(ct_ops.BENCH)}")

    def party(out_dir: str) -> None:
        import crypten
        import crypten.communicator as comm
        import torch

        rank = _start_party()
        torch.manual_seed(0)
        rows_out = []
        for name in ops:
            for rows, cols in shapes:
                x = crypten.cryptensor(torch.randn(rows, cols))
                plain = {"mat": torch.randn(cols, cols) / cols ** 0.5, "gain": torch.ones(cols),
                         "bias": torch.zeros(cols), "table": torch.randn(cols, 16)}
                w = plain if weights == "public" else {k: crypten.cryptensor(v) for k, v in plain.items()}
                comm.get().reset_communication_stats()
                start = time.perf_counter()
                ct_ops.BENCH[name](x, w)
                wall_s = time.perf_counter() - start
                stats = comm.get().get_communication_stats()
                rows_out.append({"op": name, **({"weights": "public"} if weights == "public" else {}),
                                 "rows": rows, "cols": cols, "rank": rank,
                                 "rounds": int(stats["rounds"]), "bytes": int(stats["bytes"]),
                                 "sent_bytes": int(stats["bytes"]) // 2, "wall_s": wall_s})
        _write(out_dir, rank, rows_out)

    return _two_parties(party)[0]


def _shape(text: str) -> tuple[int, int]:
    rows, cols = text.lower().split("x")
    return int(rows), int(cols)


def ops_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="runner.py ops", description="Count CrypTen's communication per op.")
    parser.add_argument("ops", nargs="+", help=f"any of {', '.join(ct_ops.BENCH)}")
    parser.add_argument("--shape", nargs="+", type=_shape, default=[(4, 128)])
    parser.add_argument("--weights", choices=("shared", "public"), default="shared",
                        help="server weights secret-shared (a CrypTen model) or public plain tensors")
    ns = parser.parse_args(argv)
    for row in run_ops(ns.ops, ns.shape, ns.weights):
        print(json.dumps(row), flush=True)


# ---------------------------------------------------------------------------------------------
# model
# ---------------------------------------------------------------------------------------------

def run_model(request: dict[str, Any]) -> dict[str, Any]:
    """Both parties' view of one model run (see the module doc)."""

    def party(out_dir: str) -> None:
        import crypten
        import crypten.communicator as comm
        import torch
        from ct_model import CtModel

        rank = _start_party()
        saved = torch.load(request["params_file"], weights_only=True)
        model = CtModel(request, saved["params"], saved["tables"])
        ids = torch.tensor(request["ids"])
        one_hot = crypten.cryptensor(torch.nn.functional.one_hot(ids, request["arch"]["vocab_size"])
                                     .float()[None], src=0)
        comm.get().reset_communication_stats()
        start = time.perf_counter()
        logits, chosen = model.forward(one_hot)
        wall_s = time.perf_counter() - start
        stats = comm.get().get_communication_stats()
        total = {"rounds": int(stats["rounds"]), "bytes": int(stats["bytes"])}
        plain = logits.get_plain_text()
        next_token = None if chosen is None else int(chosen.get_plain_text().argmax())
        _write(out_dir, rank, {"ops": model.measured, "total": total, "wall_s": wall_s,
                               "logits": plain.tolist(), "next_token": next_token})

    ranks = _two_parties(party)
    out = {"ops": [], "total": {k: [r["total"][k] for r in ranks] for k in ("rounds", "bytes")},
           "wall_s": [r["wall_s"] for r in ranks], "logits": ranks[0]["logits"], "next_token": ranks[0]["next_token"]}
    for mine, theirs in zip(ranks[0]["ops"], ranks[1]["ops"]):
        out["ops"].append({"name": mine["name"], "kind": mine["kind"], "rounds": [mine["rounds"], theirs["rounds"]],
                           "bytes": [mine["bytes"], theirs["bytes"]]})
    return out


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in ("ops", "model"):
        raise SystemExit("usage: runner.py ops OP... [--shape RxC...] [--weights public] | runner.py model < request.json")
    if argv[0] == "ops":
        ops_main(argv[1:])
        return
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    print(json.dumps(run_model(json.loads(sys.stdin.read()))), flush=True)


if __name__ == "__main__":
    main()

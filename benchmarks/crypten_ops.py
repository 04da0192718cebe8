"""Count CrypTen 0.4.1's per-op communication (bytes and rounds) with its own counters.

Checks the ``derived:`` formulas of ``protocols/crypten.yaml``. CrypTen is not a picost
dependency; run it from a separate virtualenv::

    bash scripts/setup-crypten.sh            # makes .venv-crypten (CrypTen 0.4.1, CPU torch, one patch)
    .venv-crypten/bin/python benchmarks/crypten_ops.py relu exp --shape 4x128

(run it from the top of the repo or anywhere outside the crypten package directory). benchmarks/results/crypten_ops.jsonl was made with
``... mul square matmul linear embedding weight_mul relu ltz exp reciprocal inv_sqrt sigmoid tanh erf
gelu gelu_tanh silu max_row argmax_row softmax_row layernorm_row rmsnorm_row --shape 4x128 8x64 4x100``
then ``softmax_row argmax_row --shape 2x2 2x3 2x20 1x1024`` and ``softmax_row --shape 1x148 1x149``, and
``linear embedding weight_mul layernorm_row rmsnorm_row --shape 4x128 8x64 4x100 --weights public``.

Defaults of ``configs/default.yaml`` (2 parties, TFP Beaver triples, 16 fractional bits). Each op
runs once on a fresh ``MPCTensor`` of shape ROWSxCOLS with values ~ N(0, 1); the counters
(``cfg.communicator.verbose``) are reset right before the op. Output: one JSON object per op and
shape, with rank 0's ``rounds`` and ``bytes`` as CrypTen counts them. Note CrypTen's convention:
an ``all_reduce`` of n elements logs 2n elements for *each* party ("each party sends and receives
one tensor"), so for two parties ``bytes`` = bytes sent + bytes received by that party = 2 x the
bytes it sends. ``sent_bytes`` = ``bytes / 2`` is what one party puts on the wire.
"""

from __future__ import annotations

import argparse
import json
import sys


def _op(name: str):
    """The CrypTen computation for ``name``: a function of x (ROWSxCOLS) and encrypted weights.

    ``w`` holds the server weights, encrypted (secret-shared, as in a CrypTen model) or, with
    ``--weights public``, plain torch tensors: ``w["mat"]`` COLSxCOLS, ``w["gain"]``/``w["bias"]`` of
    length COLS, ``w["table"]`` COLSx16.
    """
    import math

    def layernorm(x, w):
        d = x - x.mean(-1, keepdim=True)
        return d * (d.square().mean(-1, keepdim=True) + 1e-5).inv_sqrt() * w["gain"] + w["bias"]

    def embedding(x, w):  # ROWS tokens, vocabulary COLS, width 16; the one-hot is the client's input
        import crypten
        import torch
        ids = torch.arange(x.size(0)) % x.size(1)
        return crypten.cryptensor(torch.nn.functional.one_hot(ids, x.size(1)).float()).matmul(w["table"])

    table = {
        "mul": lambda x, w: x * x.flip(-1),
        "square": lambda x, w: x.square(),
        "matmul": lambda x, w: x.matmul(x.t()),
        "linear": lambda x, w: x.matmul(w["mat"]),
        "embedding": embedding,
        "weight_mul": lambda x, w: x * w["gain"],
        "relu": lambda x, w: x.relu(),
        "ltz": lambda x, w: x._ltz(),
        "exp": lambda x, w: x.exp(),
        "reciprocal": lambda x, w: x.reciprocal(),
        "inv_sqrt": lambda x, w: x.inv_sqrt(),
        "sigmoid": lambda x, w: x.sigmoid(),
        "tanh": lambda x, w: x.tanh(),
        "erf": lambda x, w: x.erf(),
        "gelu": lambda x, w: x * ((x * (1 / math.sqrt(2))).erf() + 1) * 0.5,
        "gelu_tanh": lambda x, w: x * (((x + x.pow(3) * 0.044715) * math.sqrt(2 / math.pi)).tanh() + 1) * 0.5,
        "silu": lambda x, w: x * x.sigmoid(),
        "max_row": lambda x, w: x.max(dim=-1),
        "argmax_row": lambda x, w: x.argmax(dim=-1),
        "softmax_row": lambda x, w: x.softmax(dim=-1),
        "layernorm_row": layernorm,
        "rmsnorm_row": lambda x, w: x * (x.square().mean(-1, keepdim=True) + 1e-5).inv_sqrt() * w["gain"],
    }
    return table[name]


def _run(ops: list[str], shapes: list[tuple[int, int]], weights: str) -> None:
    import crypten
    import crypten.communicator as comm
    import torch
    from crypten.config import cfg

    @crypten.mpc.run_multiprocess(world_size=2)
    def party():
        cfg.communicator.verbose = True
        torch.manual_seed(0)
        rows_out = []
        for name in ops:
            for rows, cols in shapes:
                x = crypten.cryptensor(torch.randn(rows, cols))
                plain = {"mat": torch.randn(cols, cols) / cols ** 0.5, "gain": torch.ones(cols),
                         "bias": torch.zeros(cols), "table": torch.randn(cols, 16)}
                w = plain if weights == "public" else {k: crypten.cryptensor(v) for k, v in plain.items()}
                comm.get().reset_communication_stats()
                _op(name)(x, w)
                stats = comm.get().get_communication_stats()
                rows_out.append({"op": name, **({"weights": "public"} if weights == "public" else {}),
                                 "rows": rows, "cols": cols, "rank": comm.get().get_rank(),
                                 "rounds": int(stats["rounds"]), "bytes": int(stats["bytes"]),
                                 "sent_bytes": int(stats["bytes"]) // 2})
        if comm.get().get_rank() == 0:
            for row in rows_out:
                print(json.dumps(row), flush=True)

    party()


def _depth_party() -> None:
    """One CrypTen party as its own process (``depth-party`` mode), for
    ``picost/netlab/crypten_runs.py``: CrypTen's distributed communicator from the environment
    its multiprocess launcher would set (RANK, WORLD_SIZE, RENDEZVOUS, DISTRIBUTED_BACKEND=gloo),
    here with each party in its own netlab namespace. Line protocol of
    ``picost/netlab/party_runs.py``; ``send_actions`` are CrypTen's ``rounds`` counter per run."""
    import os
    import time

    import crypten
    import crypten.communicator as comm
    import torch
    from crypten.config import cfg

    out = os.fdopen(os.dup(1), "w", buffering=1)

    def say(marker: str, payload) -> None:
        out.write(f"@@{marker} {json.dumps(payload)}\n")

    try:
        request = json.loads(sys.stdin.readline())
        crypten.init()
        cfg.communicator.verbose = True
        for i, case in enumerate(request["cases"]):
            rows, cols = case["rows"], case["cols"]
            torch.manual_seed(0)
            x = crypten.cryptensor(torch.randn(rows, cols))
            plain = {"mat": torch.randn(cols, cols) / cols ** 0.5, "gain": torch.ones(cols),
                     "bias": torch.zeros(cols), "table": torch.randn(cols, 16)}
            w = {k: crypten.cryptensor(v) for k, v in plain.items()}
            fun = _op(case["op"])
            for _ in range(int(request.get("warmup", 1))):
                fun(x, w)
            say("READY", i)
            for line in sys.stdin:
                verb, *args = line.split()
                if verb == "next":
                    break
                walls, rounds, sent = [], [], []
                for _ in range(int(args[1])):
                    comm.get().barrier()
                    comm.get().reset_communication_stats()
                    start = time.perf_counter()
                    fun(x, w)
                    walls.append(round(time.perf_counter() - start, 6))
                    stats = comm.get().get_communication_stats()
                    rounds.append(int(stats["rounds"]))
                    sent.append(int(stats["bytes"]) // 2)
                say("TIMES", {"case": i, "label": args[0], "walls_s": walls, "send_actions": rounds,
                              "send_bytes": sent})
    except BaseException as exc:  # noqa: BLE001 - reported to the orchestrator
        say("FAILED", repr(exc)[-3000:])
        raise SystemExit(1)


def _shape(text: str) -> tuple[int, int]:
    rows, cols = text.lower().split("x")
    return int(rows), int(cols)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["depth-party"]:
        _depth_party()
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("ops", nargs="+")
    parser.add_argument("--shape", nargs="+", type=_shape, default=[(4, 128)])
    parser.add_argument("--weights", choices=("shared", "public"), default="shared",
                        help="server weights secret-shared (a CrypTen model) or public plain tensors")
    ns = parser.parse_args(argv)
    _run(ns.ops, ns.shape, ns.weights)


if __name__ == "__main__":
    main()

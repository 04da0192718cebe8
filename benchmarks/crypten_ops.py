"""Count CrypTen 0.4.1's per-op communication (bytes and rounds) with its own counters.

Checks the ``derived:`` formulas of ``protocols/crypten.yaml``. CrypTen is not a picost
dependency; run it from a separate virtualenv::

    bash scripts/setup-crypten.sh            # makes .venv-crypten (CrypTen 0.4.1, CPU torch, one patch)
    .venv-crypten/bin/python benchmarks/crypten_ops.py relu exp --shape 4x128

(run it from the top of the repo or anywhere outside the crypten package directory). It is
``picost/crypten_engine/runner.py ops``: the op constructions are ``picost/crypten_engine/ct_ops.py``
(``BENCH``), the same functions ``picost validate --against crypten`` runs inside whole models.
benchmarks/results/crypten_ops.jsonl was made with
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

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "picost" / "crypten_engine"))

import ct_ops  # noqa: E402
import runner  # noqa: E402


def _op_case(case: dict):
    """``run()`` of one op of :data:`ct_ops.BENCH` on a fresh ``rows x cols`` input."""
    import crypten
    import torch

    rows, cols = case["rows"], case["cols"]
    torch.manual_seed(0)
    x = crypten.cryptensor(torch.randn(rows, cols))
    plain = {"gain": torch.ones(cols), "bias": torch.zeros(cols)}
    if case["op"] == "linear":  # COLS x COLS: only where used (a vocabulary-wide one would not fit in memory)
        plain["mat"] = torch.randn(cols, cols) / cols ** 0.5
    if case["op"] == "embedding":
        plain["table"] = torch.randn(cols, case.get("width", 16))
    w = {k: crypten.cryptensor(v) for k, v in plain.items()}
    fun = ct_ops.BENCH[case["op"]]
    return lambda: fun(x, w)


def _model_case(request: dict):
    """``run()`` of one forward pass of a whole model: a request of ``runner.py model``."""
    import crypten
    import torch
    from ct_model import CtModel

    saved = torch.load(request["params_file"], weights_only=True)
    model = CtModel(request, saved["params"], saved["tables"])
    ids = torch.tensor(request["ids"])
    one_hot = crypten.cryptensor(torch.nn.functional.one_hot(ids, request["arch"]["vocab_size"]).float()[None],
                                 src=0)

    def run() -> None:
        model.measured.clear()
        model.forward(one_hot)
    return run


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
    from crypten.config import cfg

    out = os.fdopen(os.dup(1), "w", buffering=1)

    def say(marker: str, payload) -> None:
        out.write(f"@@{marker} {json.dumps(payload)}\n")

    try:
        request = json.loads(sys.stdin.readline())
        crypten.init()
        cfg.communicator.verbose = True
        for i, case in enumerate(request["cases"]):
            run_once = _model_case(case) if "arch" in case else _op_case(case)
            for _ in range(int(request.get("warmup", 1))):
                run_once()
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
                    run_once()
                    walls.append(round(time.perf_counter() - start, 6))
                    stats = comm.get().get_communication_stats()
                    rounds.append(int(stats["rounds"]))
                    sent.append(int(stats["bytes"]) // 2)
                say("TIMES", {"case": i, "label": args[0], "walls_s": walls, "send_actions": rounds,
                              "send_bytes": sent})
    except BaseException as exc:  # noqa: BLE001 - reported to the orchestrator
        say("FAILED", repr(exc)[-3000:])
        raise SystemExit(1)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["depth-party"]:
        _depth_party()
        return
    runner.ops_main(argv)


if __name__ == "__main__":
    main()

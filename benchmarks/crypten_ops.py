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

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "picost" / "crypten_engine"))

import runner  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    runner.ops_main(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()

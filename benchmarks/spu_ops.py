"""Measure per-op communication of SecretFlow SPU protocols (bytes and send actions).

This script regenerates the ``measured:`` figures of ``protocols/bumblebee.yaml`` and
``protocols/puma.yaml``. It needs SPU, which picost does not depend on; run it from a separate
virtualenv::

    bash scripts/setup-spu.sh                # makes .venv-spu (spu 0.9.5, jax 0.4.34)
    .venv-spu/bin/python benchmarks/spu_ops.py --protocol CHEETAH --op relu --shape 4x1024 16x1024

This is a thin command line over picost's one SPU harness, ``picost/spu/runner.py`` (whose
docstring has the method: a child process per measurement, one thread per party over in-memory
links, FM64 ring, 18 fractional bits, every executable run several times on the same runtime and
the last, warm run reported; bytes and send actions from every party's "Link details" profile
line). Every operand here is secret-shared, the setting of the committed figures (the harness's
default holds weights server-private and token ids client-private: ``benchmarks/spu_campaign.py``
measures those). Reference data §3 reported rank 0 only (2PC total = rank-0 sent + received, the
same number; its 3PC totals were 3 x rank-0 sent, an approximation replaced here by the sum).

Output: one JSON object per (protocol, op, shape) on stdout: ``total_bytes`` (sum of all parties'
sent bytes = all bytes on the wire), ``party_send_bytes`` (sorted), ``max_send_actions`` (the most
messages any party sent: an upper bound on sequential rounds), the input ``elements`` (``rows`` x
``cols``; W is ``cols`` x ``out_cols`` for matmuls) and the wall time of the warm run in seconds
(``warm_s``, not a meaningful latency: all parties share one machine). CHEETAH matmuls add
``he_log``: SPU's own log lines of its HE dot (polynomial degree and moduli; per product the block
partition and the MiB of query and response ciphertexts).

The committed results (``benchmarks/results/spu_*.jsonl``; about 15 minutes on 2 cores) come from::

    P="benchmarks/spu_ops.py --protocol CHEETAH ABY3"
    python $P --op less equal relu gelu gelu_tanh silu exp reciprocal rsqrt tanh mul scale add puma_gelu \
        --shape 4x1024 16x1024 > benchmarks/results/spu_elementwise.jsonl
    python $P --op max_row argmax_row softmax_row puma_softmax_row --shape 32x128 128x128 32x256 \
        > benchmarks/results/spu_rows.jsonl
    python $P --op layernorm_row rmsnorm_row --shape 32x768 128x768 32x384 >> benchmarks/results/spu_rows.jsonl
    python benchmarks/spu_ops.py --protocol CHEETAH --op puma_softmax_row layernorm_row --shape 16x512 16x1024 \
        >> benchmarks/results/spu_rows.jsonl
    python $P --op matmul_sxs --shape 128x768x768 32x768x768 32x768x3072 32x3072x768 128x64x128 128x128x64 \
        > benchmarks/results/spu_matmul.jsonl
    python $P --op bmatmul4_sxs --shape 128x64x128 128x128x64 >> benchmarks/results/spu_matmul.jsonl
    python $P --op embedding --shape 16x1024x64 64x1024x64 16x2048x64 16x1024x256 \
        > benchmarks/results/spu_embedding.jsonl

CHEETAH figures vary by a few hundred bytes between runs (ciphertext serialization); ABY3's are exact.
The committed figures were measured with two runs per executable (the warm second reported); the
harness now runs CHEETAH executables three times, because at small sizes (about a thousand
elements) CHEETAH's second run can still pay a lazy OT bootstrap (see runner.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "picost" / "spu"))
import runner  # noqa: E402  (the SPU harness, a sibling script, not the picost package)

PROTOCOLS = runner.PROTOCOLS
BATCH = 4  # products in bmatmul4_sxs

#: op name -> what it computes. Shapes are ROWSxCOLS of the (first) input.
OPS = {
    "less": "x < 0.5",
    "equal": "x == 0.5 (secret vs public: one entry of a one-hot encoding)",
    "relu": "jax.nn.relu(x)",
    "gelu": "jax.nn.gelu(x, approximate=False) (erf form)",
    "gelu_tanh": "jax.nn.gelu(x, approximate=True)",
    "silu": "jax.nn.silu(x)",
    "exp": "jnp.exp(x)",
    "negexp": "jnp.exp(-abs(x))",
    "reciprocal": "1 / (abs(x) + 1)",
    "rsqrt": "lax.rsqrt(abs(x) + 1)",
    "tanh": "jnp.tanh(x)",
    "mul": "x * y (secret x secret, incl. truncation)",
    "scale": "x * 0.125 (public fixed-point constant, i.e. one truncation)",
    "add": "x + y (both secret)",
    "max_row": "jnp.max(x, -1)",
    "argmax_row": "jnp.argmax(x, -1)",
    "softmax_row": "jax.nn.softmax(x, -1)",
    "layernorm_row": "(x - mean) * rsqrt(var + 1e-5) * gamma + beta over the last axis (gamma, beta secret)",
    "rmsnorm_row": "x * rsqrt(mean(x^2) + 1e-5) * gamma over the last axis (gamma secret)",
    "puma_gelu": "PUMA's GeLU (PUMA §4.2 eq. 2-3): piecewise 0 / degree-3 / degree-6 polynomial / x",
    "puma_softmax_row": "PUMA's softmax (PUMA §4.3 Alg. 2): clipped (1 + x/2^5)^(2^5) exp of x - max, one reciprocal per row",
    "embedding": "one_hot(ids, COLS) @ table: ROWS secret int token ids, a secret COLSxOUT table (PUMA §4.4)",
    "matmul_sxs": "x @ W, x ROWSxCOLS and W COLSxOUT both secret",
    "bmatmul4_sxs": "4 independent products at once (jnp.matmul of 4xROWSxCOLS and 4xCOLSxOUT, both secret: attention heads)",
}

_ELEMENTWISE = {"less": "less", "equal": "equal", "relu": "relu", "gelu": "gelu", "gelu_tanh": "gelu_tanh",
                "silu": "silu", "exp": "exp", "negexp": "negexp", "reciprocal": "reciprocal", "rsqrt": "rsqrt",
                "tanh": "tanh", "mul": "mul", "scale": "scale", "add": "add", "puma_gelu": "gelu"}
_ROWWISE = {"max_row": "max", "argmax_row": "argmax", "softmax_row": "softmax", "puma_softmax_row": "softmax",
            "layernorm_row": "layernorm", "rmsnorm_row": "rmsnorm"}


def measurement(protocol: str, op: str, rows: int, cols: int, out_cols: int) -> dict:
    """The harness's measurement for an op of this script (every operand secret-shared)."""
    m = {"protocol": protocol, "weights": "shared", "input": "shared"}
    if op in _ELEMENTWISE:
        m.update(kind=_ELEMENTWISE[op], dims={"n": rows * cols})
        if op == "puma_gelu":
            m["construction"] = "puma"
    elif op in _ROWWISE:
        m.update(kind=_ROWWISE[op], dims={"rows": rows, "cols": cols})
        if op.startswith("puma_"):
            m["construction"] = "puma"
    elif op == "embedding":
        m.update(kind="embedding", dims={"tokens": rows, "vocab": cols, "width": out_cols})
    elif op == "matmul_sxs":
        m.update(kind="linear", dims={"m": rows, "k": cols, "n": out_cols})
    elif op == "bmatmul4_sxs":
        m.update(kind="matmul", dims={"b": BATCH, "m": rows, "k": cols, "n": out_cols})
    else:
        raise ValueError(f"unknown op {op!r}")
    return m


def measure(protocol: str, op: str, rows: int, cols: int, out_cols: int) -> dict:
    """One measurement, in this script's output format."""
    r = runner.measure(measurement(protocol, op, rows, cols, out_cols), timeout=1800)
    result = {"protocol": protocol, "op": op, "rows": rows, "cols": cols, "out_cols": out_cols,
              "elements": rows * cols, "total_bytes": r["total_bytes"], "party_send_bytes": r["party_send_bytes"],
              "max_send_actions": r["max_send_actions"], "warm_s": r["warm_s"]}
    if "he_log" in r:
        result["he_log"] = r["he_log"]
    return result


def _shape(text: str) -> tuple[int, int, int]:
    dims = [int(d) for d in text.lower().split("x")]
    if len(dims) not in (2, 3):
        raise argparse.ArgumentTypeError(f"shape '{text}' must be ROWSxCOLS or ROWSxCOLSxOUT")
    return dims[0], dims[1], dims[-1] if len(dims) == 3 else dims[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--protocol", nargs="+", choices=sorted(PROTOCOLS), default=["CHEETAH"])
    parser.add_argument("--op", nargs="+", choices=sorted(OPS), required=True)
    parser.add_argument("--shape", nargs="+", type=_shape, default=[(16, 1024)],
                        help="ROWSxCOLS of the input, e.g. 16x1024 (row ops reduce over COLS); "
                             "ROWSxCOLSxOUT for matmul_sxs (W is COLSxOUT)")
    ns = parser.parse_args(argv)
    for protocol in ns.protocol:
        for op in ns.op:
            for rows, cols, out_cols in ns.shape:
                print(json.dumps(measure(protocol, op, rows, cols, out_cols)), flush=True)


if __name__ == "__main__":
    main()

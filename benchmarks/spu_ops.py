"""Measure per-op communication of SecretFlow SPU protocols (bytes and send actions).

This script regenerates the ``measured:`` figures of ``protocols/bumblebee.yaml`` and
``protocols/puma.yaml``. It needs SPU, which picost does not depend on; run it from a separate
virtualenv::

    bash scripts/setup-spu.sh                # makes .venv-spu (spu 0.9.5, jax 0.4.34)
    .venv-spu/bin/python benchmarks/spu_ops.py --protocol CHEETAH --op relu --shape 4x1024 16x1024

Method (as in §3 of the reference data): each op is a JAX function compiled by SPU and run in an
in-process simulation (one thread per party, in-memory links, FM64 ring, 18 fractional bits,
inputs ~ N(0, 1)). Every executable runs twice on the same runtime; the second (warm) run is
reported so that one-time OT / HE setup is excluded. Bytes and send actions come from every
party's "Link details" line of ``enable_pphlo_profile`` (C++ log, parsed from a child process's
output). Reference data §3 reported rank 0 only (2PC total = rank-0 sent + received, the same
number; its 3PC totals were 3 x rank-0 sent, an approximation this script replaces by the sum).

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
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys

PROTOCOLS = {"SEMI2K": 2, "CHEETAH": 2, "ABY3": 3}
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
    "mul": "x * reverse(x) (secret x secret, incl. truncation)",
    "scale": "x * 0.125 (public fixed-point constant, i.e. one truncation)",
    "add": "x + reverse(x)",
    "max_row": "jnp.max(x, -1)",
    "argmax_row": "jnp.argmax(x, -1)",
    "softmax_row": "jax.nn.softmax(x, -1)",
    "layernorm_row": "(x - mean) * rsqrt(var + 1e-5) * gamma + beta over the last axis (gamma, beta secret)",
    "rmsnorm_row": "x * rsqrt(mean(x^2) + 1e-5) * gamma over the last axis (gamma secret)",
    "puma_gelu": "PUMA's GeLU (PUMA §4.2 eq. 2-3): piecewise 0 / degree-3 / degree-6 polynomial / x",
    "puma_softmax_row": "PUMA's softmax (PUMA §4.3 Alg. 2): clipped (1 + x/2^5)^(2^5) exp of x - max, one reciprocal per row",
    "embedding": "one_hot(ids, COLS) @ table: ROWS secret int token ids, a secret COLSxOUT table (PUMA §4.4)",
    "matmul_sxs": "x @ W, x ROWSxCOLS and W COLSxOUT both secret (SPU 0.9.5's CHEETAH I/O has no private type)",
    "bmatmul4_sxs": "4 independent products at once (jnp.matmul of 4xROWSxCOLS and 4xCOLSxOUT, both secret: attention heads)",
}

_LINK = re.compile(r"Link details: total send bytes (\d+), recv bytes (\d+), "
                   r"send actions (\d+), recv actions (\d+)")
_HE_LOG = re.compile(r"\[cheetah_dot\.cc:\d+\] (.*)")
_DONE = re.compile(r"SPU execution \S+ completed, .*?execution took ([0-9.e-]+)s")


def _op_function(op: str, cols: int, out_cols: int):
    """The JAX function for ``op`` and the list of (extra) input shapes it takes after x."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    def layernorm(x, g, b):
        mu = jnp.mean(x, -1, keepdims=True)
        var = jnp.mean((x - mu) ** 2, -1, keepdims=True)
        return (x - mu) * lax.rsqrt(var + 1e-5) * g + b

    def puma_gelu(x):
        x2 = x * x
        x3, x4 = x2 * x, x2 * x2
        x6 = x3 * x3
        f0 = -0.011034134030615728 * x3 - 0.11807612951181953 * x2 - 0.42226581151983866 * x - 0.5054031199708174
        f1 = (0.0018067462606141187 * x6 - 0.037688200365904236 * x4 + 0.3603292692789629 * x2 + 0.5 * x
              + 0.008526321541038084)
        b0, b1, b2 = x < -4, x < -1.95, x > 3
        z0 = jnp.logical_and(jnp.logical_not(b0), b1)
        z1 = jnp.logical_and(jnp.logical_not(b1), jnp.logical_not(b2))
        return jnp.where(z0, f0, 0) + jnp.where(z1, f1, 0) + jnp.where(b2, x, 0)

    def puma_softmax(x):
        d = x - jnp.max(x, -1, keepdims=True) - 1e-6
        e = 1 + d / 32
        for _ in range(5):
            e = e * e
        e = jnp.where(d > -14, e, 0)
        return e * (1 / jnp.sum(e, -1, keepdims=True))

    def rmsnorm(x, g):
        return x * lax.rsqrt(jnp.mean(x * x, -1, keepdims=True) + 1e-5) * g

    table = {
        "less": (lambda x: x < 0.5, []),
        "equal": (lambda x: x == 0.5, []),
        "relu": (jax.nn.relu, []),
        "gelu": (lambda x: jax.nn.gelu(x, approximate=False), []),
        "gelu_tanh": (lambda x: jax.nn.gelu(x, approximate=True), []),
        "silu": (jax.nn.silu, []),
        "exp": (jnp.exp, []),
        "negexp": (lambda x: jnp.exp(-jnp.abs(x)), []),
        "reciprocal": (lambda x: 1 / (jnp.abs(x) + 1), []),
        "rsqrt": (lambda x: lax.rsqrt(jnp.abs(x) + 1), []),
        "tanh": (jnp.tanh, []),
        "mul": (lambda x: x * lax.rev(x, (x.ndim - 1,)), []),
        "scale": (lambda x: x * 0.125, []),
        "add": (lambda x: x + lax.rev(x, (x.ndim - 1,)), []),
        "max_row": (lambda x: jnp.max(x, -1), []),
        "argmax_row": (lambda x: jnp.argmax(x, -1), []),
        "softmax_row": (lambda x: jax.nn.softmax(x, -1), []),
        "layernorm_row": (layernorm, [(cols,), (cols,)]),
        "rmsnorm_row": (rmsnorm, [(cols,)]),
        "puma_gelu": (puma_gelu, []),
        "puma_softmax_row": (puma_softmax, []),
        "embedding": (lambda ids, table: (ids[:, None] == jnp.arange(cols)[None, :]).astype(table.dtype) @ table,
                      [(cols, out_cols)]),
        "matmul_sxs": (lambda x, w: x @ w, [(cols, out_cols)]),
        "bmatmul4_sxs": (jnp.matmul, [(BATCH, cols, out_cols)]),
    }
    return table[op]


def _child(protocol: str, op: str, rows: int, cols: int, out_cols: int) -> None:
    """Compile and run ``op`` twice in one SPU runtime per party; mark the warm run on stdout."""
    import threading

    import numpy as np
    import spu.api as api
    import spu.libspu as libspu
    import spu.utils.frontend as fe

    nparties = PROTOCOLS[protocol]
    cfg = libspu.RuntimeConfig(protocol=getattr(libspu.ProtocolKind, protocol),
                               field=libspu.FieldType.FM64)
    cfg.fxp_fraction_bits = 18
    cfg.enable_pphlo_profile = True

    fun, extra_shapes = _op_function(op, cols, out_cols)
    rng = np.random.default_rng(0)
    if op == "embedding":  # token ids, not activations
        args = [rng.integers(0, cols, size=(rows,)).astype(np.int32)]
    elif op == "bmatmul4_sxs":
        args = [rng.standard_normal((BATCH, rows, cols)).astype(np.float32)]
    else:
        args = [rng.standard_normal((rows, cols)).astype(np.float32)]
    args += [rng.standard_normal(s).astype(np.float32) for s in extra_shapes]
    names = [f"in{i}" for i in range(len(args))]
    vis = [libspu.Visibility.VIS_SECRET] * len(args)
    owners = [-1] * len(args)
    exe, _ = fe.compile(fe.Kind.JAX, fun, tuple(args), {}, names, vis, lambda out: ["out0"])
    io = api.Io(nparties, cfg)
    shares = [io.make_shares(a, v, o) for a, v, o in zip(args, vis, owners)]

    desc = libspu.link.Desc()
    desc.recv_timeout_ms = 3600 * 1000  # large HE matmuls take minutes on 2 cores
    for rank in range(nparties):
        desc.add_party(f"id_{rank}", f"thread_{rank}")
    errors: list[BaseException] = []

    def party(rank: int) -> None:
        try:
            link = libspu.link.create_mem(desc, rank)
            runtime = api.Runtime(link, libspu.RuntimeConfig(cfg))
            for run in range(2):
                for name, share in zip(names, shares):
                    runtime.set_var(name, share[rank])
                link.barrier()  # every party has logged the previous run
                if rank == 0:
                    print(f"@@RUN {run}", flush=True)
                link.barrier()
                runtime.run(exe)
            link.barrier()
        except BaseException as exc:  # reported by the parent
            errors.append(exc)

    threads = [threading.Thread(target=party, args=(r,)) for r in range(nparties)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def measure(protocol: str, op: str, rows: int, cols: int, out_cols: int) -> dict:
    """Run one measurement in a child process and parse every party's warm-run link details."""
    proc = subprocess.run(
        [sys.executable, __file__, "--child", protocol, op, str(rows), str(cols), str(out_cols)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=1800)
    text = proc.stdout
    if proc.returncode != 0:
        raise RuntimeError(f"{protocol} {op} {rows}x{cols} failed:\n{text[-2000:]}")
    warm = text.split("@@RUN 1", 1)[1]
    links = [tuple(int(g) for g in m.groups()) for m in _LINK.finditer(warm)]
    times = [float(m.group(1)) for m in _DONE.finditer(warm)]
    if len(links) != PROTOCOLS[protocol] or not times:
        raise RuntimeError(f"expected one profile per party from {protocol} {op}:\n{text[-2000:]}")
    sends = sorted(link[0] for link in links)
    result = {"protocol": protocol, "op": op, "rows": rows, "cols": cols, "out_cols": out_cols,
              "elements": rows * cols, "total_bytes": sum(sends), "party_send_bytes": sends,
              "max_send_actions": max(link[2] for link in links), "warm_s": max(times)}
    he_log = [m.group(1).strip() for m in _HE_LOG.finditer(text)]
    if he_log:  # CHEETAH's HE matmul logs its parameters (cold run) and partition/sizes per dot
        result["he_log"] = sorted(set(he_log[:1] + [line for line in _HE_LOG.findall(warm)]))
    return result


def _shape(text: str) -> tuple[int, int, int]:
    dims = [int(d) for d in text.lower().split("x")]
    if len(dims) not in (2, 3):
        raise argparse.ArgumentTypeError(f"shape '{text}' must be ROWSxCOLS or ROWSxCOLSxOUT")
    return dims[0], dims[1], dims[-1] if len(dims) == 3 else dims[1]


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        _, protocol, op, rows, cols, out_cols = argv
        _child(protocol, op, int(rows), int(cols), int(out_cols))
        return
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

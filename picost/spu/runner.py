"""Run JAX ops and whole models in SecretFlow SPU 0.9.5 and report their communication.

The one SPU harness of picost. It runs inside the SPU virtualenv (``bash scripts/setup-spu.sh``
makes ``.venv-spu``: spu 0.9.5, jax 0.4.34) and imports nothing but jax, numpy, spu, the standard
library and its siblings ``jax_ops.py`` / ``jax_model.py`` (by path), never picost::

    .venv-spu/bin/python picost/spu/runner.py ops   < measurements.json   # one JSON line each
    .venv-spu/bin/python picost/spu/runner.py model < model.json          # one JSON object

``ops`` reads a JSON list of measurements ``{"protocol", "kind", "dims", "construction",
"weights", "input", ...}`` (the options of :func:`jax_ops.build`); ``model`` reads ``{"protocol",
"spec" (picost ModelSpec.model_dump()), "context", "weights", "input", "gelu", "softmax", "mask",
"ops" (optional: picost's lowered ops, measured one by one), "whole" (default true)}``.

Method
------
Each measurement is one SPU executable compiled from its JAX function, run in a child process
(CHEETAH: one child each; SEMI2K and ABY3 may share one child, each on fresh runtimes and links,
see :func:`measure_batch`) as an in-process simulation: one thread per party, in-memory links, FM64 ring,
18 fractional bits, ``enable_pphlo_profile``. The executable runs ``runs`` times on the same
runtimes (default 2; 4 under CHEETAH, see below) and a warm run (not the first) is reported, so
one-time OT and HE setup are excluded. Bytes and send actions come from every party's ``Link details`` line of
the profile (the C++ log, read from the child's output): ``total_bytes`` is the sum of all
parties' sent bytes (all bytes on the wire), ``party_send_bytes`` lists them by rank (rank 0 =
client, rank 1 = server, rank 2 = ABY3's third party), ``max_send_actions`` is the most messages
any party sent (an upper bound on sequential rounds), ``warm_s`` the wall time of the reported run
(all parties share this machine's cores: not a deployment latency). ``runs_total_bytes`` keeps
every run's total, ``reported_run`` says which was reported. ``party_send_bytes_by_rank`` is
given when the log shows which party sent what (see :func:`_by_rank`). CHEETAH matmuls add ``he_log``: SPU's own log of its HE dot (parameters; per
product the partition and the MiB of query and response ciphertexts).

Who holds what (``weights`` / ``input``)
----------------------------------------
SPU 0.9.5's Python I/O has no private visibility of its own (``Io.make_shares(x, VIS_PRIVATE)``
raises "unsupported vis type V"): a *private* input is ``VIS_SECRET`` with an ``owner_rank``, made
with ``RuntimeConfig.experimental_enable_colocated_optimization = True`` (without the flag the
owner is dropped and the value is secret-shared). The owner then holds the plaintext and the
others a constant (``Priv2kTy``); kernels dispatch on it at run time (the compiled program still
says "secret"). Mapping:

* activations: ``VIS_SECRET`` (secret-shared);
* weights ``server-private`` (default): private to rank 1, colocated optimization on;
  ``shared``: secret-shared; ``public``: ``VIS_PUBLIC``;
* input ``client-private`` (default): token ids private to rank 0; ``shared``: secret-shared ids;
  ``client-embedded``: the client's embedded vectors, private to rank 0.

What SPU 0.9.5 does with a private operand (measured; ``benchmarks/results/spu/*.jsonl`` has the
series, ``x @ W`` of 16x64 by 64x64 / 64x64 by 64x64 here, all parties' bytes of the warm run):

* CHEETAH has private kernels: ``mmul_av`` (MatMulAV) computes a secret x private dot with ONE
  homomorphic cross product (the owner's plaintext W times the other party's encrypted share)
  instead of the two of a secret x secret dot: 64x64x64 452 KB vs 891 KB (x 0.51), 16x256x64
  442 KB vs 882 KB. ``mul_av`` (MulAV) does the same for an elementwise product (one OLE).
  A private(rank 0) x private(rank 1) dot uses MatMulVVS (one HE product), e.g. the embedding's
  one_hot(client ids) @ server table. Public W: only the truncation (3.125 B per output).
* SEMI2K has no private kernels: a private operand becomes a share for free (the owner's value
  and zeros, v2s costs nothing) and the product is the ordinary Beaver product -- server-private
  costs exactly what shared costs (16x64x64: 90,112 B both; public W: 8,192 B = the truncation).
* ABY3 pays to convert: private -> secret (v2s) costs the owner 16 B per element (two ring
  elements sent), then the ordinary replicated product: 16x64x64 118,784 B with a private W vs
  53,248 B shared (+65,536 = 16 B x 4096 weight elements) and 5 send actions instead of 3. A
  private operand broadcast before use (a gain vector, a bias) is converted after broadcasting.

Which run is reported: CHEETAH's runs differ
----------------------------------------------
SEMI2K and ABY3 cost the same bytes on every run after the first. CHEETAH does not: its silent
OT (YACL ferret, one instance per OT thread, set up lazily) starts from a small pool (470,016
correlated OTs) and refills a 10,485,760-OT pool by a "bootstrap" whenever an instance runs dry.
A bootstrap costs about 1.1 MB (and ~1,280 send actions; the first small-pool setup ~270 KB),
and lands on whichever run drains the pool: e.g. RMSNorm over 16 x 64 (public gain) costs
93,856 B on runs 3 and 5 and 1,237,xxx B on runs 2, 4, 6; a 16 x 64 truncation 3,200 B, but
269,459 B on run 2; a secret product of 1,024 elements 35,968 B, but 1,179,991 B on run 5. Runs
therefore default to 4 under CHEETAH (2 otherwise) and the reported run is the *cheapest warm run*
(any run but the first; for SEMI2K/ABY3 they are all equal): the op's own traffic without a
pool refill. Refills amortize to about 1.1 MB per 10 M OTs consumed, small against per-use
traffic in a large model but several MB in a small whole-model run (which runs as often and
reports the same way). ``runs_total_bytes`` keeps every run, ``mean_warm_bytes`` is their mean
over the warm runs (an estimate of the amortized cost; noisy with few runs).

The cheapest warm run UNDERSTATES CHEETAH's small secret products. ``MulAA`` (secret x secret,
elementwise) takes Beaver triples from a cache when the product has fewer than 2 x the OLE batch
elements (8,192 here) and opens x - a, y - b: 35.1 B per element (2 x 2 x 8 B + the 3.125 B
truncation); the cache is refilled by HE (an OLE batch of random products) when it runs dry,
~1.2 MB per refill of a few thousand triples, i.e. ~300 B per triple, on whichever run drains it
(mul over 1,024 elements: 35,968 B on most runs, 302,227 or 1.2 MB on others). From 8,192
elements on, the product is computed directly by HE (2.58 MB at 8,192, 3.63 MB at 16,384: every
run pays it). A model's many small products drain the cache steadily, so a whole-model run pays
the refills that a single op's cheapest run does not; use ``mean_warm_bytes`` over many runs (or
the direct HE cost per element) for the amortized cost of small products.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

PROTOCOLS = {"SEMI2K": 2, "CHEETAH": 2, "ABY3": 3}
CLIENT, SERVER = 0, 1
FXP_BITS = 18
DEFAULT_RUNS = {"CHEETAH": 4}
CHILD_TIMEOUT_S = 3600

_LINK = re.compile(r"Link details: total send bytes (\d+), recv bytes (\d+), "
                   r"send actions (\d+), recv actions (\d+)")
_HE_LOG = re.compile(r"\[cheetah_dot\.cc:\d+\] (.*)")
_DONE = re.compile(r"SPU execution \S+ completed, .*?execution took ([0-9.e-]+)s")
_RESULT = re.compile(r"^@@RESULT (.*)$", re.M)
_WALL = re.compile(r"^@@WALL (\d+) ([0-9.e-]+)$", re.M)

#: keys of an ``ops`` measurement and their defaults
MEASUREMENT_DEFAULTS = {"construction": None, "weights": "server-private", "input": "client-private",
                        "operands": None, "causal": False, "mask": "where", "bias": False,
                        "rotated": None, "roles": None, "seed": 0, "runs": None}


# ---------------------------------------------------------------------------------------------
# Inside the child: one SPU executable, run `runs` times on one runtime per party
# ---------------------------------------------------------------------------------------------

def _visibility(role: str, weights: str, input: str) -> tuple[str, int]:
    """(visibility, owner rank) of an operand with ``role``."""
    if role == "activation":
        return "secret", -1
    if role == "weight":
        return {"server-private": ("secret", SERVER), "shared": ("secret", -1),
                "public": ("public", -1)}[weights]
    if role == "ids":
        return {"client-private": ("secret", CLIENT), "shared": ("secret", -1),
                "client-embedded": ("secret", CLIENT)}[input]
    if role == "embedded":
        return "secret", CLIENT
    raise ValueError(f"unknown role {role!r}")


_LINK_IDS: list[int] = []


@dataclass
class Prepared:
    """One compiled SPU executable and every party's shares of its inputs."""

    cfg: Any
    exe: Any
    io: Any
    shares: list
    names: list[str]
    out_names: list[str]


def prepare(protocol: str, fun, args: list, roles: list[str], weights: str, input: str) -> Prepared:
    """Compile ``fun`` for SPU (FM64, :data:`FXP_BITS`, profiling on) and share its inputs by
    their roles (see the module doc); shared by the in-process runs here and ``multiproc.py``."""
    import numpy as np
    import spu.api as api
    import spu.libspu as libspu
    import spu.utils.frontend as fe

    nparties = PROTOCOLS[protocol]
    cfg = libspu.RuntimeConfig(protocol=getattr(libspu.ProtocolKind, protocol), field=libspu.FieldType.FM64)
    cfg.fxp_fraction_bits = FXP_BITS
    cfg.enable_pphlo_profile = True
    vis_owner = [_visibility(r, weights, input) for r in roles]
    cfg.experimental_enable_colocated_optimization = any(o >= 0 for _, o in vis_owner)
    vis = [libspu.Visibility.VIS_PUBLIC if v == "public" else libspu.Visibility.VIS_SECRET
           for v, _ in vis_owner]
    names = [f"in{i}" for i in range(len(args))]
    out_names: list[str] = []

    def name_outputs(flat: list) -> list[str]:
        out_names.extend(f"out{i}" for i in range(len(flat)))
        return list(out_names)

    exe, _ = fe.compile(fe.Kind.JAX, fun, tuple(args), {}, names, vis, name_outputs)
    io = api.Io(nparties, cfg)
    shares = [io.make_shares(np.asarray(a), v, o) for a, v, (_, o) in zip(args, vis, vis_owner)]
    return Prepared(cfg, exe, io, shares, names, out_names)


def _run_in_spu(protocol: str, fun, args: list, roles: list[str], weights: str, input: str,
                runs: int, want_output: bool = False) -> list | None:
    """Compile ``fun`` for SPU, run it ``runs`` times (markers ``@@RUN i`` on stdout) and return
    the reconstructed outputs of the last run if ``want_output``."""
    import threading

    import spu.api as api
    import spu.libspu as libspu

    nparties = PROTOCOLS[protocol]
    prep = prepare(protocol, fun, args, roles, weights, input)
    cfg, exe, io, shares, names, out_names = (prep.cfg, prep.exe, prep.io, prep.shares, prep.names,
                                              prep.out_names)

    desc = libspu.link.Desc()
    _LINK_IDS.append(len(_LINK_IDS))
    desc.id = f"picost-spu-{_LINK_IDS[-1]}"  # fresh links for every executable of a batch
    desc.recv_timeout_ms = CHILD_TIMEOUT_S * 1000  # large HE matmuls take minutes on 2 cores
    for rank in range(nparties):
        desc.add_party(f"id_{rank}", f"thread_{rank}")
    errors: list[BaseException] = []
    outputs: dict[int, list] = {}

    def party(rank: int) -> None:
        try:
            link = libspu.link.create_mem(desc, rank)
            runtime = api.Runtime(link, libspu.RuntimeConfig(cfg))
            for run in range(runs):
                for name, share in zip(names, shares):
                    runtime.set_var(name, share[rank])
                link.barrier()  # every party has logged the previous run
                if rank == 0:
                    print(f"@@RUN {run}", flush=True)
                link.barrier()
                start = time.perf_counter()
                runtime.run(exe)
                print(f"@@WALL {rank} {time.perf_counter() - start:.6f}", flush=True)
            if want_output:
                outputs[rank] = [runtime.get_var(n) for n in out_names]
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
    if not want_output:
        return None
    return [io.reconstruct([outputs[r][i] for r in range(nparties)]) for i in range(len(out_names))]


def _child_ops(ms: list[dict]) -> None:
    """Several measurements in one process, one after another, each ``@@CASE i``-marked and run
    on fresh runtimes and links (saves the interpreter start and imports per measurement)."""
    for i, m in enumerate(ms):
        print(f"@@CASE {i}", flush=True)
        try:
            _child_op(m)
        except Exception as exc:  # noqa: BLE001 - reported per case
            print(f"@@FAILED {json.dumps(repr(exc)[-1500:])}", flush=True)


def build_case(m: dict):
    """The :class:`jax_ops.OpCase` of measurement ``m`` and its options with defaults filled in."""
    import jax_ops

    opts = {**MEASUREMENT_DEFAULTS, **m}
    case = jax_ops.build(m["kind"], m["dims"], construction=opts["construction"], weights=opts["weights"],
                         input=opts["input"], operands=opts["operands"], causal=opts["causal"],
                         mask=opts["mask"], bias=opts["bias"], rotated=opts["rotated"], seed=opts["seed"])
    if opts.get("roles"):  # e.g. the position add of a client-embedded model: ["embedded", "weight"]
        if len(opts["roles"]) != len(case.roles):
            raise ValueError(f"roles {opts['roles']} do not match the operands {case.roles}")
        case.roles = list(opts["roles"])
    return case, opts


def _child_op(m: dict) -> None:
    case, opts = build_case(m)
    print(f"@@RESULT {json.dumps({'describe': case.describe, 'roles': case.roles})}", flush=True)
    _run_in_spu(m["protocol"], case.fun, case.args, case.roles, opts["weights"], opts["input"],
                _runs(m["protocol"], opts["runs"]))


def build_model(m: dict):
    """The :class:`jax_model` model of a ``model`` request ``m`` (spec, context and options)."""
    import jax_model

    return jax_model.build(m["spec"], context=m.get("context"), input=m.get("input", "client-private"),
                           gelu=m.get("gelu"), softmax=m.get("softmax", "stock"),
                           mask=m.get("mask", "where"), seed=m.get("seed", 0))


def _child_model(m: dict) -> None:
    import jax
    import numpy as np

    import jax_model

    model = build_model(m)
    roles = model.roles
    with jax.default_device(jax.devices("cpu")[0]):
        expected = [np.asarray(o) for o in jax.tree_util.tree_leaves(jax.jit(model.fun)(*model.args))]
    got = _run_in_spu(m["protocol"], model.fun, model.args, roles, m.get("weights", "server-private"),
                      m.get("input", "client-private"), _runs(m["protocol"], m.get("runs")), want_output=True)
    logits, want = np.asarray(got[0], dtype=np.float64), expected[0].astype(np.float64)
    result = {"logits_shape": list(want.shape), "logits_max_abs_error": float(np.max(np.abs(logits - want))),
              "logits_max_abs": float(np.max(np.abs(want))), "inputs": len(model.args),
              "weight_elements": int(sum(a.size for a, r in zip(model.args, roles) if r == "weight"))}
    if (m.get("gelu") or "").startswith("puma") or m.get("softmax") == "puma":
        exact = jax_model.build(m["spec"], context=m.get("context"), input=m.get("input", "client-private"),
                                mask=m.get("mask", "where"), seed=m.get("seed", 0))
        with jax.default_device(jax.devices("cpu")[0]):
            stock = np.asarray(jax.tree_util.tree_leaves(jax.jit(exact.fun)(*exact.args))[0], dtype=np.float64)
        result["logits_max_abs_error_vs_stock"] = float(np.max(np.abs(logits - stock)))
    if len(got) > 1:  # the argmax
        result["next_token"] = np.asarray(got[1]).tolist()
        result["next_token_plaintext"] = expected[1].tolist()
        result["next_token_matches"] = bool(np.array_equal(np.asarray(got[1]), expected[1]))
    print(f"@@RESULT {json.dumps(result)}", flush=True)


def _runs(protocol: str, runs: int | None) -> int:
    return int(runs) if runs else DEFAULT_RUNS.get(protocol, 2)


# ---------------------------------------------------------------------------------------------
# In the parent: child processes, their logs parsed
# ---------------------------------------------------------------------------------------------

def _spawn(mode: str, request: dict, timeout: float) -> str:
    if request.get("protocol") not in PROTOCOLS:
        raise ValueError(f"unknown protocol {request.get('protocol')!r}: {sorted(PROTOCOLS)}")
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", mode],
                          input=json.dumps(request), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"SPU {mode} run failed ({_label(request)}):\n{proc.stdout[-3000:]}")
    return proc.stdout


def _label(m: dict) -> str:
    if "kind" in m:
        return f"{m['protocol']} {m['kind']} {m.get('dims')}"
    return f"{m['protocol']} model {m.get('spec', {}).get('name')}"


def parse_log(text: str, nparties: int) -> dict[str, Any]:
    """Bytes, actions and time of the reported run in a child's output (see the module doc): the
    warm run (any run but the first) with the fewest bytes, the last of equals."""
    parts = text.split("@@RUN ")[1:]
    if not parts:
        raise RuntimeError(f"no run markers in the SPU output:\n{text[-2000:]}")
    per_run = []
    for part in parts:
        links = [tuple(int(g) for g in mt.groups()) for mt in _LINK.finditer(part)]
        if len(links) != nparties:
            raise RuntimeError(f"expected one profile per party, got {len(links)}:\n{text[-2000:]}")
        per_run.append(links)
    totals = [sum(link[0] for link in run) for run in per_run]
    warm = range(1, len(parts)) if len(parts) > 1 else range(len(parts))
    chosen = min(warm, key=lambda i: (totals[i], -i))
    part, links = parts[chosen], per_run[chosen]
    times = [float(t) for t in _DONE.findall(part)]
    walls = [float(w) for _, w in _WALL.findall(part)]
    out: dict[str, Any] = {
        "total_bytes": totals[chosen],
        "party_send_bytes": sorted(link[0] for link in links),
        "max_send_actions": max(link[2] for link in links),
        "warm_s": max(times) if times else max(walls),
        "reported_run": chosen,
        "mean_warm_bytes": round(sum(totals[i] for i in warm) / len(warm), 1),
        "runs_total_bytes": totals,
        "runs_max_send_actions": [max(link[2] for link in run) for run in per_run],
    }
    by_rank = _by_rank(part, nparties)
    if by_rank is not None:
        out["party_send_bytes_by_rank"] = by_rank
    he_log = [line.strip() for line in _HE_LOG.findall(text)]
    if he_log:  # CHEETAH's HE dot: parameters (logged once, cold run) + partition/sizes per dot
        out["he_log"] = sorted(set(he_log[:1] + [line.strip() for line in _HE_LOG.findall(part)]))
    return out


def _by_rank(run_text: str, nparties: int) -> list[int] | None:
    """Each rank's sent bytes, when the log shows it. SPU's ``Link details`` line does not name
    its party; each party's thread prints ``@@WALL rank`` right after its run returns, so when
    every Link line is directly followed by a WALL line, that line names its rank (a WALL's own
    Link line precedes it). Interleaved output (parties finishing together) gives None."""
    events = [(mt.start(), "link", int(mt.group(1))) for mt in _LINK.finditer(run_text)]
    events += [(mt.start(), "wall", int(mt.group(1))) for mt in _WALL.finditer(run_text)]
    events.sort()
    kinds = [e[1] for e in events]
    if kinds != ["link", "wall"] * nparties:
        return None
    sent = {events[i + 1][2]: events[i][2] for i in range(0, len(events), 2)}
    return [sent[r] for r in range(nparties)] if sorted(sent) == list(range(nparties)) else None


def measure(m: dict, timeout: float = CHILD_TIMEOUT_S) -> dict:
    """Measure one op (see the module doc); the result repeats the measurement's keys."""
    m = {**{k: v for k, v in MEASUREMENT_DEFAULTS.items() if k not in ("runs", "seed", "roles")}, **m}
    text = _spawn("op", m, timeout)
    info = json.loads(_RESULT.search(text).group(1))
    result = {**m, **parse_log(text, PROTOCOLS[m["protocol"]]), "describe": info["describe"],
              "roles": info["roles"], "spu": _spu_version()}
    return result


def measure_batch(ms: list[dict], timeout: float = CHILD_TIMEOUT_S) -> list[dict]:
    """Measure several ops in ONE child process (each on fresh runtimes and links), for
    SEMI2K and ABY3 whose bytes do not depend on what ran before. A failed case is returned with
    ``error``; if the child dies, the cases it did not report are measured one by one."""
    if not ms:
        return []
    full = [{**{k: v for k, v in MEASUREMENT_DEFAULTS.items() if k not in ("runs", "seed", "roles")}, **m}
            for m in ms]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", "ops"],
                          input=json.dumps(full), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout * len(ms), env=env)
    cases = {int(c.split(None, 1)[0]): c for c in proc.stdout.split("@@CASE ")[1:]}
    results = []
    for i, m in enumerate(full):
        text = cases.get(i)
        if text is None or (i == max(cases, default=-1) and proc.returncode != 0 and "@@FAILED" not in text):
            try:
                results.append(measure(m, timeout))
            except Exception as exc:  # noqa: BLE001
                results.append({**m, "error": str(exc)[-2000:]})
            continue
        failed = re.search(r"^@@FAILED (.*)$", text, re.M)
        if failed:
            results.append({**m, "error": json.loads(failed.group(1))})
            continue
        info = json.loads(_RESULT.search(text).group(1))
        results.append({**m, **parse_log(text, PROTOCOLS[m["protocol"]]), "describe": info["describe"],
                        "roles": info["roles"], "spu": _spu_version()})
    return results


def measure_model(request: dict, timeout: float = CHILD_TIMEOUT_S) -> dict:
    """Run a whole model as one SPU executable (and/or its ops one by one, see the module doc)."""
    out: dict[str, Any] = {"protocol": request["protocol"], "model": request["spec"].get("name"),
                           "context": request.get("context"),
                           **{k: request.get(k, d) for k, d in (("weights", "server-private"),
                                                                 ("input", "client-private"),
                                                                 ("gelu", None), ("softmax", "stock"),
                                                                 ("mask", "where"))},
                           "spu": _spu_version()}
    if request.get("whole", True):
        start = time.perf_counter()
        text = _spawn("model", request, timeout)
        out["whole"] = {**parse_log(text, PROTOCOLS[request["protocol"]]),
                        **json.loads(_RESULT.search(text).group(1)),
                        "child_wall_s": round(time.perf_counter() - start, 3)}
    if request.get("ops"):
        ms = [_model_op_measurement(request, op) for op in request["ops"]]
        if request["protocol"] == "CHEETAH":
            results = [measure(m, timeout) for m in ms]
        else:
            results = measure_batch(ms, timeout)
        out["ops"] = [{"name": op["name"], **r} for op, r in zip(request["ops"], results)]
    return out


def _model_op_measurement(request: dict, op: dict) -> dict:
    """One op of a lowered model, measured as in ``ops`` mode with the model's options."""
    spec = request["spec"]
    kind = op["kind"]
    construction = None
    if kind in ("gelu", "gelu_tanh"):
        construction = request.get("gelu") or None
    elif kind == "softmax":
        construction = request.get("softmax", "stock")
    m = {"protocol": request["protocol"], "kind": kind, "dims": op["dims"], "construction": construction,
         "weights": request.get("weights", "server-private"), "input": request.get("input", "client-private"),
         "operands": op.get("operands"), "causal": bool(op.get("causal", False)),
         "mask": request.get("mask", "where"), "bias": bool(spec.get("bias", False)) and kind == "linear"
         and not op["name"].startswith("head."), "rotated": _rotated(spec) if kind == "rope" else None}
    if op["name"] == "embed.pos" and m["input"] == "client-embedded":
        m["roles"] = ["embedded", "weight"]  # the client's vectors meet the server's positions
    if request.get("runs"):
        m["runs"] = request["runs"]
    return m


def _rotated(spec: dict) -> int:
    dh = spec.get("head_dim") or spec["d_model"] // spec["n_heads"]
    return round(spec.get("rope_fraction", 1.0) * dh)


_VERSION: list[str] = []


def _spu_version() -> str:
    if not _VERSION:
        try:
            import spu
            _VERSION.append(spu.__version__)
        except Exception:  # noqa: BLE001 - only a label
            _VERSION.append("unknown")
    return _VERSION[0]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        request = json.load(sys.stdin)
        {"op": _child_op, "ops": _child_ops, "model": _child_model}[argv[1]](request)
        return 0
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=["ops", "model"])
    parser.add_argument("request", nargs="?", help="JSON file (default: stdin)")
    parser.add_argument("--timeout", type=float, default=CHILD_TIMEOUT_S, help="seconds per child")
    ns = parser.parse_args(argv)
    request = json.loads(Path(ns.request).read_text() if ns.request else sys.stdin.read())
    if ns.mode == "ops":
        failed = 0
        batch = [m for m in request if m.get("protocol") != "CHEETAH"]
        batched = iter(measure_batch(batch, ns.timeout))
        for m in request:
            if m.get("protocol") != "CHEETAH":
                result = next(batched)
            else:
                try:
                    result = measure(m, ns.timeout)
                except Exception as exc:  # noqa: BLE001 - one failed measurement does not stop the rest
                    result = {**m, "error": str(exc)[-2000:]}
            failed += "error" in result
            print(json.dumps(result), flush=True)
        return 1 if failed else 0
    print(json.dumps(measure_model(request, ns.timeout)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

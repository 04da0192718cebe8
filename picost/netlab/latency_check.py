"""The latency check: modeled latency vs measured wall time, on real (netlab) links.

For each network setting (bandwidth, RTT) a netlab is built (client and server links shaped to
the bandwidth, each direction delayed by RTT / 2; the dealer colocated with the server over an
unshaped direct link, since the model keeps preprocessing out of the latency), the engine runs
a set of ops (each warmed up once, then repeated) and a tiny model, and every figure is
compared with the estimate under ``picost-2pc`` with a compute calibration profile.

Measured per op: the fastest over the repeats of the mean of the client's and the server's wall
time of the op's rows (the op and its ``.trunc``), as the calibration measures compute (other
tenants of a shared machine only ever add time). Measured per model: the sum of those row times
over the model's rows (input sharing and the final reveal, ``_input``/``_output``, are not rows
of the estimate and are left out), the faster of ``model_runs`` runs. Needs root (namespaces); torch is imported only to run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from picost.cost.calibration import Profile, apply_calibration
from picost.mpc.measure_compute import make_op, repeated_ops, row_seconds
from picost.netlab.engine_runs import run_jobs
from picost.netlab.lab import LinkShape, Netlab
from picost.cost.network import Network
from picost.model.ops import Op

#: Ops of the check: the shapes of the tiny model at T = 8, and a bandwidth-heavy product.
CHECK_OPS: tuple[Op, ...] = (
    make_op("linear", "linear", {"m": 8, "k": 64, "n": 256}),
    make_op("matmul", "matmul", {"b": 4, "m": 8, "k": 16, "n": 8}),
    make_op("mul", "mul", {"n": 8192}),
    make_op("gelu_tanh", "gelu_tanh", {"n": 2048}),
    make_op("softmax", "softmax", {"rows": 32, "cols": 8, "valid": 144}),
    make_op("layernorm", "layernorm", {"rows": 8, "cols": 64}),
    make_op("argmax", "argmax", {"rows": 1, "cols": 256}),
)
TARGET_ERROR = 0.20


@dataclass(frozen=True)
class Setting:
    """A network to check: ``bandwidth_bps`` (bit/s on the wire), ``rtt_s`` (seconds)."""

    bandwidth_bps: float
    rtt_s: float

    @property
    def label(self) -> str:
        return f"{self.network.summary()}"

    @property
    def network(self) -> Network:
        return Network("netlab", self.bandwidth_bps, self.rtt_s, "a netlab link")

    def lab(self) -> Netlab:
        shape = LinkShape(self.bandwidth_bps, self.rtt_s / 2)
        return Netlab({"client": shape, "server": shape, "dealer": LinkShape(None)},
                      direct=[("dealer", "server")])


@dataclass(frozen=True)
class Comparison:
    """One figure: what the model says and what the clock said (seconds)."""

    setting: str
    item: str
    rounds: int
    comm_bytes: int
    modeled_s: float
    measured_s: float
    tolerance: float = TARGET_ERROR
    """The largest relative error that passes."""

    @property
    def error(self) -> float:
        """Relative error of the model: modeled / measured - 1."""
        return self.modeled_s / self.measured_s - 1

    @property
    def ok(self) -> bool:
        return abs(self.error) <= self.tolerance


def op_latency_s(table: Any, op: Op, network: Network) -> tuple[float, int, int]:
    """Modeled seconds, rounds and online bytes of ``op`` (its rows summed)."""
    from picost.analysis.estimate import row_latency_s

    costs = table.cost(op)
    return (sum(row_latency_s(c, network, table) for c in costs), sum(int(c.rounds) for c in costs),
            sum(int(c.comm_bytes) for c in costs))


def check_setting(setting: Setting, profile: Profile, ops: Sequence[Op] = CHECK_OPS, repeats: int = 2,
                  model: str | None = "tiny", context: int = 8, model_runs: int = 2) -> list[Comparison]:
    """Run ``ops`` (and ``model`` at ``context`` tokens) in a lab of ``setting``; compare."""
    from picost.analysis.estimate import estimate_lowered
    from picost.model.lower import lower
    from picost.mpc.launcher import model_job
    from picost.mpc.validate import ops_job, token_ids
    from picost.cost.protocol_table import load_protocol
    from picost.model.load import load_spec

    table = apply_calibration(load_protocol(profile.protocol), profile)
    network = setting.network
    jobs = [ops_job(repeated_ops(ops, repeats))]
    if model is not None:
        spec = load_spec(model)
        jobs += [model_job(model, token_ids(spec.vocab_size, context))] * model_runs
    with setting.lab() as lab:
        runs = run_jobs(lab, jobs, timeout_s=120.0)
    out = []
    for op in ops:
        modeled, rounds, comm = op_latency_s(table, op, network)
        measured = sum(row_seconds(runs[0].stats, op.name, repeats).values())
        out.append(Comparison(setting.label, f"{op.kind} {dims_text(op.dims)}", rounds, comm, modeled, measured))
    if model is not None:
        est = estimate_lowered(lower(spec, context), table, network)
        measured = min(model_seconds(run.stats) for run in runs[1:])
        out.append(Comparison(setting.label, f"model {model} T={context}", int(est.totals.rounds),
                              int(est.totals.comm_bytes), est.totals.latency_s, measured))
    return out


def model_seconds(stats: dict[str, dict[str, dict[str, Any]]]) -> float:
    """Sum over a model run's rows of the mean of the client's and the server's wall time."""
    return sum((stats["client"][row]["wall_s"] + stats["server"][row]["wall_s"]) / 2
               for row in stats["client"] if not row.startswith("_"))


def dims_text(dims: dict[str, int]) -> str:
    return " ".join(f"{k}={v}" for k, v in dims.items())


def markdown(comparisons: Iterable[Comparison]) -> str:
    lines = ["| network | item | rounds | online bytes | modeled s | measured s | model error | abs. error ms |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for c in comparisons:
        flag = "" if c.ok else f" (outside ±{100 * c.tolerance:.0f} %)"
        lines.append(f"| {c.setting} | {c.item} | {c.rounds} | {c.comm_bytes} | {c.modeled_s:.4f} | "
                     f"{c.measured_s:.4f} | {100 * c.error:+.1f} %{flag} | "
                     f"{1e3 * (c.modeled_s - c.measured_s):+.1f} |")
    return "\n".join(lines)

"""The latency check for engines picost did not write: SPU 0.9.5 and CrypTen 0.4.1 on shaped links.

A whole model runs with each party as its own process in its own netlab namespace (SPU: its
brpc links, ``picost/spu/multiproc.py``; CrypTen: its gloo communicator, ``benchmarks/crypten_ops.py
depth-party``), every party's incoming link shaped to the setting's bandwidth and delayed by half
its RTT. The measured time is the fastest of ``repeats`` forward passes (after a warm-up) of the
slowest party; the modeled time is ``picost estimate``'s total latency of the same spec under
the engine's table (``spu-semi2k``, ``spu-aby3``, ``spu-cheetah``, ``crypten``), compute
included (each table's ``compute_s``, measured on this machine by ``benchmarks/spu_compute.py``
and ``benchmarks/crypten_compute.py``). Needs root; torch is imported only for CrypTen's weights.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from picost.netlab.latency_check import Comparison, Setting

RECORDS = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "latency-engines.jsonl"
"""Where ``scripts/latency_check.py --engine`` appends its measurements."""
WHOLE_MODEL_COMPUTE = RECORDS.with_name("whole-model-compute.jsonl")
"""Where ``scripts/latency_check.py --engine ... --compute-only`` appends its measurements."""
ENGINE_TOLERANCE = 0.25
"""Issue 10's bound for the engines picost did not write: modeled within 25 % of the clock."""
SPU_PROTOCOLS = {"semi2k": "SEMI2K", "aby3": "ABY3", "cheetah": "CHEETAH"}


@dataclass(frozen=True)
class EngineRun:
    """What to run: ``engine`` (``spu-semi2k``, ``spu-aby3``, ``spu-cheetah`` or ``crypten``),
    the model and its prompt length."""

    engine: str
    spec: Any
    context: int

    def modeled(self, setting: Setting) -> Any:
        """The estimate's totals of this run on ``setting``'s network, under the engine's table."""
        from picost.analysis.estimate import estimate_lowered
        from picost.cost.protocol_table import load_protocol
        from picost.model.lower import lower

        return estimate_lowered(lower(self.spec, self.context), load_protocol(self.engine), setting.network).totals

    def compute_s(self) -> float:
        """Today's table compute of one whole forward pass (no delay, unshaped: what
        :func:`compute_check` compares)."""
        return float(self.modeled(Setting(1e12, 0.0)).compute_s)

    def compare(self, setting: Setting, measured_s: float) -> tuple[Comparison, Any]:
        """Today's model of this run on ``setting`` against ``measured_s``: the comparison and the totals."""
        totals = self.modeled(setting)
        return Comparison(setting.label, f"{self.engine} {self.spec.name} T={self.context}", int(totals.rounds),
                          int(totals.comm_bytes), float(totals.latency_s), float(measured_s),
                          tolerance=ENGINE_TOLERANCE), totals

    def measure(self, setting: Setting | None, repeats: int = 3) -> dict:
        """Time the model on a lab of ``setting`` (``None``: unshaped, no delay line -- its compute);
        :func:`picost.netlab.party_runs.time_cases`'s dict."""
        delay = [setting.rtt_s / 2 if setting else 0.0]
        link = {"rate_bps": setting.bandwidth_bps if setting else None, "delay_line": setting is not None}
        if self.engine.startswith("spu-"):
            from picost.netlab.spu_runs import time_spu_cases
            from picost.spu.bridge import model_request, spu_python

            protocol = self.engine.removeprefix("spu-")
            case = {k: v for k, v in model_request(self.spec, self.context, protocol).items() if k != "protocol"}
            return time_spu_cases(SPU_PROTOCOLS[protocol], [case], delay, str(spu_python()), repeats=repeats,
                                  **link)[0]
        if self.engine == "crypten":
            import torch

            from picost.crypten_engine.bridge import crypten_python, model_payload
            from picost.netlab.crypten_runs import time_crypten_cases

            payload = model_payload(self.spec, self.context)
            with tempfile.TemporaryDirectory(prefix="picost-crypten-") as tmp:
                params_file = Path(tmp) / "params.pt"
                torch.save(payload.saved, params_file)
                case = {**payload.request, "params_file": str(params_file)}
                return time_crypten_cases([case], delay, str(crypten_python()), repeats=repeats, **link)[0]
        raise ValueError(f"unknown engine {self.engine!r}: spu-semi2k, spu-aby3, spu-cheetah or crypten")


def check(run: EngineRun, setting: Setting, repeats: int = 3) -> tuple[Comparison, dict]:
    """One comparison of modeled and measured latency, and the raw measurement (for the record)."""
    measured = run.measure(setting, repeats)
    comparison, totals = run.compare(setting, measured["min_wall_s"])
    record = {"engine": run.engine, "spec": run.spec.name, "context": run.context,
              "bandwidth_bps": setting.bandwidth_bps, "rtt_s": setting.rtt_s,
              "modeled": {"latency_s": totals.latency_s, "compute_s": totals.compute_s, "comm_s": totals.comm_s,
                          "rounds": totals.rounds, "comm_bytes": totals.comm_bytes,
                          "compute_rows": totals.compute_rows},
              "measured": {k: measured[k] for k in ("walls_s", "min_wall_s", "median_wall_s", "ranks")}}
    return comparison, json.loads(json.dumps(record))


def compute_check(run: EngineRun, repeats: int = 3) -> tuple[float, dict]:
    """``(modeled compute_s, measurement)`` of the whole model with no delay and unshaped links:
    the table's compute summed over the rows against one forward pass's time (``min_wall_s``)."""
    return run.compute_s(), run.measure(None, repeats)


def latest_records(path: Path = RECORDS) -> dict[tuple, dict]:
    """The newest record per (engine, spec, context, bandwidth, RTT)."""
    out = {}
    for line in path.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            out[(r["engine"], r["spec"], r["context"], r["bandwidth_bps"], r["rtt_s"])] = r
    return out


def recheck(record: dict) -> tuple[Comparison, Any]:
    """A recorded measurement against today's model: the comparison and the modeled totals."""
    from picost.model.load import load_spec

    run = EngineRun(record["engine"], load_spec(record["spec"]), record["context"])
    return run.compare(Setting(record["bandwidth_bps"], record["rtt_s"]), record["measured"]["min_wall_s"])


def report(records: Mapping[tuple, dict]) -> str:
    """Markdown: every recorded point against today's model, with the model's terms."""
    lines = ["| engine | network | rounds | online bytes | compute s | transfer s | round delays s | modeled s | "
             "measured s | model error |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for record in records.values():
        c, totals = recheck(record)
        delays = totals.latency_s - totals.compute_s - totals.comm_s
        flag = "" if c.ok else f" (outside ±{100 * c.tolerance:.0f} %)"
        lines.append(f"| {record['engine']} | {c.setting} | {c.rounds} | {c.comm_bytes:,} | {totals.compute_s:.2f} | "
                     f"{totals.comm_s:.2f} | {delays:.2f} | {c.modeled_s:.2f} | {c.measured_s:.2f} | "
                     f"{100 * c.error:+.1f} %{flag} |")
    return "\n".join(lines)

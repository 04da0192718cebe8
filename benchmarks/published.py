"""Published end-to-end private-inference results beside picost's estimate: ``docs/published.md``.

Reads ``benchmarks/published/points.yaml`` (what each paper ran and reported: model, T, framework,
network, hardware, communication, latency; collected with their sources) and runs picost at each
point with the paper's network and the machine preset of its hardware (``picost machines``), under
the table that models its framework. The figures are a check, never a fit: no table is tuned to
them, and every miss is explained (``benchmarks/published/explanations.yaml``) or left standing.

Before scoring, each point's own figures are checked against its stated network (``picost check``'s
arithmetic: the bytes alone need ``comm / bandwidth``, or half that with both directions full): a
point whose reported latency is below what its bytes need on its network is listed as
inconsistent and not scored.

    python benchmarks/published.py            # write docs/published.md
    python benchmarks/published.py --check    # exit 1 if docs/published.md is stale
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

POINTS = REPO / "benchmarks" / "published" / "points.yaml"
EXPLANATIONS = REPO / "benchmarks" / "published" / "explanations.yaml"
DOC = REPO / "docs" / "published.md"
TOLERANCE = 0.30
"""A latency within this relative error of the published figure counts as agreeing."""


@dataclass(frozen=True)
class Result:
    """One published point and picost's estimate there (None where picost cannot run it)."""

    point: dict
    comm_bytes: float | None = None
    latency_s: float | None = None
    compute_s: float | None = None
    transfer_s: float | None = None
    rounds_s: float | None = None
    extrapolated_share: float | None = None
    verdict: str | None = None
    """``picost check``'s verdict on the point's own figures and network."""
    skipped: str | None = None
    uncosted: tuple[str, ...] = ()
    """Op kinds the table cannot cost (left out of picost's figures, said in the page)."""

    @property
    def comm_ratio(self) -> float | None:
        return None if self.comm_bytes is None or not self.point.get("comm_GB") else \
            self.comm_bytes / (self.point["comm_GB"] * 1e9)

    @property
    def latency_ratio(self) -> float | None:
        return None if self.latency_s is None else self.latency_s / self.point["latency_s"]

    @property
    def scored(self) -> bool:
        return self.latency_s is not None and self.verdict != "impossible"

    @property
    def agrees(self) -> bool:
        return self.scored and abs(self.latency_ratio - 1) <= TOLERANCE


def load_points() -> list[dict]:
    import yaml

    return yaml.safe_load(POINTS.read_text())


def load_explanations() -> dict[str, str]:
    import yaml

    return yaml.safe_load(EXPLANATIONS.read_text()) if EXPLANATIONS.is_file() else {}


def evaluate(point: dict) -> Result:
    """picost at ``point``: its spec, context, table, network and machine."""
    from picost.analysis.estimate import estimate
    from picost.analysis.published_check import check_published
    from picost.cost.network import get_network

    net = point["network"]
    link = get_network(None, bandwidth=net["bandwidth"], rtt=net["rtt"])
    verdict = None
    if point.get("comm_GB"):
        verdict = check_published(point["comm_GB"] * 1e9, point["latency_s"], link.bandwidth_bps / 8).verdict
    if not point.get("spec"):
        return Result(point, verdict=verdict, skipped="no shipped spec for this model")
    if not point.get("picost_protocol"):
        return Result(point, verdict=verdict, skipped="no picost table models this framework")
    machine = point["hardware"]["machine"]
    # What the paper's code ran: a prefill of T tokens; SPU's generation (no KV cache) re-runs the
    # whole sequence for each new token, so N tokens are prefills of T, T + 1, ..., T + N - 1.
    passes = [point["context"] + i for i in range(point.get("new_tokens") or 1)] \
        if point["task"] == "generate" else [point["context"]]
    ests = [estimate(point["spec"], point["picost_protocol"], link, t, machine=machine, allow_uncosted=True)
            for t in passes]
    uncosted = sorted({r.kind for e in ests for r in e.rows if not r.costed})
    total = lambda f: sum(getattr(e.totals, f) for e in ests)  # noqa: E731
    latency = total("latency_s")
    extrapolated = sum((e.extrapolated_share or 0) * e.totals.latency_s for e in ests) / latency
    return Result(point, total("comm_bytes"), latency, total("compute_s"), total("comm_s"),
                  latency - total("compute_s") - total("comm_s"), extrapolated, verdict, uncosted=tuple(uncosted))


def _s(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:,.1f}" if x < 1000 else f"{x:,.0f}"


def _ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}x"


def docs(results: list[Result], explanations: dict[str, str]) -> str:
    """The page: summary, then one table per paper, then the explanations."""
    from picost.cost.machine import get_machine

    scored = [r for r in results if r.scored]
    puma = [r for r in scored if r.point["id"].startswith(("puma-", "mpcformer-"))]
    out = ["<!-- generated by benchmarks/published.py from benchmarks/published/points.yaml; do not edit -->",
           "# Published latencies beside picost", "",
           "Each row: a point a paper published (communication, end-to-end latency) and picost's estimate at the "
           "same model, context, network and hardware (`--machine` preset of the paper's machines, `picost "
           "machines`), under the table that models the paper's framework. These figures check picost; no table "
           "is fitted to them. Points whose own figures are inconsistent with their stated network (the reported "
           "latency is below what the reported bytes need on that link: `picost check`) are listed but not scored.",
           "",
           f"**Agreement** (latency within ±{TOLERANCE:.0%}): {sum(r.agrees for r in puma)} of {len(puma)} scored "
           f"PUMA points (PUMA and its MPCFormer re-run); {sum(r.agrees for r in scored)} of {len(scored)} scored "
           f"points in all; {sum(not r.scored for r in results)} not scored (inconsistent, or no spec/table).", "",
           "Columns: picost's latency split into compute (on the preset machine, scaled from the tables' "
           "reference machine: docs/latency-model.md, \"Machines\"), transfer and round delays; `extrap.` is the "
           "share of picost's latency from rows whose compute is evaluated beyond the sizes it was measured at.",
           ""]
    papers: dict[str, list[Result]] = {}
    for r in results:
        papers.setdefault(r.point["paper"], []).append(r)
    for paper, rows in papers.items():
        first = rows[0].point
        out += [f"## {paper} (arXiv {first['arxiv']})", ""]
        machines = sorted({r.point["hardware"]["machine"] for r in rows})
        for name in machines:
            m = get_machine(name)
            out.append(f"- machine `{name}`: {m.summary()}")
        out += ["", "| point | where | spec | T | table | network | comm published | picost | ratio "
                "| latency published (s) | picost (s) | ratio | compute / transfer / rounds (s) | extrap. | check |",
                "|---|---|---|---:|---|---|---:|---:|---:|---:|---:|---:|---|---:|---|"]
        for r in rows:
            p = r.point
            net = f"{p['network']['bandwidth']}, {p['network']['rtt']}"
            comm = "-" if not p.get("comm_GB") else f"{p['comm_GB']:g} GB"
            mine = "-" if r.comm_bytes is None else f"{r.comm_bytes / 1e9:.3g} GB"
            split = "-" if r.latency_s is None else f"{_s(r.compute_s)} / {_s(r.transfer_s)} / {_s(r.rounds_s)}"
            check = {"impossible": "**inconsistent**", "needs-duplex": "needs duplex", "consistent": "ok",
                     None: "-"}[r.verdict]
            if r.skipped:
                check += f"; not run: {r.skipped}"
            if r.uncosted:
                check += f"; uncosted: {', '.join(r.uncosted)}"
            extrap = "-" if r.extrapolated_share is None else f"{100 * r.extrapolated_share:.0f}%"
            out.append(f"| {p['id']} | {p['where']} | {p.get('spec') or '-'} | {p['context']}"
                       f"{' +' + str(p['new_tokens']) if p.get('new_tokens') else ''} | {p.get('picost_protocol') or '-'} "
                       f"| {net} | {comm} | {mine} | {_ratio(r.comm_ratio)} | {_s(p['latency_s'])} | {_s(r.latency_s)} "
                       f"| {_ratio(r.latency_ratio)} | {split} | {extrap} | {check} |")
        out.append("")
    out += ["## Explanations", "",
            "Why picost's figure differs where it does (a setting of the paper's run, or a gap left standing). "
            "Keys are point ids or id prefixes.", ""]
    out += [f"- **{key}**: {' '.join(str(text).split())}" for key, text in explanations.items()]
    return "\n".join(out).rstrip() + "\n"


def build() -> str:
    return docs([evaluate(p) for p in load_points()], load_explanations())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/published.md is stale")
    ns = parser.parse_args(argv)
    text = build()
    if ns.check:
        stale = not DOC.is_file() or DOC.read_text() != text
        print("docs/published.md is stale: python benchmarks/published.py" if stale else "docs/published.md is fresh")
        return 1 if stale else 0
    DOC.write_text(text)
    print(f"wrote {DOC.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

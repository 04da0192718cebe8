"""The SPU validation matrix behind docs/validation.md: whole models in SPU 0.9.5 vs picost.

Runs ``picost validate --against spu`` (:func:`picost.spu.validate.check`) over 3 widths x 3
contexts x 4 architectures (AERO's GELU+LN baseline, ReLU+LN, Softmax-only with the FFN fused,
and a Llama-style block) under each SPU protocol, appends each run to
``benchmarks/results/spu/validation.jsonl`` (resumable: runs already there are skipped), and
writes ``docs/validation.md`` from that file. ``tests/test_spu_validation.py`` re-estimates every
committed run with the shipped tables (no SPU needed) and holds them to the same tolerances, so a
table change cannot silently break agreement. Run with picost's interpreter (SPU in .venv-spu)::

    python benchmarks/spu_validation.py                       # every protocol (CHEETAH is slow)
    python benchmarks/spu_validation.py --protocol semi2k aby3
    python benchmarks/spu_validation.py --protocol cheetah --width 32 --context 8 16   # a part of it
    python benchmarks/spu_validation.py --docs-only           # rewrite docs/validation.md
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from picost.model import aero_transforms as aero  # noqa: E402
from picost.model.spec import ModelSpec  # noqa: E402
from picost.spu import validate as spu_validate  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "spu" / "validation.jsonl"
DOC = REPO / "docs" / "validation.md"
WIDTHS = ((32, 2, 128), (64, 4, 256), (128, 4, 512))  # d_model, heads, d_ff
CONTEXTS = (8, 16, 32)
VARIANTS = ("gelu-ln", "relu-ln", "smonly-fused", "llama")


def spec(variant: str, d_model: int, heads: int, d_ff: int, context_length: int = 32) -> ModelSpec:
    """A 2-layer model of ``variant`` at width ``d_model`` (vocabulary 256)."""
    if variant == "llama":
        return ModelSpec.model_validate({
            "name": f"llama-d{d_model}", "description": "Llama-style: SwiGLU, RMSNorm, RoPE, GQA",
            "n_layers": 2, "d_model": d_model, "n_heads": heads, "n_kv_heads": heads // 2, "d_ff": d_ff * 3 // 8,
            "vocab_size": 256, "context_length": context_length, "activation": "swiglu",
            "norm": {"kind": "rmsnorm", "placement": "pre", "final": True}, "positional": "rope",
            "tied_embeddings": False, "bias": False})
    base = ModelSpec.model_validate({
        "name": f"gpt2-d{d_model}", "description": "GPT-2-style: GELU (tanh), pre-LN, learned positions",
        "n_layers": 2, "d_model": d_model, "n_heads": heads, "d_ff": d_ff, "vocab_size": 256,
        "context_length": context_length, "activation": "gelu_tanh",
        "norm": {"kind": "layernorm", "placement": "pre", "final": True}, "positional": "learned",
        "tied_embeddings": True, "bias": True})
    if variant == "relu-ln":
        return aero.gelu_to_relu(base).model_copy(update={"name": f"gpt2-relu-d{d_model}"})
    if variant == "smonly-fused":
        return aero.fuse_ffn(aero.softmax_only(base)).model_copy(update={"name": f"gpt2-smonly-fused-d{d_model}"})
    return base


def _key(protocol: str, name: str, context: int) -> tuple[str, str, int]:
    return protocol, name, context


def load() -> list[spu_validate.SpuCheck]:
    if not RESULTS.is_file():
        return []
    return [spu_validate.SpuCheck.from_dict(json.loads(line)) for line in RESULTS.read_text().splitlines() if line]


def run(protocols: list[str], widths: tuple[int, ...] = (), contexts: tuple[int, ...] = (),
        variants: tuple[str, ...] = ()) -> None:
    """Run the matrix (or the part of it given by ``widths``/``contexts``/``variants``)."""
    done = {_key(c.protocol, c.spec, c.context) for c in load()}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    for protocol in protocols:
        for d_model, heads, d_ff in [w for w in WIDTHS if not widths or w[0] in widths]:
            for context in contexts or CONTEXTS:
                for variant in [v for v in VARIANTS if not variants or v in variants]:
                    model = spec(variant, d_model, heads, d_ff, max(32, context))
                    if _key(protocol, model.name, context) in done:
                        continue
                    start = time.perf_counter()
                    check = spu_validate.check(model, context, protocol)
                    with RESULTS.open("a") as f:
                        f.write(spu_validate.dumps([check]))
                    print(f"{protocol} {model.name} T={context}: measured {check.measured_total:,} B, estimate "
                          f"{check.estimated_total:,.0f} B ({spu_validate.signed_percent(check.total_error)}), "
                          f"{'ok' if check.ok else 'MISS'}, {time.perf_counter() - start:.0f} s", flush=True)


def docs() -> str:
    """docs/validation.md from the committed runs, re-estimated with today's tables."""
    checks = [spu_validate.recheck(c) for c in load()]
    out = ["# Validation against SecretFlow SPU", "",
           "Generated by `python benchmarks/spu_validation.py --docs-only` from "
           "`benchmarks/results/spu/validation.jsonl`; regenerate the runs with `python benchmarks/spu_validation.py` "
           "(SPU 0.9.5 in `.venv-spu`: `bash scripts/setup-spu.sh`). One run by hand: "
           "`picost validate --against spu -p semi2k tiny -T 8`.", "",
           "Each row: a 2-layer model (vocabulary 256; rows named `gpt2`: GPT-2 small itself, 12 layers and "
           "vocabulary 50,257, run by `picost validate --against spu -p P gpt2 -T 16`) run in SPU 0.9.5's "
           "simulator as one executable (client-private "
           "token ids, server-private weights, stock `jax.nn.gelu`/`jax.nn.softmax`; all parties' bytes of a warm run), "
           "next to `picost estimate` under the matching `spu-*` table with its default options. *op by op*: the same "
           "model's ops each run on their own, which attributes bytes to op classes (each op's mean warm run, the "
           "accounting the tables are fitted on: CHEETAH's OT pool refills land on some runs only; rows measured "
           "before 2026-12-01 used each op's cheapest warm run). Tolerances: total within "
           f"{spu_validate.TOTAL_TOLERANCE:.0%} of the whole-model run, every op class with at least "
           f"{spu_validate.CLASS_FLOOR:.0%} of the bytes within {spu_validate.CLASS_TOLERANCE:.0%} of its op-by-op "
           "measurement. `tests/test_spu_tables.py` re-checks every row against the shipped tables in CI, to the "
           "same tolerances. CHEETAH runs take a minute or two each on 2 cores.", ""]
    for protocol in spu_validate.SPU_PROTOCOLS:
        rows = [c for c in checks if c.protocol == protocol]
        if not rows:
            out += [f"## {protocol}", "", "Not measured yet.", ""]
            continue
        ok = sum(c.ok for c in rows)
        worst = max(abs(c.total_error) for c in rows)
        totals = sum(abs(c.total_error) <= spu_validate.TOTAL_TOLERANCE for c in rows)
        out += [f"## spu-{protocol}", "", f"{ok} of {len(rows)} runs within tolerance (totals within "
                f"{spu_validate.TOTAL_TOLERANCE:.0%} in {totals} of {len(rows)}); largest total error "
                f"{100 * worst:.1f}%.", "",
                "| model | T | measured (whole) | op by op | estimate | total error | worst class | logits error | verdict |",
                "|---|---:|---:|---:|---:|---:|---|---:|---|"]
        for c in rows:
            errors = c.class_errors()
            w = spu_validate.worst_class(errors)
            out.append(f"| {c.spec} | {c.context} | {c.measured_total:,} | {c.ops_total:,} | "
                       f"{c.estimated_total:,.0f} | {spu_validate.signed_percent(c.total_error)} | "
                       f"{f'{w} {spu_validate.signed_percent(errors[w])}' if w else '-'} | "
                       f"{c.logits_max_abs_error:.2g} of {c.logits_max_abs:.2g} | {'ok' if c.ok else 'MISS'} |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--protocol", nargs="+", choices=spu_validate.SPU_PROTOCOLS,
                        default=list(spu_validate.SPU_PROTOCOLS))
    parser.add_argument("--width", nargs="+", type=int, default=[], help="only these d_model (32 64 128)")
    parser.add_argument("--context", nargs="+", type=int, default=[],
                        help="only these T (the matrix: 8 16 32; others, e.g. 96, run beside it)")
    parser.add_argument("--variant", nargs="+", choices=VARIANTS, default=[])
    parser.add_argument("--docs-only", action="store_true")
    ns = parser.parse_args(argv)
    if not ns.docs_only:
        run(ns.protocol, tuple(ns.width), tuple(ns.context), tuple(ns.variant))
    DOC.write_text(docs())
    print(f"wrote {DOC.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

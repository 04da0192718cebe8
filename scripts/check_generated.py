"""Regenerate every committed file that picost writes from data, in memory, and list the ones
that differ from what is committed: the stock-SPU tables (benchmarks/spu_fit.py +
spu_tables.py), the crypten/shaft compute lines (benchmarks/crypten_compute.py), the protocol
docs (scripts/gen_protocol_docs.py), docs/validation.md (benchmarks/spu_validation.py),
docs/published.md (benchmarks/published.py) and the
example reports (``picost report --all``, markdown and plotted data).

Prints one JSON object: ``{"blas": <kernel and threads in use>, "checked": N, "stale": [...]}``;
exit 1 if anything is stale. ``tests/test_blas_stability.py`` runs it under several OpenBLAS
kernels and thread counts: committed generated files must not depend on the CPU.

    python scripts/check_generated.py
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))


def _module(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def expected_files() -> dict[Path, str]:
    """``{path: text it should have}`` for every generated, committed file."""
    from picost.report.markdown_report import build_report, load_examples
    from picost.report.protocol_docs import expected_docs

    spu_fit, spu_tables = _module("spu_fit"), _module("spu_tables")
    out = dict(spu_tables.expected_tables(spu_fit.fit_all()))
    crypten_compute = _module("crypten_compute")
    kind_fits = crypten_compute.fits()
    for path, own in crypten_compute.TABLES.items():
        out[path] = crypten_compute.write_table(path.read_text(), kind_fits, own)
    out.update({REPO / "docs" / "protocols" / name: text for name, text in expected_docs().items()})
    out[REPO / "docs" / "validation.md"] = _module("spu_validation").docs()
    out[REPO / "docs" / "published.md"] = _module("published").build()
    os.chdir(REPO)
    for example in load_examples(REPO / "reports" / "examples.yaml"):
        md = Path("reports") / f"{example.name}.md"
        built = build_report(example, md, plots=False)
        out[REPO / md] = built.markdown
        out.update({REPO / p: text for p, text in built.data_files().items()})
    return out


def blas_in_use() -> str:
    """The BLAS kernel and thread count numpy runs with (``threadpoolctl`` if installed)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '')}"
    blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    return ", ".join(f"{i.get('internal_api')} {i.get('architecture')} x{i.get('num_threads')}" for i in blas)


def main() -> int:
    expected = expected_files()
    stale = sorted(str(p.relative_to(REPO)) for p, text in expected.items()
                   if not p.is_file() or p.read_text() != text)
    print(json.dumps({"blas": blas_in_use(), "checked": len(expected), "stale": stale}))
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())

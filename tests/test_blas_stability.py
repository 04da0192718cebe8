"""Committed generated files (fitted tables, their docs, docs/validation.md, the example reports)
must not depend on the CPU: a least-squares fit's last bits follow the BLAS kernel OpenBLAS picks
for the processor (issue 21: spu-aby3.yaml was "stale" on a CPU whose kernel differed from the
author's). scripts/check_generated.py regenerates them all in memory; here it runs in fresh
processes under other kernels and thread counts than this suite's, and every file must come out
as committed.

Only kernels the CPU can run are tried (OpenBLAS dies on an instruction the CPU lacks); the
parent's environment is never changed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
#: OpenBLAS kernel -> the CPU flag it needs (x86-64).
KERNELS = {"Sandybridge": "avx", "Haswell": "avx2", "SkylakeX": "avx512f"}


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    return {flag for line in text.splitlines() if line.startswith("flags") for flag in line.split(":", 1)[1].split()}


def _native_kernel() -> str:
    from threadpoolctl import threadpool_info

    return next((i.get("architecture") for i in threadpool_info() if i.get("internal_api") == "openblas"), "")


def _variants() -> list[tuple[str, int]]:
    """(kernel, threads): every kernel this CPU runs other than the suite's own, alternating 1
    and 2 threads (the suite's own kernel is checked by the committed-file tests themselves)."""
    flags = _cpu_flags()
    native = _native_kernel()
    runnable = [k for k, flag in KERNELS.items() if flag in flags and k != native]
    return [(kernel, 1 + i % 2) for i, kernel in enumerate(runnable)] + ([(native, 1)] if native else [])


VARIANTS = _variants()


@pytest.mark.skipif(not VARIANTS, reason="no other OpenBLAS kernel can run on this CPU")
@pytest.mark.parametrize("kernel,threads", VARIANTS, ids=lambda v: str(v))
def test_generated_files_are_the_same_under_another_blas_kernel(kernel, threads):
    env = {**os.environ, "OPENBLAS_CORETYPE": kernel, "OPENBLAS_NUM_THREADS": str(threads)}
    env.pop("OPENBLAS_L2_SIZE", None)  # set with the kernel it was tuned for, if at all
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "check_generated.py")], env=env,
                          capture_output=True, text=True, timeout=600, cwd=REPO)
    assert done.returncode in (0, 1), done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["blas"] == f"openblas {kernel} x{threads}", result["blas"]  # the kernel really ran
    assert result["checked"] >= 30
    assert result["stale"] == [], f"under OpenBLAS {kernel} x{threads}: {result['stale']} differ from the committed files"

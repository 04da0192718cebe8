"""Shared test helpers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ADDRESS_SPACE_CAP_BYTES = 16 * 2**30
"""The test process's (and its children's) address-space cap: a runaway allocation fails as a
MemoryError in its test instead of the kernel killing the whole run (once seen in CI: the pytest
process OOM-killed at 24 GB; the suite peaks far below the cap)."""


def pytest_configure(config) -> None:
    try:
        import resource
    except ImportError:  # not on POSIX
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY or soft > ADDRESS_SPACE_CAP_BYTES:
        cap = ADDRESS_SPACE_CAP_BYTES if hard == resource.RLIM_INFINITY else min(hard, ADDRESS_SPACE_CAP_BYTES)
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``python -m picost ARGS`` in a subprocess against this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["COLUMNS"] = "200"
    return subprocess.run([sys.executable, "-m", "picost", *args], capture_output=True, text=True,
                          cwd=cwd or REPO, env=env, timeout=timeout)


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny tensors: a second intra-op thread only adds contention on a shared 2-core machine
    (modules opt in with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

"""The layout rules of docs/architecture.md: import contracts (import-linter), no import cycles,
and no development machine's absolute paths in the tree."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``lint-imports`` on the ``picost`` package found first in ``cwd``."""
    return subprocess.run([str(LINT_IMPORTS), "--config", str(cwd / "pyproject.toml"), "--no-cache"],
                          cwd=cwd, env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin", "COLUMNS": "200"},
                          capture_output=True, text=True, timeout=300)


def test_import_contracts_hold():
    done = _lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 kept, 0 broken" in done.stdout


@pytest.mark.parametrize(("module", "bad_import", "contract"), [
    ("model/ops.py", "from picost.cost import formula", "Stages"),
    ("analysis/compare.py", "import picost.mpc.ring", "analytic core"),
    ("cost/network.py", "import torch", "analytic core"),
    ("mpc/ring.py", "import picost.cli.main", "engines never import a face"),
    ("crypten_engine/validate.py", "import picost.cli.main", "engines never import a face"),
    ("analysis/estimate.py", "import picost.crypten_engine.bridge", "analytic core"),
])
def test_a_wrong_import_breaks_a_contract(tmp_path, module, bad_import, contract):
    """A copy of the package with one forbidden import added fails ``lint-imports``."""
    shutil.copytree(ROOT / "picost", tmp_path / "picost", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "picost" / module
    target.write_text(target.read_text() + f"\n{bad_import}\n")
    done = _lint_imports(tmp_path)
    assert done.returncode != 0
    assert "3 kept, 1 broken" in done.stdout, done.stdout
    assert contract in done.stdout.split("Broken contracts", 1)[1], done.stdout


def test_no_import_cycles_between_modules():
    """No two picost modules import each other, directly or through others (lazy imports count)."""
    grimp = pytest.importorskip("grimp")
    graph = grimp.build_graph("picost")
    cyclic = [(a, b) for a in graph.modules for b in graph.modules
              if a < b and graph.chain_exists(a, b) and graph.chain_exists(b, a)]
    assert cyclic == []


ABSOLUTE_PATH = re.compile(r"(?<![\w.:/])/(?:work|root|home|tmp|opt|Users|mnt)/")


def test_no_machine_paths_in_the_tree():
    """Docs, scripts, tables and code name no absolute path of a development machine."""
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    hits = []
    for name in files:
        path = ROOT / name
        if path.suffix in {".png", ".whl"} or not path.is_file():
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if ABSOLUTE_PATH.search(line) and name != "tests/test_architecture.py":
                hits.append(f"{name}:{number}: {line.strip()}")
    assert hits == []

"""Engines that live in a virtualenv of their own (SPU, CrypTen): finding its interpreter and
running one of their scripts by path with a JSON request on stdin.

Below every stage (standard library and :mod:`picost.errors` only). The script runs in a new
session, so a timeout kills it together with any party processes it forked.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from picost.errors import UserError

REPO = Path(__file__).resolve().parents[1]


def find_python(env_var: str, venv: str, setup_hint: str, what: str, needs: str) -> Path:
    """``$env_var``, else ``<repo>/<venv>/bin/python``; a :class:`UserError` saying how to make it
    (``setup_hint``) if it does not exist. ``what`` names the engine, ``needs`` its package."""
    env = os.environ.get(env_var)
    candidate = Path(env) if env else REPO / venv / "bin" / "python"
    if not candidate.exists():
        where = f"{env_var}={env}" if env else str(candidate.relative_to(REPO))
        raise UserError(f"{what} environment missing ({where} not found): run `{setup_hint}` "
                        f"(or point {env_var} at an interpreter with {needs})")
    return candidate


def run_script(python: Path, script: Path, args: list[str], stdin: str, timeout: float, what: str) -> str:
    """The stdout of ``python script *args`` fed ``stdin``; a :class:`UserError` on a timeout, or on
    a failure that printed nothing (its last line of stderr)."""
    with subprocess.Popen([str(python), str(script), *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, start_new_session=True) as proc:
        try:
            out, err = proc.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise UserError(f"the {what} run took longer than {timeout:g} s (smaller sizes, or a longer "
                            "timeout)") from None
    if proc.returncode != 0 and not out.strip():
        raise UserError(f"the {what} run failed: {(err.strip().splitlines() or ['?'])[-1]}")
    return out

#!/usr/bin/env bash
# Set up a fresh virtual environment (.venv) with the pinned test environment
# (constraints.txt: CPU torch 2.13.0), check the import contracts and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q -c constraints.txt -e '.[test]'
.venv/bin/lint-imports          # the import rules of docs/architecture.md
.venv/bin/python -m pytest -q "$@"

#!/usr/bin/env bash
# Regenerate every example report listed in reports/examples.yaml (markdown, PNG plots and the
# CSV data behind each plot). tests/test_report.py fails when a committed report is stale.
# Usage: bash scripts/make_reports.sh   (PYTHON=/path/to/python to choose the interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."
"${PYTHON:-python3}" -m picost report --all

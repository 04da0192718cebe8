#!/usr/bin/env bash
# A separate virtualenv with SecretFlow SPU 0.9.5 (it pins jax and numpy; never a picost
# dependency), for benchmarks/spu_ops.py and `picost validate --against spu`.
# Usage: bash scripts/setup-spu.sh [VENV_DIR]      (default: .venv-spu at the top of the repo)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.venv-spu}"
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q spu==0.9.5 jax==0.4.34 jaxlib==0.4.34
"$VENV/bin/python" -c "import spu, jax; print('SPU', spu.__version__, 'jax', jax.__version__, 'ready in $VENV')"

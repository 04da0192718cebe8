#!/usr/bin/env bash
# A separate virtualenv with CrypTen 0.4.1 on the pinned CPU torch (never a picost dependency),
# for benchmarks/crypten_ops.py and `picost validate --against crypten`.
# CrypTen 0.4.1 installs only without its dependency pins; torch 2.13 moved the ONNX symbolic
# registry, so one import in crypten/nn/onnx_converter.py is patched to its new home.
# Usage: bash scripts/setup-crypten.sh [VENV_DIR]  (default: .venv-crypten at the top of the repo)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.venv-crypten}"
python3 -m venv "$VENV"
VENV="$(cd "$VENV" && pwd)"
"$VENV/bin/python" -m pip install -q -c constraints.txt torch
"$VENV/bin/python" -m pip install -q --no-deps crypten==0.4.1
"$VENV/bin/python" -m pip install -q -c constraints.txt omegaconf onnx pyyaml antlr4-python3-runtime==4.9.3 ml_dtypes protobuf
CONVERTER="$("$VENV/bin/python" -c 'import importlib.util, os; print(os.path.join(os.path.dirname(importlib.util.find_spec("crypten").origin), "nn", "onnx_converter.py"))')"
"$VENV/bin/python" - "$CONVERTER" <<'PY'
import re, sys
path = sys.argv[1]
text = open(path).read()
old = "from torch.onnx._internal.registration import registry"
new = "from torch.onnx._internal.torchscript_exporter.registration import registry"
if new not in text:
    text, n = re.subn(re.escape(old), new, text)
    if n == 0:
        sys.exit(f"setup-crypten: the registry import to patch was not found in {path}")
    open(path, "w").write(text)
PY
(cd "$(mktemp -d)" && "$VENV/bin/python" -c "import crypten; crypten.init(); print('CrypTen', crypten.__version__, 'ready')")

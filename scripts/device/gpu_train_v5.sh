#!/usr/bin/env bash
# A GPU phase for the default model (issue 12; scripts/device/gpu_train_v5.py says what it trains). On the device
# machine, from the repository root, with the diffusers wheel carried (its image has PyTorch but not diffusers, and
# nothing can be fetched there); made here once with:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux2014_x86_64 -d .whl diffusers==0.42.1
# then: device run, command "bash scripts/device/gpu_train_v5.sh", carry [".whl"], timeout_s 600; what comes back:
#   .venv/bin/python scripts/device/gpu_train_v5.py assemble FILES_AT runs/gpu-v5/pipe
# Dry run here, on the CPU, at a tiny size (the same code path, PyAV hidden as on the device):
#   bash scripts/device/gpu_train_v5.sh --quick
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "${1:-}" = "--quick" ]; then
  PY=${PY:-.venv/bin/python}
  OUT=${OUT:-$(mktemp -d)}
  WORK=$(mktemp -d)/work
  PYTHONPATH="scripts/device/stubs:src" exec "$PY" scripts/device/gpu_train_v5.py train --quick --minutes 1.5 \
    --work "$WORK" --out "$OUT"
fi
[ -d .whl ] && python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
export PYTHONUNBUFFERED=1
PYTHONPATH="scripts/device/stubs:src:/tmp/site" exec timeout 540 python3 scripts/device/gpu_train_v5.py train \
  --minutes 7 --out "${OUT:?the device tool sets OUT}"

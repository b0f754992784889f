#!/usr/bin/env bash
# A GPU phase for the default model (issue 12; scripts/device/gpu_train_v5.py says what it trains). On the device
# machine: device run, command "bash scripts/device/gpu_train_v5.sh", carry [".whl"] (see scripts/device/env.sh),
# timeout_s 600; then here, with what came back:
#   .venv/bin/python scripts/device/gpu_train_v5.py assemble FILES_AT runs/gpu-v5/pipe
# Dry run here, on the CPU, at a tiny size (the same code path, PyAV hidden as on the device):
#   bash scripts/device/gpu_train_v5.sh --quick
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/device/env.sh
if [ "${1:-}" = "--quick" ]; then
  OUT=${OUT:-$(mktemp -d)}
  PYTHONPATH="scripts/device/stubs:src${PYTHONPATH:+:$PYTHONPATH}" exec "$PY" scripts/device/gpu_train_v5.py train --quick --minutes 1.5 \
    --work "$(mktemp -d)/work" --out "$OUT"
fi
exec timeout 540 "$PY" scripts/device/gpu_train_v5.py train --minutes 7 --out "${OUT:?the device tool sets OUT}"

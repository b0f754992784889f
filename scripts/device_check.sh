#!/usr/bin/env bash
# The GPU check (issue 14): one table for the official-size UNet and the whole pipeline on one accelerator.
# On the device machine, from the repository root (installs torch and the package first if needed):
#   bash scripts/device_check.sh            # prints the table; also $OUT/device_check.json when $OUT is set
# Dry run of the same steps at a tiny size on the CPU:  bash scripts/device_check.sh --quick
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/device/env.sh  # on the device: its own PyTorch, the carried diffusers wheel (carry [".whl"])
exec timeout 480 "$PY" scripts/device_check.py --json "${OUT:-/tmp}/device_check.json" "$@"

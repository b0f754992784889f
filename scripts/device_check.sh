#!/usr/bin/env bash
# The GPU check (issue 14): one table for the official-size UNet and the whole pipeline on one accelerator.
# On the device machine, from the repository root (installs torch and the package first if needed):
#   bash scripts/device_check.sh            # prints the table; also $OUT/device_check.json when $OUT is set
# Dry run of the same steps at a tiny size on the CPU:  bash scripts/device_check.sh --quick
set -euo pipefail
PY=${PY:-.venv/bin/python}
if [ ! -x "$PY" ]; then
  python3 -m venv .venv && .venv/bin/pip install -q torch==2.13.0 && .venv/bin/pip install -q -e .
fi
exec timeout 480 "$PY" scripts/device_check.py --json "${OUT:-/tmp}/device_check.json" "$@"

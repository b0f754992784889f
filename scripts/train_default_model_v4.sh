#!/usr/bin/env bash
# The default model v4 campaign (issue 12): run from the repository root; work files go to runs/default-v4/.
# Every session: train in the background on one thread, resuming from the committed snapshot, then commit a new one:
#   bash scripts/train_default_model_v4.sh            # trains until stopped (Ctrl-C or kill); checkpoints every 250
#   m3ddm train --snapshot runs/default-v4/unet-decay training/default-v4   # before the session ends; commit it
set -euo pipefail
export OMP_NUM_THREADS=1
PY=${PY:-.venv/bin/python}
M3DDM=${M3DDM:-.venv/bin/m3ddm}
mkdir -p runs/default-v4
# 1. Clips (synthetic pans over every offline picture; bigbuckbunny 0-99 and carphone; bikes.mp4 held out).
[ -d runs/default-v4/data/train ] || "$PY" scripts/default_model_v4.py data runs/default-v4/data
# 2. The codec: committed in training/default-v4/vae (made once from ../shared/weights/taef2 by
#    "$PY" scripts/default_model_v4.py codec ../shared/weights/taef2 runs/default-v4/data training/default-v4/vae).
# 3. The UNet: resume this session's checkpoints, else warm-start from the committed snapshot (SNAPSHOT: another one,
#    e.g. training/default-v4-relative, phase 5's end).
"$M3DDM" train --config src/m3ddm/configs/default-v4.yaml --resume --warm-start "${SNAPSHOT:-training/default-v4}"

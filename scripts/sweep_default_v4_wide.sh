#!/usr/bin/env bash
# The third rule's sweep (model card, 2026-12-07): checkpoint x working size x strength on val-wide.
#   bash scripts/sweep_default_v4_wide.sh STEP     # STEP: the newest checkpoint when the sweep starts
# Reports go to runs/default-v4/wide-sweep/<step>-<size>-<strength>/report.md.
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
M3DDM=${M3DDM:-.venv/bin/m3ddm}
STEP=$(printf "%08d" "$1")
NEW=runs/default-v4/pipe-$STEP
[ -d "$NEW" ] || .venv/bin/python scripts/default_model_v4.py export "runs/default-v4/unet/checkpoints/step-$STEP" \
    training/default-v4/vae "$NEW" default_size=128 default_strength=0.3 default_noise_share=0.5
for model in src/m3ddm/weights/default "$NEW"; do
  name=$([ "$model" = "$NEW" ] && echo "$1" || echo 24500)
  for size in 128 192 256; do
    for strength in 0.2 0.3; do
      out=runs/default-v4/wide-sweep/$name-$size-$strength
      [ -f "$out/results.json" ] && continue
      "$M3DDM" evaluate --data runs/default-v4/data/val-wide --method "m3ddm:$model" --ratio 0.25 \
        --direction horizontal --no-fvd --no-visuals --option size=$size --option strength=$strength \
        --option noise_share=0.5 --out "$out" > "$out.log" 2>&1
      echo "$name $size $strength: $(grep -m1 'region PSNR' "$out.log" || true)"
    done
  done
done

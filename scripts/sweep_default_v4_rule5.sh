#!/usr/bin/env bash
# The fifth rule's sweep (model card, 2026-12-07): checkpoint {31750, STEP} x strength {0.2, 0.3} on val-wide at the
# shipped pipeline settings (128 px, noise share 0.5, pre-fill propagate, steady 4).
#   bash scripts/sweep_default_v4_rule5.sh STEP     # STEP: the newest checkpoint when the sweep starts
# Reports go to runs/default-v4/wide-sweep5/<step>-<strength>/report.md; table: python scripts/sweep_table.py DIR.
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
M3DDM=${M3DDM:-.venv/bin/m3ddm}
STEP=$(printf "%08d" "$1")
NEW=runs/default-v4/pipe-$STEP
[ -d "$NEW" ] || .venv/bin/python scripts/default_model_v4.py export "runs/default-v4/unet/checkpoints/step-$STEP" \
    training/default-v4/vae "$NEW" default_size=128 default_strength=0.2 default_noise_share=0.5 \
    default_prefill=propagate default_steady=4
mkdir -p runs/default-v4/wide-sweep5
for model in runs/default-v4/ship-31750 "$NEW"; do
  name=$([ "$model" = "$NEW" ] && echo "$1" || echo 31750)
  for strength in 0.2 0.3; do
    out=runs/default-v4/wide-sweep5/$name-$strength
    [ -f "$out/results.json" ] && continue
    "$M3DDM" evaluate --data runs/default-v4/data/val-wide --method "m3ddm:$model" --ratio 0.25 \
      --direction horizontal --no-fvd --no-visuals --option size=128 --option strength=$strength \
      --option noise_share=0.5 --option prefill=propagate --option steady=4 --out "$out" > "$out.log" 2>&1
    echo "$name $strength: $(grep -m1 'region PSNR' "$out.log" || true)"
  done
done

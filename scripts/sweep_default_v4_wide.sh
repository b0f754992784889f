#!/usr/bin/env bash
# A checkpoint x working size x strength sweep on val-wide (the model card's third and fifth rules):
#   bash scripts/sweep_default_v4_wide.sh STEP     # STEP: the newest checkpoint when the sweep starts
# The third rule's sweep (2026-12-07, against the then-shipped 24500, TELEA pre-fill):
#   bash scripts/sweep_default_v4_wide.sh 31750
# The fifth rule's (against 31750, the propagate pre-fill, steady 4, 128 px only):
#   BASE=runs/default-v4/ship-31750 BASE_NAME=31750 SIZES=128 OUT=runs/default-v4/wide-sweep5 \
#   SETTINGS="default_prefill=propagate default_steady=4" bash scripts/sweep_default_v4_wide.sh 46750
# Reports go to $OUT/<step>-<size>-<strength>/report.md; table: python scripts/sweep_table.py $OUT.
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
M3DDM=${M3DDM:-.venv/bin/m3ddm}
BASE=${BASE:-src/m3ddm/weights/default}  # the shipped model when the sweep starts
BASE_NAME=${BASE_NAME:-24500}
SIZES=${SIZES:-128 192 256}
OUT=${OUT:-runs/default-v4/wide-sweep}
SETTINGS=${SETTINGS:-}  # pipeline settings of the candidates (model_index keys), besides size, strength, noise share
STEP=$(printf "%08d" "$1")
NEW=runs/default-v4/pipe-$STEP
CHECKPOINT=runs/default-v4/unet-decay/checkpoints/step-$STEP  # the decay phase (after 58500), else the constant one
[ -d "$CHECKPOINT" ] || CHECKPOINT=runs/default-v4/unet/checkpoints/step-$STEP
# shellcheck disable=SC2086  # SETTINGS is a list of KEY=VALUE words
[ -d "$NEW" ] || .venv/bin/python scripts/default_model_v4.py export "$CHECKPOINT" \
    training/default-v4/vae "$NEW" default_size=128 default_strength=0.2 default_noise_share=0.5 $SETTINGS
options=()
for setting in $SETTINGS; do options+=(--option "${setting#default_}"); done
mkdir -p "$OUT"
for model in "$BASE" "$NEW"; do
  name=$([ "$model" = "$NEW" ] && echo "$1" || echo "$BASE_NAME")
  for size in $SIZES; do
    for strength in 0.2 0.3; do
      out=$OUT/$name-$size-$strength
      [ -f "$out/results.json" ] && continue
      "$M3DDM" evaluate --data runs/default-v4/data/val-wide --method "m3ddm:$model" --ratio 0.25 \
        --direction horizontal --no-fvd --no-visuals --option size=$size --option strength=$strength \
        --option noise_share=0.5 "${options[@]}" --out "$out" > "$out.log" 2>&1
      echo "$name $size $strength: $(grep -m1 'region PSNR' "$out.log" || true)"
    done
  done
done

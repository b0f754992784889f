"""The final, inference-ready output folder of a training run.

``<out>/unet``       the UNet (``save_pretrained``); holds the **EMA** weights when EMA is on, else the raw ones
``<out>/vae``        the codec (``LatentCodec.save_pretrained``)
``<out>/scheduler``  a scheduler config on the training schedule (what inference samples with)
``<out>/training_config.yaml``  the resolved config of the run
``<out>/model_index.json``  the pipeline settings, so ``<out>`` loads with ``m3ddm outpaint --model <out>``
The raw (non-EMA) weights stay available in the last checkpoint under ``<out>/checkpoints``.
Each part is written to a temporary folder and renamed, so a crash never leaves a half-written export.
"""

from __future__ import annotations

import os
from pathlib import Path

from m3ddm.schedule import PAPER_SCHEDULE, NoiseSchedule
from m3ddm.training.objective import inference_scheduler
from m3ddm.utils.atomic import atomic_path


def export_model(output_dir: str | os.PathLike, unet, codec, config_yaml: str, ema=None,
                 num_global_frames: int = 16, schedule: NoiseSchedule = PAPER_SCHEDULE,
                 pipeline_settings: dict | None = None) -> Path:
    """Write the inference folder. With ``ema``, its weights are copied INTO ``unet`` first (no second copy of
    a large model in memory): call this when training is over."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if ema is not None:
        ema.copy_to(unet)
    with atomic_path(out / "unet") as tmp:
        unet.save_pretrained(tmp, safe_serialization=True)
    with atomic_path(out / "vae") as tmp:
        codec.save_pretrained(tmp)
    with atomic_path(out / "scheduler") as tmp:
        inference_scheduler(schedule).save_pretrained(tmp)
    with atomic_path(out / "training_config.yaml") as tmp:
        tmp.write_text(config_yaml)
    # Written last: a folder with model_index.json is complete. Global frames enter as our training feeds them.
    from m3ddm.pipeline import M3DDMPipeline

    pipe = M3DDMPipeline(unet, codec.vae, inference_scheduler(schedule), global_frames="canvas",
                         num_global_frames=num_global_frames, **(pipeline_settings or {}))
    with atomic_path(out / "model_index.json") as tmp:
        tmp.write_text(pipe.to_json_string())
    return out

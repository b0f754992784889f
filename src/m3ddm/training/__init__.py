"""Training M3DDM by mask modeling (paper section 3.2): data, mask plans, the objective and the accelerate loop.

Entry points: ``load_config`` / ``config_from_dict`` (YAML configs, shipped ones by name: ``tiny-cpu``,
``official``), ``train`` (the loop; exports ``unet/``, ``vae/``, ``scheduler/`` for inference),
``sample_mask_plan`` and ``plan_pixel_mask`` (the masking recipe), ``synthetic_video`` (test videos).
The loop itself is imported lazily so ``import m3ddm.training`` stays light.
"""

from m3ddm.training.config import TrainConfig, config_from_dict, load_config
from m3ddm.training.masking import MaskPlan, MaskProbabilities, plan_pixel_mask, sample_mask_plan
from m3ddm.training.synthetic import iter_synthetic_videos, synthetic_video, write_synthetic_videos


def train(*args, **kwargs):
    """See ``m3ddm.training.loop.train``."""
    from m3ddm.training.loop import train as _train

    return _train(*args, **kwargs)


__all__ = [
    "MaskPlan",
    "MaskProbabilities",
    "TrainConfig",
    "config_from_dict",
    "iter_synthetic_videos",
    "load_config",
    "plan_pixel_mask",
    "sample_mask_plan",
    "synthetic_video",
    "train",
    "write_synthetic_videos",
]

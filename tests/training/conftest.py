"""Shared pieces for the training tests: tiny configs that train in seconds on 2 CPU cores."""

from __future__ import annotations

import copy

import pytest
import torch

# 64x64 pixels -> 8x8 latents with the tiny codec (the UNet needs latent sides that are multiples of 8),
# 4-frame clips, 2 global frames, the tiny UNet preset: a training step costs a fraction of a second.
TINY = {
    "data": {
        "root": None,
        "synthetic": {"num_videos": 4, "num_frames": 12, "height": 80, "width": 80, "fps": 24.0, "seed": 0},
        "num_frames": 4,
        "size": [64, 64],
        "stride_range": [1, 3],
        "num_global_frames": 2,
        "num_workers": 0,
    },
    "model": {"variant": "m3ddm", "init": "scratch", "preset": "tiny"},
    "codec": {"path": None, "seed": 0, "sample_posterior": True},
    "optim": {"learning_rate": 1e-3, "lr_scheduler": "constant", "lr_warmup_steps": 0},
    "train": {
        "seed": 0, "max_steps": 4, "batch_size": 1, "cpu": True, "ema_decay": 0.9, "checkpoint_every": 2,
        "checkpoints_to_keep": 5, "log_every": 1, "sample_every": 0,
    },
}


@pytest.fixture(autouse=True)
def one_thread():
    # On a shared 2-core machine one torch thread is several times faster than two (no OpenMP spinning).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def merge(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@pytest.fixture
def tiny_dict():
    """``tiny_dict(overrides)`` -> TINY merged with overrides, as plain data (for YAML files)."""
    return lambda overrides=None: merge(TINY, overrides or {})


@pytest.fixture
def tiny_config():
    """``tiny_config(overrides)`` -> a validated TrainConfig built from TINY plus overrides."""
    from m3ddm.training.config import config_from_dict

    def make(overrides: dict | None = None):
        return config_from_dict(merge(TINY, overrides or {}))

    return make

"""Models and videos for the benchmarks: a seeded random tiny pipeline, a synthetic source, region PSNR."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from m3ddm.errors import UserError
from m3ddm.utils.pixels import psnr

TINY = "tiny"


def tiny_pipeline(default_size: int = 128, default_steps: int = 25, seed: int = 0, **settings):
    """A random tiny pipeline (tiny UNet and codec) with the production defaults (dpmpp, 25 steps): the one model
    that the benchmarks and the tests (at 96 pixels and 2 steps) run without weights.

    Attention and transformer output projections are made non-zero (they start at zero), so every guidance
    branch, global frame and attention backend actually changes the result: the comparisons then mean something.
    ``settings`` are further pipeline settings (``model_index.json`` keys such as ``default_guidance``).
    """
    import torch

    from m3ddm.codecs import LatentCodec
    from m3ddm.models import M3DDMUNet
    from m3ddm.pipeline import M3DDMPipeline
    from m3ddm.sampling import make_scheduler

    torch.manual_seed(seed)
    unet = M3DDMUNet.from_preset("tiny").eval()
    with torch.no_grad():
        for name, p in unet.named_parameters():
            if "to_out" in name or "proj_out" in name:
                p.normal_(0, 0.2)
    codec = LatentCodec.tiny(seed).vae.eval()
    return M3DDMPipeline(unet=unet, vae=codec, scheduler=make_scheduler("dpmpp"), default_size=default_size,
                         default_scheduler="dpmpp", default_steps=default_steps, **settings)


def prepare_model(model: str, folder: Path) -> str:
    """A pipeline folder for ``model``: "tiny" is saved under ``folder``; anything else must be a folder."""
    if model == TINY:
        tiny_pipeline().save_pretrained(folder)
        return str(folder)
    path = Path(model)
    if not (path / "model_index.json").is_file():
        raise UserError(f"--model must be 'tiny' or a pipeline folder with model_index.json, got {model}")
    return str(path)


_LOADED: dict[tuple[str, str], object] = {}


def load_pipeline(model_dir: str, device: str = "cpu", reuse: bool = False):
    """The pipeline in ``model_dir``; ``reuse`` keeps the last one loaded (runs in one process share it)."""
    from m3ddm.pipeline import M3DDMPipeline

    key = (str(Path(model_dir).resolve()), device)
    if reuse and key in _LOADED:
        return _LOADED[key]
    pipe = M3DDMPipeline.from_folder(model_dir)
    pipe.unet.eval()
    pipe.vae.eval()
    pipe = pipe.to(device) if device != "cpu" else pipe
    _LOADED.clear()
    if reuse:
        _LOADED[key] = pipe
    return pipe


def synthetic_frames(num_frames: int, width: int, height: int) -> np.ndarray:
    """The smooth moving test pattern, ``[F, H, W, 3]`` uint8."""
    from m3ddm.io.samples import pattern_frame

    return np.stack([pattern_frame(i, width, height) for i in range(num_frames)])


def load_frames(path: str, max_frames: int) -> tuple[np.ndarray, float]:
    """The first ``max_frames`` frames of a video file or frame folder, and its frame rate."""
    from m3ddm.io import open_video_source

    source = open_video_source(path)
    frames = []
    for frame in source.iter_frames():
        frames.append(frame)
        if len(frames) == max_frames:
            break
    return np.stack(frames), float(source.info.fps)


def region_psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> tuple[float, int]:
    """(PSNR in dB, max absolute difference) of two uint8 videos ``[F, H, W, 3]`` over the pixels where ``mask``
    (``H x W``, non-zero = counted) is set; PSNR is inf for identical inputs."""
    if a.shape != b.shape:
        raise ValueError(f"videos of different shapes: {a.shape} vs {b.shape}")
    diff = a.astype(np.float64) - b.astype(np.float64)
    if mask is not None:
        diff = diff[:, mask.astype(bool)]
    if diff.size == 0:
        raise ValueError("the mask selects no pixel")
    mse = float(np.mean(diff**2))
    return psnr(mse), int(np.abs(diff).max())

"""Sample previews while training: a short conditional DDIM denoise of a fixed validation clip.

This is a monitoring aid, not the inference pipeline: one window, no classifier-free guidance, DDIM with the
training betas. The known region is pasted back from the input, as the pipeline does.
"""

from __future__ import annotations

import numpy as np
import torch

from m3ddm.conditioning import model_input, predict_relative
from m3ddm.sampling import make_scheduler
from m3ddm.schedule import PAPER_SCHEDULE, NoiseSchedule
from m3ddm.training.objective import ModelBatch
from m3ddm.utils.pixels import signed_to_uint8


@torch.no_grad()
def denoise_preview(unet, codec, mb: ModelBatch, steps: int = 20, seed: int = 0,
                    schedule: NoiseSchedule = PAPER_SCHEDULE) -> torch.Tensor:
    """Generated clip for the first item of ``mb``: pixels in [-1, 1] ``[F, 3, H, W]``."""
    scheduler = make_scheduler("ddim", schedule.config())
    scheduler.set_timesteps(steps)
    z0 = mb.latents[:1]
    gen = torch.Generator().manual_seed(seed)
    latents = torch.randn(z0.shape, generator=gen).to(z0)
    context = None
    if unet.config.global_context and mb.global_latents is not None:
        context = unet.encode_global(mb.global_latents[: mb.num_global], num_global=mb.num_global)
    base = None if mb.base is None else mb.base[:1]
    for t in scheduler.timesteps:
        eps = predict_relative(
            lambda noisy, t=t: unet.denoise(model_input(noisy, mb.context[:1], mb.mask[:1]), int(t), mb.fps[:1],
                                            context).float(),
            latents, base, scheduler.alphas_cumprod[int(t)], scheduler.config.prediction_type)
        latents = scheduler.step(eps, t, latents).prev_sample
    mask = mb.mask[:1]
    latents = mask * latents + (1 - mask) * z0  # known latents back (guides and context)
    return codec.decode(latents[0].transpose(0, 1)).float()


def preview_grid(original: torch.Tensor, masked: torch.Tensor, generated: torch.Tensor) -> np.ndarray:
    """Rows = input, masked input, generated; columns = frames. Inputs ``[F, 3, H, W]`` in [-1, 1]; returns
    uint8 ``[3, 3H, F*W]`` (CHW, for TensorBoard)."""
    rows = []
    for clip in (original, masked, generated):
        rows.append(torch.cat(list(clip.clamp(-1, 1)), dim=-1))  # [3, H, F*W]
    grid = torch.cat(rows, dim=-2)
    return np.ascontiguousarray(np.moveaxis(signed_to_uint8(grid), -1, 0))

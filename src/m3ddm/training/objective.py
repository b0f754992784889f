"""The training objective: batch -> 9-channel UNet input, noise, timesteps -> epsilon MSE.

* Noise schedule: ``m3ddm.schedule`` (the paper's SD betas, or zero terminal SNR with v-prediction), the schedule
  inference samples with; ``x_t`` comes from diffusers' ``DDPMScheduler.add_noise``.
* Latents are the codec's *scaled* latents (``LatentCodec.encode`` applies ``scaling_factor``).
* Loss: plain epsilon MSE over every latent position, known and masked alike, unweighted (as the paper's eq. 3);
  or, with ``prediction_type="v_prediction"``, the same MSE on v (diffusers' ``get_velocity``).
* Conditioning is built with ``m3ddm.conditioning`` so training and sampling agree exactly: masked-context
  latents = the codec's latents of the letterboxed frames (masked pixels = -1), guide frames carry their raw
  latent with mask 0, a dropped context is the black-frame latent with an all-ones mask (guides kept), and a
  dropped global prompt is zero latents that still go through the global encoder. With ``fill``
  (``model.hidden_context: smooth``) the hidden cells of the context hold a smooth fill from the known part
  (``m3ddm.conditioning.fill_hidden``) instead of the black frame's latent: of the latent cells with a latent cache
  (the global frames too), of the letterboxed pixels before encoding without one (the pipeline's latent_prefill).
  With ``relative`` (``model.relative_to_context``) the diffusion runs on ``x0 - context`` (the conditional context,
  guides put in, even where the context is dropped), as ``m3ddm.sampling`` feeds such a model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from einops import rearrange
from torch import nn

from m3ddm.conditioning import fill_hidden, local_condition, model_input, null_condition
from m3ddm.sampling import make_scheduler
from m3ddm.schedule import NUM_TRAIN_TIMESTEPS, PAPER_SCHEDULE, NoiseSchedule
from m3ddm.training.masking import latent_mask_from_pixels
from m3ddm.utils.pixels import to_signed


def training_noise_scheduler(schedule: NoiseSchedule = PAPER_SCHEDULE) -> DDPMScheduler:
    return DDPMScheduler.from_config(schedule.config())


def inference_scheduler(schedule: NoiseSchedule = PAPER_SCHEDULE) -> SchedulerMixin:
    """The scheduler written next to an exported model, on the training schedule (which every sampler reads from
    it): SD's PNDM for the paper's schedule, DDIM for zero terminal SNR (which PNDM cannot sample)."""
    return make_scheduler("ddim" if schedule.rescale_betas_zero_snr else "pndm", schedule.config())


def step_generator(seed: int, step: int, micro_step: int, rank: int) -> torch.Generator:
    """A fresh CPU generator for one micro-step of one process: noise never depends on history."""
    state = np.random.SeedSequence([seed, step, micro_step, rank, 0x7EA1]).generate_state(2, dtype=np.uint64)
    return torch.Generator().manual_seed(int(state[0] >> np.uint64(1)))


@dataclass
class ModelBatch:
    """What the UNet sees for one micro-batch (all on the training device)."""

    latents: torch.Tensor  # z0, scaled [B, C, F, h, w]
    context: torch.Tensor  # [B, C, F, h, w]
    mask: torch.Tensor  # [B, 1, F, h, w]
    fps: torch.Tensor  # int64 [B]
    global_latents: torch.Tensor | None  # [B * g, C, h, w], dropped rows zeroed
    num_global: int
    base: torch.Tensor | None = None  # relative models: the conditional context the diffusion is relative to


@torch.no_grad()
def build_model_batch(
    batch: dict[str, torch.Tensor],
    codec,
    black_latent: torch.Tensor,
    *,
    device: torch.device,
    generator: torch.Generator | None = None,
    sample_posterior: bool = False,
    encode_batch_size: int | None = None,
    fill: bool = False,
    relative: bool = False,
) -> ModelBatch:
    """Turn a DataLoader batch (pixels from ``ClipDataset`` or latents from ``LatentClipDataset``) into UNet
    inputs. ``black_latent`` ``[C, h, w]`` is the latent of an all-black (-1) frame. ``fill``: the hidden cells of
    the context (and, for latent batches, of the global frames) filled from the known part rather than black: in
    latent space for latent batches, in pixels before encoding for pixel batches.
    ``relative``: the batch carries the conditional context as the base of a relative model."""
    guides = batch["guides"].to(device)
    drop_context = batch["drop_context"].to(device)
    drop_global = batch["drop_global"].to(device)
    fps = batch["fps"].to(device).round().long()
    black = black_latent.to(device, torch.float32)

    posterior_gen = generator
    if sample_posterior and generator is not None and torch.device(device).type != generator.device.type:
        # torch draws on a device only with a generator of that device: derive one, deterministically.
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        posterior_gen = torch.Generator(device=device).manual_seed(seed)

    def encode(pixels: torch.Tensor) -> torch.Tensor:
        return codec.encode(pixels, sample=sample_posterior, generator=posterior_gen,
                            batch_size=encode_batch_size).float()

    if "latents" in batch:  # latent cache: context masked in latent space
        z0 = batch["latents"].to(device, torch.float32)
        lmask = batch["latent_mask"].to(device, torch.float32)[:, :, None]  # [B, 1, 1, h, w]
        masked = torch.where(lmask > 0.5, black[None, :, None], z0)
        globals_ = batch.get("global_latents")
        global_latents = None if globals_ is None else globals_.to(device, torch.float32).flatten(0, 1)
        if fill:
            f = z0.shape[2]
            hidden = lmask.repeat_interleave(f, 0)[:, :, 0]  # [(B F), 1, h, w]
            masked = rearrange(fill_hidden(rearrange(masked, "b c f h w -> (b f) c h w"), hidden),
                               "(b f) c h w -> b c f h w", f=f)
            if global_latents is not None:
                g = global_latents.shape[0] // z0.shape[0]
                global_latents = fill_hidden(global_latents, lmask.repeat_interleave(g, 0)[:, :, 0])
    else:
        frames = batch["frames"].to(device)
        b, f = frames.shape[:2]
        pixels = to_signed(frames).flatten(0, 1)  # [B*F, 3, H, W]
        pixel_mask = batch["mask"].to(device, torch.float32)  # [B, 1, H, W]
        frame_mask = pixel_mask.repeat_interleave(f, dim=0)  # [B*F, 1, H, W]
        letterboxed = torch.where(frame_mask > 0.5, torch.full_like(pixels, -1.0), pixels)
        if fill:  # the pre-filled canvas the pipeline encodes for latent_prefill, with a smooth fill of the pixels
            letterboxed = fill_hidden(letterboxed, frame_mask)
        both = encode(torch.cat([pixels, letterboxed]))
        z0 = rearrange(both[: b * f], "(b f) c h w -> b c f h w", b=b)
        masked = rearrange(both[b * f:], "(b f) c h w -> b c f h w", b=b)
        factor = pixels.shape[-1] // z0.shape[-1]
        lmask = latent_mask_from_pixels(pixel_mask, factor)[:, :, None]  # [B, 1, 1, h, w]
        global_latents = None
        if "global_frames" in batch:
            global_latents = encode(to_signed(batch["global_frames"].to(device)).flatten(0, 1))

    context, mask = local_condition(masked, lmask, z0, guides)
    base = context if relative else None
    null_context, null_mask = null_condition(black, z0.shape, z0, guides)
    dropped = drop_context[:, None, None, None, None]
    context = torch.where(dropped, null_context, context)
    mask = torch.where(dropped, null_mask, mask.to(null_mask))

    num_global = 0
    if global_latents is not None:
        b = z0.shape[0]
        num_global = global_latents.shape[0] // b
        keep = (~drop_global).to(global_latents).repeat_interleave(num_global)[:, None, None, None]
        global_latents = global_latents * keep
    return ModelBatch(z0, context, mask, fps, global_latents, num_global, base)


class Denoiser(nn.Module):
    """The UNet behind one ``forward`` (so DDP sees every parameter use): global tokens, then the denoiser."""

    def __init__(self, unet: nn.Module):
        super().__init__()
        self.unet = unet

    def forward(self, sample, timestep, fps, global_latents=None, num_global: int = 0) -> torch.Tensor:
        context = None
        if self.unet.config.global_context:
            context = self.unet.encode_global(global_latents, num_global=num_global)
        return self.unet.denoise(sample, timestep, fps, context)


@dataclass
class NoiseDraw:
    noise: torch.Tensor
    timesteps: torch.Tensor


def draw_noise(
    shape: torch.Size, generator: torch.Generator, pool: NoiseDraw | None = None,
    max_timestep: int = NUM_TRAIN_TIMESTEPS, focus: tuple[Sequence[int], float] | None = None,
) -> NoiseDraw:
    """Epsilon and timesteps (uniform below ``max_timestep``) for a batch (CPU); from ``pool`` when given (fixed
    set, for overfit tests). ``focus`` = (timesteps, share): each sample takes one of those timesteps (equally
    likely) with probability share, a uniform one otherwise; the draws for the uniform part are unchanged."""
    b = shape[0]
    if pool is not None:
        pick = torch.randint(0, pool.noise.shape[0], (b,), generator=generator)
        return NoiseDraw(pool.noise[pick].clone(), pool.timesteps[pick].clone())
    timesteps = torch.randint(0, max_timestep, (b,), generator=generator)
    noise = torch.randn(shape, generator=generator)
    if focus is not None and focus[1] > 0:
        chosen, share = torch.tensor(list(focus[0])), focus[1]
        focused = torch.rand(b, generator=generator) < share
        pick = torch.randint(0, len(chosen), (b,), generator=generator)
        timesteps = torch.where(focused, chosen[pick], timesteps)
    return NoiseDraw(noise, timesteps)


def make_noise_pool(size: int, sample_shape: tuple[int, ...], seed: int) -> NoiseDraw:
    gen = torch.Generator().manual_seed(seed + 0x900D)
    timesteps = torch.randint(0, NUM_TRAIN_TIMESTEPS, (size,), generator=gen)
    return NoiseDraw(torch.randn((size, *sample_shape), generator=gen), timesteps)


def diffusion_loss(
    model: nn.Module, scheduler: DDPMScheduler, mb: ModelBatch, draw: NoiseDraw, min_snr_gamma: float | None = None
) -> torch.Tensor:
    """MSE over all latent positions (float32) on epsilon, or on v for a v-prediction scheduler.

    ``min_snr_gamma`` weights each sample by min(SNR, gamma) / SNR (epsilon) or / (SNR + 1) (v), the Min-SNR
    weighting of Hang et al. 2023; None = unweighted, as the paper. With v on zero-terminal-SNR betas that weight is 0
    at the last timestep, where sampling from noise starts (it cost 1 dB from noise in the default model's recipe
    ablation, so the default model trains unweighted)."""
    device = mb.latents.device
    noise = draw.noise.to(device)
    timesteps = draw.timesteps.to(device)
    latents = mb.latents if mb.base is None else mb.latents - mb.base  # a relative model's diffusion
    noisy = scheduler.add_noise(latents, noise, timesteps)
    if scheduler.config.prediction_type == "v_prediction":
        target = scheduler.get_velocity(latents, noise, timesteps)
    else:
        target = noise
    sample = model_input(noisy, mb.context, mb.mask)
    prediction = model(sample, timesteps, mb.fps, mb.global_latents, mb.num_global)
    if min_snr_gamma is None:
        return F.mse_loss(prediction.float(), target.float())
    per_sample = (prediction.float() - target.float()).pow(2).flatten(1).mean(1)
    alphas = scheduler.alphas_cumprod.to(device)[timesteps].float()
    snr = alphas / (1 - alphas).clamp_min(1e-8)
    denominator = snr + 1 if scheduler.config.prediction_type == "v_prediction" else snr.clamp_min(1e-8)
    weight = snr.clamp(max=min_snr_gamma) / denominator
    return (weight * per_sample).mean()

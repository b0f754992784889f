"""Denoising a batch of windows with two-condition classifier-free guidance (paper eq. 4).

    eps = e(0,0) + s1 * (e(c1,0) - e(0,0)) + s2 * (e(c1,c2) - e(c1,0))

c1 is the local context (masked-context latents + mask, guide frames included), c2 the global-frame tokens. The
official driver evaluates four branches and discards one; we evaluate only the branches whose coefficient is not
zero: three for s1 = 2, s2 = 4; two when s1 = 1; one when s1 = s2 = 1. Null local context = the black-frame latent
with an all-ones mask, guides kept (``m3ddm.conditioning``); null global context = the encoder's response to zero
latents, which is one extra row of the shared ``GlobalContext`` (no copy per branch or frame).

The sampler never reads files or decodes: it takes latents and returns latents. All randomness comes from one
``torch.Generator`` per window, so batching windows or resuming cannot change a result.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler, PNDMScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from m3ddm.conditioning import model_input, predict_relative
from m3ddm.errors import UserError
from m3ddm.models.attention import GlobalContext
from m3ddm.schedule import PAPER_SCHEDULE, NoiseSchedule

SCHEDULERS: dict[str, tuple[type[SchedulerMixin], dict]] = {
    "pndm": (PNDMScheduler, dict(skip_prk_steps=True, set_alpha_to_one=False)),
    "ddim": (DDIMScheduler, dict(set_alpha_to_one=False, clip_sample=False)),
    "dpmpp": (DPMSolverMultistepScheduler, dict(algorithm_type="dpmsolver++", solver_order=2)),
    "euler": (EulerDiscreteScheduler, dict()),
}


def make_scheduler(name: str, base: SchedulerMixin | dict | None = None) -> SchedulerMixin:
    """A diffusers scheduler by short name, on the noise schedule of ``base`` (a model's scheduler or its config:
    betas, prediction type, zero terminal SNR, spacing), or on the paper's schedule without one."""
    if name not in SCHEDULERS:
        raise UserError(f"unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)}")
    cls, extra = SCHEDULERS[name]
    schedule = PAPER_SCHEDULE
    if base is not None:
        schedule = NoiseSchedule.from_config(dict(base.config if hasattr(base, "config") else base))
    config = schedule.config()
    if schedule.rescale_betas_zero_snr and name == "pndm":
        raise UserError("this model was trained with a zero-terminal-SNR schedule, which PNDM cannot sample; "
                        "use --scheduler dpmpp, ddim or euler")
    if not schedule.rescale_betas_zero_snr:
        config.pop("rescale_betas_zero_snr")  # PNDM has no such option
    return cls.from_config({**config, **extra})


@dataclass(frozen=True)
class Guidance:
    """Guidance scales: s1 for the local context, s2 for the global frames (paper defaults 2 and 4)."""

    context_scale: float = 2.0
    global_scale: float = 4.0

    def coefficients(self, has_global: bool) -> dict[str, float]:
        """Weights of the branches "null" = e(0,0), "local" = e(c1,0), "full" = e(c1,c2); zeros dropped."""
        s1, s2 = self.context_scale, self.global_scale
        if has_global:
            weights = {"null": 1.0 - s1, "local": s1 - s2, "full": s2}
        else:  # no global prompt (msdm/sdm models): e(c1,c2) is e(c1,0)
            weights = {"null": 1.0 - s1, "local": s1}
        return {k: v for k, v in weights.items() if v != 0.0}


@dataclass
class WindowBatch:
    """The conditions of W windows of F frames (latents ``[W, C, F, h, w]``)."""

    context: torch.Tensor  # masked-context latents with guides put in (conditional branch)
    mask: torch.Tensor  # [W, 1, F, h, w], 1 = to generate, 0 at guides
    null_context: torch.Tensor  # black-frame latent with guides put in
    null_mask: torch.Tensor  # all ones but guides
    init_latents: torch.Tensor  # what the noise is added to (pre-filled latents, or zeros for pure noise)
    fps: torch.Tensor  # [W]
    context_rows: torch.Tensor | None = None  # [W] row of GlobalContext.tokens holding each window's real context
    # a model that denoises relative to its context (m3ddm.conditioning.to_relative): what it is relative to, the
    # conditional context with guides put in; None = an ordinary model
    base: torch.Tensor | None = None

    @property
    def num_windows(self) -> int:
        return self.context.shape[0]


def guided_epsilon(
    unet,
    latents: torch.Tensor,
    timestep: torch.Tensor,
    batch: WindowBatch,
    guidance: Guidance,
    context: GlobalContext | None = None,
    null_row: int = 0,
    branches: Sequence[str] | None = None,
) -> torch.Tensor:
    """Eq. 4 from the branches with non-zero weight, evaluated in ONE UNet call (rows stacked branch-major).

    ``branches`` forces a branch set (e.g. all three or the official four for comparisons); their weights still
    come from ``guidance``.
    """
    has_global = context is not None and unet.config.global_context
    weights = guidance.coefficients(has_global)
    names = list(branches) if branches is not None else list(weights)
    w = batch.num_windows
    inputs, rows = [], []
    real_rows = batch.context_rows if batch.context_rows is not None else torch.full((w,), 1, dtype=torch.long)
    for name in names:
        if name in ("null", "null_full"):
            inputs.append(model_input(latents, batch.null_context, batch.null_mask))
        else:
            inputs.append(model_input(latents, batch.context, batch.mask))
        if name in ("null", "local"):
            rows.append(torch.full((w,), null_row, dtype=torch.long))
        else:
            rows.append(real_rows)
    sample = torch.cat(inputs)
    fps = batch.fps.repeat(len(names))
    if has_global:
        eps_all = unet.denoise(sample, timestep, fps, context, context_index=torch.cat(rows))
    else:
        eps_all = unet.denoise(sample, timestep, fps, None)
    chunks = dict(zip(names, eps_all.float().chunk(len(names)), strict=True))
    eps = sum(weights.get(name, 0.0) * chunks[name] for name in names if name in weights)
    return eps.to(latents.dtype)


def window_noise(
    shape: Sequence[int],
    generators: Sequence[torch.Generator],
    dtype=torch.float32,
    *,
    shared: torch.Tensor | None = None,
    share: float | Sequence[float] = 0.0,
) -> torch.Tensor:
    """One noise tensor per window from its own generator (batching-invariant), stacked on the batch axis.

    With ``share`` > 0, that fraction of the noise variance comes from ``shared`` (``[C, 1, h, w]``, one draw per
    video), the same in every frame and window: each element is still N(0, 1), but the frames start correlated,
    which is what keeps an image-to-image refinement from flickering (deterministic samplers map correlated starts
    to correlated results). ``share`` may be one number per window.
    """
    own = torch.cat([torch.randn((1, *shape[1:]), generator=g, dtype=dtype) for g in generators])
    shares = [share] * len(generators) if isinstance(share, int | float) else list(share)
    for value in shares:
        check_noise_share(value)
    if not any(shares):
        return own
    if shared is None:
        raise ValueError("a noise share above 0 needs the shared noise")
    def per_window(values: list[float]) -> torch.Tensor:
        return torch.tensor(values, dtype=own.dtype).view(-1, *([1] * (own.dim() - 1)))

    return (per_window([s ** 0.5 for s in shares]) * shared.to(own)[None]
            + per_window([(1.0 - s) ** 0.5 for s in shares]) * own)


def check_noise_share(share: float) -> None:
    """A user error unless ``share`` is in [0, 1) (1 would give every frame the same noise and no own part)."""
    if not 0.0 <= share < 1.0:
        raise UserError(f"noise share must be in [0, 1), got {share}")


def check_strength(strength: float, init: str) -> None:
    """A user error unless ``strength`` is in (0, 1] and, below 1, there is a pre-fill to start from."""
    if not 0.0 < strength <= 1.0:
        raise UserError(f"strength must be in (0, 1], got {strength}")
    if strength < 1.0 and init != "prefill":
        raise UserError("a strength below 1 needs init 'prefill' (there is nothing to start from otherwise)")


def steps_run(steps: int, strength: float = 1.0) -> int:
    """How many of ``steps`` denoising steps run at ``strength`` (at least one)."""
    return steps if strength >= 1.0 else max(1, round(strength * steps))


@torch.no_grad()  # a sampler never needs gradients (a graph over 50 steps would hold gigabytes)
def sample_windows(
    unet,
    scheduler: SchedulerMixin,
    batch: WindowBatch,
    *,
    steps: int,
    generators: Sequence[torch.Generator],
    guidance: Guidance = Guidance(),
    context: GlobalContext | None = None,
    null_row: int = 0,
    init: str = "prefill",
    strength: float = 1.0,
    official_compat: bool = False,
    branches: Sequence[str] | None = None,
    on_step: Callable[[int, int], None] | None = None,
    noise_share: float | Sequence[float] = 0.0,
    shared_noise: torch.Tensor | None = None,
    replace_known: bool = False,
) -> torch.Tensor:
    """Denoise W windows from noise to latents ``[W, C, F, h, w]``.

    init "prefill": start from the pre-filled latents noised to the first timestep (the official start);
    "noise": start from pure noise. ``official_compat`` reproduces the official PNDM start (spec 8.1): the first of
    the 51 PNDM timesteps is skipped, so 50 UNet calls begin at t = 961 with the PLMS warm-up quirk.
    ``strength`` < 1 (init "prefill" only) starts part-way, as image-to-image diffusion does: the pre-filled
    latents are noised to the timestep ``strength`` of the way up and only the last ``round(strength * steps)``
    steps run, so the result stays closer to the pre-fill and costs proportionally fewer UNet calls.
    ``noise_share`` of the starting noise's variance comes from ``shared_noise`` (see ``window_noise``).
    With ``batch.base`` the model is fed and read relative to it (``to_relative``/``from_relative``); the latents
    the scheduler steps stay ordinary ones.
    ``replace_known`` (RePaint-style, Lugmayr et al. 2022): after every step the known cells (mask 0: the known
    region and guide frames) are reset to the context latents noised to the next timestep with the start noise,
    and to the context itself at the end, so the generated cells are always denoised next to the true context.
    """
    if len(generators) != batch.num_windows:
        raise ValueError("one generator per window is required")
    scheduler = copy.deepcopy(scheduler)  # schedulers keep per-run state (PNDM/DPM history)
    scheduler.set_timesteps(steps)
    timesteps = scheduler.timesteps
    if official_compat:
        if not isinstance(scheduler, PNDMScheduler):
            raise UserError("--official-compat reproduces the official PNDM start: use the pndm scheduler")
        timesteps = timesteps[1:]
    check_strength(strength, init)
    if strength < 1.0:
        skip = len(timesteps) - steps_run(len(timesteps), strength)
        timesteps = timesteps[skip:]
        if hasattr(scheduler, "set_begin_index"):  # multistep solvers index their history from here
            scheduler.set_begin_index(skip * getattr(scheduler, "order", 1))
    device = batch.context.device
    noise = window_noise(batch.init_latents.shape, generators, shared=shared_noise, share=noise_share).to(device)
    if init == "prefill":
        latents = scheduler.add_noise(batch.init_latents.float(), noise, timesteps[:1])
    elif init == "noise":
        latents = noise * scheduler.init_noise_sigma
    else:
        raise ValueError(f"init must be 'prefill' or 'noise', got {init!r}")
    base = None if batch.base is None else batch.base.to(latents)
    for i, t in enumerate(timesteps):
        model_in = scheduler.scale_model_input(latents, t)
        eps = predict_relative(
            lambda noisy, t=t: guided_epsilon(unet, noisy, t, batch, guidance, context, null_row, branches),
            model_in, base, scheduler.alphas_cumprod[int(round(float(t)))], scheduler.config.prediction_type)
        latents = scheduler.step(eps, t, latents).prev_sample
        if replace_known:
            known = batch.context.float() if i + 1 == len(timesteps) else \
                scheduler.add_noise(batch.context.float(), noise, timesteps[i + 1: i + 2])
            latents = torch.where(batch.mask > 0.5, latents, known.to(latents))
        if on_step is not None:
            on_step(i + 1, len(timesteps))
    return latents

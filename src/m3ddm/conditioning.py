"""The UNet's local condition: masked-context latents and a latent mask, with guide frames, shared by training
and sampling so both build exactly the same 9-channel input.

Conventions (spec section 8): mask 1 = to generate, 0 = known. A *guide* frame (a raw training frame, or a frame
generated earlier in the coarse-to-fine plan) gives its full latent as context with mask 0. The *null* context
(classifier-free guidance, dropped with p1 in training) is the latent of an all-black frame with an all-ones mask,
guide frames kept.

A model may be trained with the hidden cells of its context filled from the known cells of the same frame rather
than black (``fill_hidden``; the pipeline's ``context_encoding: latent_fill``): then it sees the colours next to the
border where it paints, not only beside it.

Such a model may also denoise *relative to its context* (the pipeline's ``relative_to_context``): it sees and
predicts the diffusion of ``x0 - context`` (zero in the known cells, the border's departure from the smooth fill in
the hidden ones) rather than of ``x0``. Where it is unsure its estimate then falls back to the fill, the colours
next to the border, rather than to the training data's mean colour (a grey border from noise otherwise).
``to_relative`` and ``from_relative`` move the sampler's noisy latents and the model's prediction between the two.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def apply_guides(
    context: torch.Tensor, mask: torch.Tensor, guide_latents: torch.Tensor | None, guide_flags: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Put guide latents into ``context`` ``[B, C, F, h, w]`` and zero ``mask`` ``[B, 1, F, h, w]`` at guide frames.

    ``guide_flags`` is a bool tensor ``[B, F]``; ``guide_latents`` has the shape of ``context``.
    """
    if guide_flags is None or guide_latents is None or not bool(guide_flags.any()):
        return context, mask
    flags = guide_flags[:, None, :, None, None].to(context.device)
    context = torch.where(flags, guide_latents.to(context), context)
    mask = torch.where(flags, torch.zeros_like(mask), mask)
    return context, mask


# Jacobi sweeps on each level of the fill, coarse to fine: few are needed, each level starts close to its answer.
SWEEPS_PER_LEVEL = 16


def _relax(values: torch.Tensor, fixed: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
    """Jacobi sweeps towards the harmonic fill: the cells where ``fixed`` keep ``values``, the others the mean of
    their four neighbours (the canvas edge mirrored, so nothing leaks in from outside)."""
    filled = start
    for _ in range(SWEEPS_PER_LEVEL):
        padded = F.pad(filled, (1, 1, 1, 1), mode="replicate")
        neighbours = (padded[..., :-2, 1:-1] + padded[..., 2:, 1:-1] + padded[..., 1:-1, :-2]
                      + padded[..., 1:-1, 2:]) / 4
        filled = torch.where(fixed, values, neighbours)
    return filled


def fill_hidden(latents: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
    """``latents`` ``[N, C, h, w]`` with each hidden cell (``hidden`` ``[N or 1, 1, h, w]``, 1 = hidden) replaced by a
    smooth fill from the known cells of its frame; known cells are kept exactly, and a frame with no known cell is
    returned unchanged.

    The fill is harmonic (each hidden cell the mean of its four neighbours): next to the known region a cell
    continues its neighbours' values, further out it is a smoother and smoother blend. It is solved coarse to fine:
    mask-weighted means over cells twice as coarse, level after level, then back down, each level's hidden cells
    started from the enlarged level above and relaxed there.
    """
    known = (hidden < 0.5).to(latents.dtype).expand(latents.shape[0], 1, *latents.shape[-2:])
    sums, weights = [latents * known], [known]
    while max(sums[-1].shape[-2:]) > 1:
        # the same divisor for values and weights: their ratio is the weighted mean however edges are counted
        sums.append(F.avg_pool2d(sums[-1], 2, ceil_mode=True))
        weights.append(F.avg_pool2d(weights[-1], 2, ceil_mode=True))
    filled = sums[-1] / weights[-1].clamp_min(1e-12)
    for s, w in zip(reversed(sums[:-1]), reversed(weights[:-1]), strict=True):
        coarse = F.interpolate(filled, size=s.shape[-2:], mode="bilinear", align_corners=False)
        fixed, means = w > 0, s / w.clamp_min(1e-12)
        filled = _relax(means, fixed, torch.where(fixed, means, coarse))
    has_known = known.flatten(1).any(dim=1)[:, None, None, None]
    return torch.where(has_known & (known < 0.5), filled, latents)


def _per_sample(alpha_bar: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    alpha_bar = torch.as_tensor(alpha_bar, dtype=torch.float32, device=like.device)
    return alpha_bar.reshape(-1, *([1] * (like.dim() - 1))).to(like.dtype)


def to_relative(noisy: torch.Tensor, base: torch.Tensor, alpha_bar: torch.Tensor | float) -> torch.Tensor:
    """The noisy latent of ``x0 - base`` with the same noise, from the noisy latent of ``x0`` at the noise level
    ``alpha_bar`` (cumulative alpha; a number or one per sample): ``x_t = sqrt(a) x0 + sqrt(1 - a) eps``."""
    return noisy - _per_sample(alpha_bar, noisy).sqrt() * base


def from_relative(prediction: torch.Tensor, base: torch.Tensor, alpha_bar: torch.Tensor | float,
                  prediction_type: str) -> torch.Tensor:
    """A prediction for ``x0 - base`` as the same prediction for ``x0``: epsilon is the same noise; v = sqrt(a) eps
    - sqrt(1 - a) x0 moves by ``-sqrt(1 - a) base``; a sample prediction by ``+base``."""
    if prediction_type == "epsilon":
        return prediction
    if prediction_type == "v_prediction":
        return prediction - (1.0 - _per_sample(alpha_bar, prediction)).sqrt() * base
    if prediction_type == "sample":
        return prediction + base
    raise ValueError(f"unknown prediction type {prediction_type!r}")


def predict_relative(predict: Callable[[torch.Tensor], torch.Tensor], noisy: torch.Tensor,
                     base: torch.Tensor | None, alpha_bar: torch.Tensor | float,
                     prediction_type: str) -> torch.Tensor:
    """``predict`` (noisy latents -> the model's prediction) for ordinary ``noisy`` latents: a model relative to
    ``base`` is called on ``to_relative`` latents and read back with ``from_relative``; ``base`` None calls it as it
    is."""
    if base is None:
        return predict(noisy)
    return from_relative(predict(to_relative(noisy, base, alpha_bar)), base, alpha_bar, prediction_type)


def local_condition(
    masked_latents: torch.Tensor,
    latent_mask: torch.Tensor,
    guide_latents: torch.Tensor | None = None,
    guide_flags: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The conditional branch: latents of the letterboxed frames ``[B, C, F, h, w]``, mask ``[B, 1, F, h, w]``."""
    mask = latent_mask.expand(masked_latents.shape[0], 1, *masked_latents.shape[2:])
    return apply_guides(masked_latents, mask, guide_latents, guide_flags)


def null_condition(
    black_latent: torch.Tensor,
    shape: torch.Size | tuple[int, ...],
    guide_latents: torch.Tensor | None = None,
    guide_flags: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The unconditional local branch: black-frame latent ``[C, h, w]`` everywhere, all-ones mask, guides kept."""
    b, c, f, h, w = shape
    context = black_latent.reshape(1, c, 1, h, w).expand(b, c, f, h, w)
    mask = torch.ones(b, 1, f, h, w, dtype=black_latent.dtype, device=black_latent.device)
    return apply_guides(context, mask, guide_latents, guide_flags)


def model_input(noisy_latents: torch.Tensor, context: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The 9 input channels in the official order: noisy latent, masked-context latent, mask."""
    return torch.cat([noisy_latents, context.to(noisy_latents), mask.to(noisy_latents)], dim=1)

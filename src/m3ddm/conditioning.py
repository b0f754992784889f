"""The UNet's local condition: masked-context latents and a latent mask, with guide frames, shared by training
and sampling so both build exactly the same 9-channel input.

Conventions (spec section 8): mask 1 = to generate, 0 = known. A *guide* frame (a raw training frame, or a frame
generated earlier in the coarse-to-fine plan) gives its full latent as context with mask 0. The *null* context
(classifier-free guidance, dropped with p1 in training) is the latent of an all-black frame with an all-ones mask,
guide frames kept.
"""

from __future__ import annotations

import torch


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

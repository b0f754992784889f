"""Sinusoidal embeddings and the small MLPs that lift them (timestep, fps, temporal position)."""

from __future__ import annotations

import math

import torch
from torch import nn


def sinusoidal_embedding(
    positions: torch.Tensor, dim: int, *, max_period: float, flip_sin_to_cos: bool = True, shift: float = 0.0
) -> torch.Tensor:
    """``[len(positions), dim]`` sin/cos features; frequencies exp(-ln(max_period) * i / (dim/2 - shift)).

    Always computed in float32 (the official model does so even when it runs in fp16).
    """
    half = dim // 2
    exponent = -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=positions.device)
    freqs = torch.exp(exponent / (half - shift))
    args = positions.float()[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=-1)
    if flip_sin_to_cos:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    if dim % 2:
        emb = nn.functional.pad(emb, (0, 1))
    return emb


class SinusoidalProjection(nn.Module):
    """Owns no weights; holds the sinusoid's settings (the official ``time_proj``/``fps_proj``)."""

    def __init__(self, dim: int, max_period: float, flip_sin_to_cos: bool = True, shift: float = 0.0):
        super().__init__()
        self.dim, self.max_period, self.flip_sin_to_cos, self.shift = dim, max_period, flip_sin_to_cos, shift

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        return sinusoidal_embedding(
            positions, self.dim, max_period=self.max_period, flip_sin_to_cos=self.flip_sin_to_cos, shift=self.shift
        )


class EmbeddingMLP(nn.Module):
    """linear_1 -> SiLU -> linear_2 (key names as diffusers' TimestepEmbedding)."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.linear_1 = nn.Linear(in_dim, out_dim)
        self.act = nn.SiLU()
        self.linear_2 = nn.Linear(out_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(x)))

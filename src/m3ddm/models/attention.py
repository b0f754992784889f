"""Attention for the masked 3D UNet: the spatial-temporal transformer and its parts.

Cross-attention to global-frame tokens is done without copying the tokens per frame or per guidance branch:
every frame of a batch row shares its row's context, so the row's F x H x W queries attend to the context as one
long query sequence (attention is independent per query, so this equals the official per-frame repeat). Rows that
share a context (e.g. the two null-global guidance branches) attend to ONE copy of it, and the key/value
projections of a video's context can be cached across windows and denoising steps (``GlobalContext``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from m3ddm.models.embeddings import EmbeddingMLP, SinusoidalProjection
from m3ddm.models.pseudo3d import BatchInvariantGroupNorm, framewise_conv

# "sdpa" (torch's fused scaled_dot_product_attention) or "naive" (explicit softmax(QK^T)V, for benchmarks).
ATTENTION_BACKENDS = ("sdpa", "naive")


@dataclass(eq=False)
class GlobalContext:
    """Global-frame tokens ``[K, T, C]`` and which context each batch row uses.

    ``index`` maps each of the N batch rows to a context row (``None``: K == N, row i uses context i; or K == 1,
    every row uses the single context). With ``cache_kv`` the per-layer key/value projections are kept for reuse
    across denoising steps and windows (inference only: the cache ignores later weight updates).
    """

    tokens: torch.Tensor
    index: torch.Tensor | None = None
    cache_kv: bool = False
    _kv: dict = field(default_factory=dict, repr=False)

    def bind(self, index: torch.Tensor | list[int] | None) -> GlobalContext:
        """The same tokens (and cache) with another row mapping."""
        if index is not None and not torch.is_tensor(index):
            index = torch.as_tensor(index, dtype=torch.long)
        return GlobalContext(self.tokens, index, self.cache_kv, self._kv)

    def groups(self, num_rows: int) -> list[tuple[int | None, slice | torch.Tensor]]:
        """(context id, rows) pairs; context id None means "row i uses context i" for all rows at once."""
        k = self.tokens.shape[0]
        if self.index is None:
            if k == num_rows:
                return [(None, slice(0, num_rows))]
            if k == 1:
                return [(0, slice(0, num_rows))]
            raise ValueError(f"{k} contexts for {num_rows} batch rows: pass an index")
        index = self.index.tolist()
        if len(index) != num_rows:
            raise ValueError(f"context index has {len(index)} entries for {num_rows} batch rows")
        out: list[tuple[int | None, slice | torch.Tensor]] = []
        start = 0
        while start < num_rows:  # contiguous runs become slices (no copy of the queries)
            stop = start + 1
            while stop < num_rows and index[stop] == index[start]:
                stop += 1
            out.append((index[start], slice(start, stop)))
            start = stop
        return out

    def key_value(self, attn: Attention) -> tuple[torch.Tensor, torch.Tensor]:
        cacheable = self.cache_kv and not torch.is_grad_enabled()
        key = id(attn)
        if cacheable and key in self._kv:
            return self._kv[key]
        tokens = self.tokens.to(attn.to_k.weight.dtype)
        kv = (attn.to_k(tokens), attn.to_v(tokens))
        if cacheable:
            self._kv[key] = kv
        return kv


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, backend: str = "sdpa") -> torch.Tensor:
    """Multi-head attention on ``[B, L, heads*d]`` tensors (channel = head * d + j), scale d^-1/2, no mask."""
    q, k, v = (rearrange(t, "b n (h d) -> b h n d", h=heads) for t in (q, k, v))
    if backend == "sdpa":
        out = F.scaled_dot_product_attention(q, k, v)
    else:
        scores = torch.einsum("bhid,bhjd->bhij", q, k) * q.shape[-1] ** -0.5
        out = torch.einsum("bhij,bhjd->bhid", scores.softmax(dim=-1), v)
    return rearrange(out, "b h n d -> b n (h d)")


class Attention(nn.Module):
    """Self- or cross-attention with bias-free q/k/v projections and a biased output projection."""

    def __init__(self, query_dim: int, heads: int, head_dim: int, context_dim: int | None = None):
        super().__init__()
        inner = heads * head_dim
        self.heads = heads
        self.backend = "sdpa"
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim or query_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim or query_dim, inner, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(inner, query_dim), nn.Dropout(0.0)])
        nn.init.zeros_(self.to_out[0].weight)  # a fresh attention layer starts as a no-op (bias only)

    def forward(self, x: torch.Tensor, context: torch.Tensor | GlobalContext | None = None, frames: int = 1):
        if isinstance(context, GlobalContext):
            out = self._attend_global(x, context, frames)
        else:
            source = x if context is None else context
            out = attention(self.to_q(x), self.to_k(source), self.to_v(source), self.heads, self.backend)
        return self.to_out[1](self.to_out[0](out))

    def _attend_global(self, x: torch.Tensor, context: GlobalContext, frames: int) -> torch.Tensor:
        rows = x.shape[0] // frames
        q = self.to_q(x)
        tokens_per_frame, inner = q.shape[1], q.shape[2]
        q = q.reshape(rows, frames * tokens_per_frame, inner)  # a row's frames share one context
        k_all, v_all = context.key_value(self)
        groups = context.groups(rows)
        if len(groups) == 1 and groups[0][0] is None:
            out = attention(q, k_all, v_all, self.heads, self.backend)
        else:
            out = torch.empty_like(q)
            for ctx_id, sel in groups:
                qg = q[sel].reshape(1, -1, inner)
                og = attention(qg, k_all[ctx_id: ctx_id + 1], v_all[ctx_id: ctx_id + 1], self.heads, self.backend)
                out[sel] = og.reshape(-1, frames * tokens_per_frame, inner)
        return out.reshape(rows * frames, tokens_per_frame, inner)


class GEGLU(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.proj = nn.Linear(dim, 2 * hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * F.gelu(gate)  # exact (erf) GELU, as the official model


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        self.net = nn.ModuleList([GEGLU(dim, dim * mult), nn.Dropout(0.0), nn.Linear(dim * mult, dim)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.net:
            x = layer(x)
        return x


class BasicTransformerBlock(nn.Module):
    """Self-attention, then cross-attention (or a second self-attention without context), then a GEGLU MLP."""

    def __init__(self, dim: int, heads: int, head_dim: int, context_dim: int | None):
        super().__init__()
        self.attn1 = Attention(dim, heads, head_dim)
        self.attn2 = Attention(dim, heads, head_dim, context_dim)
        self.ff = FeedForward(dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, context=None, frames: int = 1) -> torch.Tensor:
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), context, frames) + x
        return self.ff(self.norm3(x)) + x


class SpatialTemporalTransformer(nn.Module):
    """A spatial transformer per frame (cross-attending to global tokens), then a temporal one per pixel."""

    def __init__(self, channels: int, heads: int, context_dim: int | None, groups: int):
        super().__init__()
        head_dim = channels // heads
        inner = heads * head_dim
        # spatial half
        self.norm = BatchInvariantGroupNorm(groups, channels, eps=1e-6)
        self.proj_in = nn.Conv2d(channels, inner, 1)
        self.transformer_blocks = nn.ModuleList([BasicTransformerBlock(inner, heads, head_dim, context_dim)])
        self.proj_out = nn.Conv2d(inner, channels, 1)
        # temporal half
        self.norm2 = BatchInvariantGroupNorm(groups, channels, eps=1e-6)
        self.proj_in2 = nn.Conv3d(channels, inner, 1)
        self.temporal_position_embed = SinusoidalProjection(320, max_period=1000)  # width 320 in every block
        self.temporal_position_embed_proj = EmbeddingMLP(320, inner)
        self.transformer_blocks2 = nn.ModuleList([BasicTransformerBlock(inner, heads, head_dim, None)])
        self.proj_out2 = nn.Conv3d(inner, channels, 1)
        for conv in (self.proj_in2, self.proj_out2):  # identity at init when inner == channels
            if conv.in_channels == conv.out_channels:
                nn.init.dirac_(conv.weight)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor, context=None) -> torch.Tensor:
        b, _, f, h, w = x.shape
        # spatial: frames folded into the batch
        residual = x
        y = self.proj_in(self.norm(rearrange(x, "b c f h w -> (b f) c h w"), chunk=f))
        y = rearrange(y, "n c h w -> n (h w) c")
        for block in self.transformer_blocks:
            y = block(y, context, frames=f)
        y = self.proj_out(rearrange(y, "n (h w) c -> n c h w", h=h))
        x = rearrange(y, "(b f) c h w -> b c f h w", b=b) + residual
        # temporal: one sequence over frames per pixel, GroupNorm statistics across all frames
        residual = x
        y = framewise_conv(self.proj_in2, self.norm2(x))
        y = rearrange(y, "b c f h w -> (b h w) f c")
        positions = self.temporal_position_embed(torch.arange(f, device=x.device)).to(y.dtype)
        y = y + self.temporal_position_embed_proj(positions)
        for block in self.transformer_blocks2:
            y = block(y)
        y = rearrange(y, "(b h w) f c -> b c f h w", b=b, h=h)
        return framewise_conv(self.proj_out2, y) + residual

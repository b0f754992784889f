"""Pseudo-3D (2+1)-D convolutions, the resnet block and the resamplers of the masked 3D UNet.

Tensors are ``[B, C, F, H, W]``. GroupNorms here normalise over all frames jointly (spec Q3).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


class BatchInvariantGroupNorm(nn.GroupNorm):
    """GroupNorm computed on fixed-size chunks of the batch (one sample, or one video row's ``chunk`` frames).

    Torch's kernel splits a group's reduction differently when there are few samples, so the same sample can get
    different low bits in batches of different sizes. Normalising fixed-size chunks keeps windows denoised in a
    batch bit-identical to windows denoised alone. Same parameters and state-dict keys as ``nn.GroupNorm``.
    """

    def forward(self, x: torch.Tensor, chunk: int = 1) -> torch.Tensor:
        if x.shape[0] <= chunk:
            return super().forward(x)
        return torch.cat([super(BatchInvariantGroupNorm, self).forward(c) for c in x.split(chunk)])


def framewise_conv(conv: nn.Conv3d, x: torch.Tensor) -> torch.Tensor:
    """A Conv3d whose kernel has depth 1, run as a Conv2d over frames folded into the batch.

    Same result and same state-dict shape as the Conv3d, but 2-D convolution kernels give each image a result that
    does not depend on how many images share the batch (the 3-D kernels do not), which keeps batched windows equal
    to sequential ones bit for bit.
    """
    b = x.shape[0]
    y = F.conv2d(
        rearrange(x, "b c f h w -> (b f) c h w"), conv.weight[:, :, 0], conv.bias,
        stride=conv.stride[1:], padding=conv.padding[1:],
    )
    return rearrange(y, "(b f) c h w -> b c f h w", b=b)


class Pseudo3DConv(nn.Module):
    """A k x k spatial conv per frame, then a 3-tap temporal conv per pixel (zero padded in time)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3):
        super().__init__()
        self.spatial_conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.temporal_conv = nn.Conv1d(out_channels, out_channels, 3, padding=1)
        # Identity in time at init, so an inflated 2D model starts as the 2D model run per frame.
        nn.init.dirac_(self.temporal_conv.weight)
        nn.init.zeros_(self.temporal_conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, f, h, w = x.shape
        x = self.spatial_conv(rearrange(x, "b c f h w -> (b f) c h w"))
        x = rearrange(x, "(b f) c h w -> (b h w) c f", b=b)
        x = self.temporal_conv(x)
        return rearrange(x, "(b h w) c f -> b c f h w", b=b, h=h, w=w)


class ResnetBlockP3D(nn.Module):
    """GN-SiLU-conv, plus projected time AND fps embeddings (added separately), GN-SiLU-conv, residual."""

    def __init__(
        self, in_channels: int, out_channels: int, emb_channels: int, groups: int, eps: float,
        output_scale_factor: float = 1.0,
    ):
        super().__init__()
        self.norm1 = BatchInvariantGroupNorm(groups, in_channels, eps=eps)
        self.conv1 = Pseudo3DConv(in_channels, out_channels)
        self.time_emb_proj = nn.Linear(emb_channels, out_channels)
        self.fps_emb_proj = nn.Linear(emb_channels, out_channels)
        self.norm2 = BatchInvariantGroupNorm(groups, out_channels, eps=eps)
        self.dropout = nn.Dropout(0.0)
        self.conv2 = Pseudo3DConv(out_channels, out_channels)
        self.conv_shortcut = nn.Conv3d(in_channels, out_channels, 1) if in_channels != out_channels else None
        self.output_scale_factor = output_scale_factor

    def forward(self, x: torch.Tensor, temb: torch.Tensor, femb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None, None]
        h = h + self.fps_emb_proj(F.silu(femb))[:, :, None, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        shortcut = x if self.conv_shortcut is None else framewise_conv(self.conv_shortcut, x)
        return (shortcut + h) / self.output_scale_factor


class Downsample3D(nn.Module):
    """Stride-2 spatial conv applied to every frame."""

    def __init__(self, channels: int, padding: int = 1):
        super().__init__()
        self.padding = padding
        self.conv = nn.Conv3d(channels, channels, (1, 3, 3), stride=(1, 2, 2), padding=(0, padding, padding))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding == 0:  # asymmetric right/bottom pad, as SD does when padding is 0
            x = F.pad(x, (0, 1, 0, 1))
        return framewise_conv(self.conv, x)


class Upsample3D(nn.Module):
    """Nearest x2 in H and W per frame (or to an explicit size), then a spatial conv.

    The explicit size (that of the matching skip) lets the UNet run on latents that are not multiples of 8, e.g. a
    9:16 canvas of 144 x 256 pixels (18 x 32 latents); for multiples of 8 it is exactly the official x2.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv3d(channels, channels, (1, 3, 3), padding=(0, 1, 1))

    def forward(self, x: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        dtype = x.dtype
        if dtype == torch.bfloat16:  # nearest interpolation has no bf16 kernel everywhere
            x = x.float()
        if size is None:
            x = F.interpolate(x, scale_factor=(1.0, 2.0, 2.0), mode="nearest")
        else:
            x = F.interpolate(x, size=(x.shape[2], *size), mode="nearest")
        return framewise_conv(self.conv, x.to(dtype))

"""Down, mid and up blocks of the masked 3D UNet (names and nesting as the official checkpoint)."""

from __future__ import annotations

import torch
from torch import nn

from m3ddm.models.attention import SpatialTemporalTransformer
from m3ddm.models.pseudo3d import Downsample3D, ResnetBlockP3D, Upsample3D

BLOCK_TYPES = ("CrossAttnDownBlock3D", "DownBlockP3D", "CrossAttnUpBlock3D", "UpBlockP3D")


class _Checkpointed(nn.Module):
    """Blocks run their layers through diffusers' gradient-checkpointing hook when it is enabled."""

    gradient_checkpointing = False

    def _run(self, layer: nn.Module, *args):
        if torch.is_grad_enabled() and self.gradient_checkpointing:
            return self._gradient_checkpointing_func(layer, *args)
        return layer(*args)


class DownBlock3D(_Checkpointed):
    """``layers`` x (resnet [+ transformer]), then an optional downsampler; every output is a skip."""

    def __init__(
        self, in_channels: int, out_channels: int, emb_channels: int, layers: int, groups: int, eps: float,
        heads: int, context_dim: int | None, with_attention: bool, add_downsample: bool, downsample_padding: int,
    ):
        super().__init__()
        self.resnets = nn.ModuleList(
            ResnetBlockP3D(in_channels if i == 0 else out_channels, out_channels, emb_channels, groups, eps)
            for i in range(layers)
        )
        if with_attention:
            self.attentions = nn.ModuleList(
                SpatialTemporalTransformer(out_channels, heads, context_dim, groups) for _ in range(layers)
            )
        else:
            self.attentions = None
        self.downsamplers = (
            nn.ModuleList([Downsample3D(out_channels, downsample_padding)]) if add_downsample else None
        )

    def forward(self, x, temb, femb, context=None):
        skips = []
        for i, resnet in enumerate(self.resnets):
            x = self._run(resnet, x, temb, femb)
            if self.attentions is not None:
                x = self._run(self.attentions[i], x, context)
            skips.append(x)
        if self.downsamplers is not None:
            x = self.downsamplers[0](x)
            skips.append(x)
        return x, skips


class MidBlock3D(_Checkpointed):
    """resnet -> transformer -> resnet at the deepest width."""

    def __init__(self, channels, emb_channels, groups, eps, heads, context_dim, output_scale_factor=1.0):
        super().__init__()
        self.resnets = nn.ModuleList(
            ResnetBlockP3D(channels, channels, emb_channels, groups, eps, output_scale_factor) for _ in range(2)
        )
        self.attentions = nn.ModuleList([SpatialTemporalTransformer(channels, heads, context_dim, groups)])

    def forward(self, x, temb, femb, context=None):
        x = self._run(self.resnets[0], x, temb, femb)
        x = self._run(self.attentions[0], x, context)
        return self._run(self.resnets[1], x, temb, femb)


class UpBlock3D(_Checkpointed):
    """``layers + 1`` x (pop a skip, concatenate after the hidden state, resnet [+ transformer]), then upsample."""

    def __init__(
        self, prev_channels: int, out_channels: int, skip_channels: int, emb_channels: int, layers: int,
        groups: int, eps: float, heads: int, context_dim: int | None, with_attention: bool, add_upsample: bool,
    ):
        super().__init__()
        n = layers + 1
        self.resnets = nn.ModuleList(
            ResnetBlockP3D(
                (prev_channels if i == 0 else out_channels) + (skip_channels if i == n - 1 else out_channels),
                out_channels, emb_channels, groups, eps,
            )
            for i in range(n)
        )
        if with_attention:
            self.attentions = nn.ModuleList(
                SpatialTemporalTransformer(out_channels, heads, context_dim, groups) for _ in range(n)
            )
        else:
            self.attentions = None
        self.upsamplers = nn.ModuleList([Upsample3D(out_channels)]) if add_upsample else None

    def forward(self, x, skips: list[torch.Tensor], temb, femb, context=None):
        for i, resnet in enumerate(self.resnets):
            x = torch.cat([x, skips.pop()], dim=1)
            x = self._run(resnet, x, temb, femb)
            if self.attentions is not None:
                x = self._run(self.attentions[i], x, context)
        if self.upsamplers is not None:
            x = self.upsamplers[0](x, size=tuple(skips[-1].shape[-2:]) if skips else None)
        return x

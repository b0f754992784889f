"""The light global-frame encoder: five ResNet bottleneck stages over VAE latents, then a 3x3 conv to 320 channels.

Module nesting (``resnet_layer.{s}.layers.{l}.layer.{k}.convolution`` ...) follows the official checkpoint, whose
names come from a transformers ResNet stage; we build the same structure without transformers.
"""

from __future__ import annotations

import torch
from torch import nn

STAGE_CHANNELS = ((4, 8), (8, 16), (16, 32), (32, 64), (64, 128))
STAGE_STRIDES = (1, 1, 2, 1, 1)
CONTEXT_DIM = 320


class ConvBNAct(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, activation: bool = True):
        super().__init__()
        self.convolution = nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False)
        self.normalization = nn.BatchNorm2d(cout)
        self.activation = nn.ReLU() if activation else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.normalization(self.convolution(x)))


class ProjectionShortcut(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.convolution = nn.Conv2d(cin, cout, 1, stride=stride, bias=False)
        self.normalization = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.normalization(self.convolution(x))


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 (strided) -> 1x1 expand, plus shortcut, then ReLU; width = out / 4."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        width = cout // 4
        needs_projection = cin != cout or stride != 1
        self.shortcut = ProjectionShortcut(cin, cout, stride) if needs_projection else nn.Identity()
        self.layer = nn.Sequential(
            ConvBNAct(cin, width, 1),
            ConvBNAct(width, width, 3, stride=stride),
            ConvBNAct(width, cout, 1, activation=False),
        )
        self.activation = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.layer(x) + self.shortcut(x))


class Stage(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.layers = nn.Sequential(Bottleneck(cin, cout, stride), Bottleneck(cout, cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class LightImageEncoder(nn.Module):
    """``[M, C, h, w]`` latents -> ``[M, 320, ceil(h/2) - 2, ceil(w/2) - 2]`` features (needs h, w >= 5).

    ``latent_channels`` is 4 for SD's VAE (the official layout); codecs with wider latents widen the first stage.
    """

    def __init__(self, latent_channels: int = 4):
        super().__init__()
        channels = ((latent_channels, STAGE_CHANNELS[0][1]), *STAGE_CHANNELS[1:])
        self.resnet_layer = nn.ModuleList(
            Stage(cin, cout, stride) for (cin, cout), stride in zip(channels, STAGE_STRIDES, strict=True)
        )
        self.convolution = nn.Conv2d(STAGE_CHANNELS[-1][1], CONTEXT_DIM, 3, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.resnet_layer:
            x = stage(x)
        return self.convolution(x)

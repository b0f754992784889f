"""A tiny convolutional image autoencoder (TAEF2 layout): 32 latent channels at 1/8 resolution, ~2.7 M parameters.

The layout matches the pretrained TAEF2 weights (MIT licence, by Ollin Boer Bohan, project "taesd"), so those
state dicts load into it unchanged under the ``encoder.`` / ``decoder.`` prefixes; the module itself is ours,
written from the description of the layers in ``shared/weights/taef2/README.md``.

Raw space: images in [0, 1], latents unscaled. ``LatentCodec`` does the project's conversions (pixels in [-1, 1],
latents shifted and scaled per channel with ``latents_mean`` / ``latents_std`` from this config), and
``tiled_encode`` / ``tiled_decode`` bound memory at large sizes (the receptive field is small, so overlapping tiles
blended linearly match the untiled result closely).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn


def _conv(cin: int, cout: int, bias: bool = True, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=bias)


def _squeeze(width: int, expansion: int = 4, groups: int = 4) -> nn.Sequential:
    """The pool branch of the deepest blocks: a 1x1 expansion, GroupNorm, ReLU and a 1x1 projection."""
    hidden = width * expansion
    return nn.Sequential(nn.Conv2d(width, hidden, 1, bias=False), nn.GroupNorm(groups, hidden), nn.ReLU(),
                         nn.Conv2d(hidden, width, 1, bias=False))


class Block(nn.Module):
    """Three 3x3 convs on a residual path, then ReLU; with ``pool``, ``x + pool(x)`` goes in first."""

    def __init__(self, width: int, pool: bool = False):
        super().__init__()
        self.conv = nn.Sequential(_conv(width, width), nn.ReLU(), _conv(width, width), nn.ReLU(),
                                  _conv(width, width))
        self.pool = _squeeze(width) if pool else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            x = x + self.pool(x)
        return torch.relu(self.conv(x) + x)


class SoftClamp(nn.Module):
    def __init__(self, limit: float = 3.0):
        super().__init__()
        self.limit = limit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.limit * torch.tanh(x / self.limit)


def build_encoder(latent_channels: int, width: int) -> nn.Sequential:
    layers: list[nn.Module] = [_conv(3, width), Block(width)]
    for stage in range(3):  # three stride-2 stages: 1/8 resolution
        layers.append(_conv(width, width, bias=False, stride=2))
        layers.extend(Block(width, pool=stage == 2) for _ in range(3))
    layers.append(_conv(width, latent_channels))
    return nn.Sequential(*layers)


def build_decoder(latent_channels: int, width: int) -> nn.Sequential:
    layers: list[nn.Module] = [SoftClamp(), _conv(latent_channels, width), nn.ReLU()]
    for stage in range(3):
        layers.extend(Block(width, pool=stage == 0) for _ in range(3))
        layers.extend([nn.Upsample(scale_factor=2), _conv(width, width, bias=False)])
    layers.extend([Block(width), _conv(width, 3)])
    return nn.Sequential(*layers)


class TinyAutoencoder(ModelMixin, ConfigMixin):
    """Images ``[N, 3, H, W]`` in [0, 1] <-> raw latents ``[N, C, H/8, W/8]`` (H, W multiples of 8)."""

    config_name = "config.json"
    downsample_factor = 8

    @register_to_config
    def __init__(
        self,
        latent_channels: int = 32,
        width: int = 64,
        latents_mean: tuple[float, ...] | None = None,
        latents_std: tuple[float, ...] | None = None,
        tile_size: int = 512,  # pixels; its decoder sees far, so tiles are large (256/64 costs 2 dB)
        tile_overlap: int = 128,
    ):
        super().__init__()
        self.encoder = build_encoder(latent_channels, width)
        self.decoder = build_decoder(latent_channels, width)
        self.use_tiling = False

    # --- tiling (the AutoencoderKL switches the pipeline already calls) ------------------------------
    def enable_tiling(self) -> None:
        self.use_tiling = True

    def disable_tiling(self) -> None:
        self.use_tiling = False

    # --- the two directions in raw space --------------------------------------------------------------
    def encode_raw(self, images: torch.Tensor) -> torch.Tensor:
        if self.use_tiling and max(images.shape[-2:]) > self.config.tile_size:
            return self._tiled(images, self.encoder, 1 / self.downsample_factor, self.config.latent_channels)
        return self.encoder(images)

    def decode_raw(self, latents: torch.Tensor) -> torch.Tensor:
        f = self.downsample_factor
        if self.use_tiling and max(latents.shape[-2:]) * f > self.config.tile_size:
            return self._tiled(latents, self.decoder, f, 3, scale_tiles=1 / f).clamp(0, 1)
        return self.decoder(latents).clamp(0, 1)

    def _tiled(self, x: torch.Tensor, net: nn.Module, factor: float, out_channels: int,
               scale_tiles: float = 1.0) -> torch.Tensor:
        """Run ``net`` over overlapping tiles of ``x`` and blend them with linear ramps in the overlaps."""
        tile = max(1, round(self.config.tile_size * scale_tiles))
        overlap = round(self.config.tile_overlap * scale_tiles)
        step = max(1, tile - overlap)
        n, _, h, w = x.shape
        out = x.new_zeros(n, out_channels, round(h * factor), round(w * factor))
        weight = x.new_zeros(1, 1, *out.shape[-2:])
        for top in _starts(h, tile, step):
            for left in _starts(w, tile, step):
                piece = net(x[..., top: top + tile, left: left + tile])
                ph, pw = piece.shape[-2:]
                ramp = _ramp(ph, round(overlap * factor), top > 0, top + tile < h, x)[:, None] \
                    * _ramp(pw, round(overlap * factor), left > 0, left + tile < w, x)[None, :]
                t, l_ = round(top * factor), round(left * factor)
                out[..., t: t + ph, l_: l_ + pw] += piece * ramp
                weight[..., t: t + ph, l_: l_ + pw] += ramp
        return out / weight.clamp_min(1e-6)

    # --- the pretrained weights ----------------------------------------------------------------------
    @classmethod
    def from_taef2(cls, folder: str | os.PathLike) -> TinyAutoencoder:
        """Build from the two TAEF2 state dicts (``taef2_encoder.pth``, ``taef2_decoder.pth``) in ``folder``."""
        folder = Path(folder)
        model = cls()
        state = {}
        for part in ("encoder", "decoder"):
            weights = torch.load(folder / f"taef2_{part}.pth", map_location="cpu", weights_only=True)
            state.update({f"{part}.{key}": value for key, value in weights.items()})
        model.load_state_dict(state, strict=True)
        return model.eval()


def _starts(size: int, tile: int, step: int) -> list[int]:
    if size <= tile:
        return [0]
    starts = list(range(0, size - tile, step))
    return [*starts, size - tile]


def _ramp(length: int, overlap: int, fade_in: bool, fade_out: bool, like: torch.Tensor) -> torch.Tensor:
    ramp = torch.ones(length, dtype=like.dtype, device=like.device)
    if overlap > 0:
        edge = torch.linspace(0, 1, overlap + 2, dtype=like.dtype, device=like.device)[1:-1]
        if fade_in:
            ramp[:overlap] = edge
        if fade_out:
            ramp[-overlap:] = edge.flip(0)
    return ramp

"""The latent codec: pixels <-> scaled latents, over a diffusers ``AutoencoderKL``.

Any local diffusers ``AutoencoderKL`` folder works (SD's VAE: factor 8, 4 channels, scale 0.18215), and so do the
small codecs we train ourselves (same class, smaller widths). Latents handed to the UNet are always *scaled*
(multiplied by ``scaling_factor``), as in Stable Diffusion.

Encoding is deterministic by default (the posterior mean) so that batching, resuming and re-running give identical
latents; a seeded posterior sample is available for training and for the official driver's behaviour.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from diffusers import AutoencoderKL

from m3ddm.errors import UserError
from m3ddm.models.tiny_autoencoder import TinyAutoencoder

# Tiny random codec used by tests: 4 blocks -> spatial factor 8, like SD's VAE.
TINY_CODEC_CONFIG = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    block_out_channels=(8, 16, 16, 16),
    layers_per_block=1,
    latent_channels=4,
    norm_num_groups=4,
    scaling_factor=0.18215,
    mid_block_add_attention=False,
)

# Small codecs we train. Factor 8 (SD's layout) compresses 48x and, trained for minutes on a CPU, reconstructs
# held-out frames at only ~21 dB; factor 4 (3 blocks, 12x) keeps far more detail for a 4x larger latent, which
# a small model working on small canvases can afford. The shipped default uses the factor-4 codec.
SMALL_CODEC_CONFIG = dict(TINY_CODEC_CONFIG, block_out_channels=(32, 64, 96, 96), norm_num_groups=16)
SMALL_F4_CODEC_CONFIG = dict(TINY_CODEC_CONFIG, down_block_types=("DownEncoderBlock2D",) * 3,
                             up_block_types=("UpDecoderBlock2D",) * 3, block_out_channels=(32, 64, 96),
                             norm_num_groups=16)


class LatentCodec(torch.nn.Module):
    """Pixels in [-1, 1] ``[N, 3, H, W]`` <-> scaled latents ``[N, C, H/f, W/f]``."""

    def __init__(self, vae: AutoencoderKL):
        super().__init__()
        self.vae = vae

    # --- construction -------------------------------------------------------------------------------
    @classmethod
    def from_config_dict(cls, config: dict, seed: int | None = 0) -> LatentCodec:
        if seed is not None:
            torch.manual_seed(seed)
        return cls(AutoencoderKL(**config))

    @classmethod
    def tiny(cls, seed: int = 0) -> LatentCodec:
        return cls.from_config_dict(TINY_CODEC_CONFIG, seed)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, torch_dtype: torch.dtype | None = None) -> LatentCodec:
        """Load a local diffusers ``AutoencoderKL`` folder (an SD ``vae/`` folder or one we saved)."""
        path = Path(path)
        config_file = path / "config.json"
        if not config_file.is_file():
            raise UserError(f"not a VAE folder (no config.json): {path}")
        try:
            class_name = json.loads(config_file.read_text()).get("_class_name", "AutoencoderKL")
        except json.JSONDecodeError as exc:
            raise UserError(f"unreadable VAE config {config_file}: {exc}") from None
        if class_name not in ("AutoencoderKL", "TinyAutoencoder"):
            raise UserError(f"{path} holds a {class_name}, expected an AutoencoderKL or a TinyAutoencoder")
        if not any((path / name).is_file() for name in _WEIGHT_NAMES):
            raise UserError(f"VAE folder {path} has no weights ({' or '.join(_WEIGHT_NAMES)})")
        model_class = TinyAutoencoder if class_name == "TinyAutoencoder" else AutoencoderKL
        try:
            vae = model_class.from_pretrained(path, torch_dtype=torch_dtype, local_files_only=True)
        except (OSError, ValueError, RuntimeError) as exc:
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(f"cannot load the VAE from {path}: {first_line}") from None
        return cls(vae)

    def save_pretrained(self, path: str | os.PathLike) -> None:
        self.vae.save_pretrained(path, safe_serialization=True)

    @classmethod
    def taef2(cls, folder: str | os.PathLike, latents_mean=None, latents_std=None) -> LatentCodec:
        """The pretrained TAEF2 autoencoder from its two state dicts (with the per-channel statistics we chose)."""
        model = TinyAutoencoder.from_taef2(folder)
        if latents_mean is not None:
            model.register_to_config(latents_mean=list(latents_mean), latents_std=list(latents_std))
        return cls(model)

    @classmethod
    def tiny_autoencoder(cls, seed: int = 0, latent_channels: int = 8, width: int = 8) -> LatentCodec:
        """A small random codec of the TAEF2 layout (tests)."""
        torch.manual_seed(seed)
        return cls(TinyAutoencoder(latent_channels=latent_channels, width=width))

    # --- properties ---------------------------------------------------------------------------------
    @property
    def is_tiny_autoencoder(self) -> bool:
        return isinstance(self.vae, TinyAutoencoder)

    @property
    def scaling_factor(self) -> float:
        """SD-style scalar scale; for a per-channel codec the mean of its per-channel scales (a summary)."""
        if self.is_tiny_autoencoder:
            return float(torch.reciprocal(self._stats()[1]).mean())
        return float(self.vae.config.scaling_factor)

    @property
    def downsample_factor(self) -> int:
        if self.is_tiny_autoencoder:
            return self.vae.downsample_factor
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    def _stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel (mean, std) of raw latents, shaped [C]; zeros and ones when none were chosen."""
        c = self.latent_channels
        mean, std = self.vae.config.latents_mean, self.vae.config.latents_std
        mean = torch.tensor(mean if mean is not None else [0.0] * c, dtype=torch.float32)
        std = torch.tensor(std if std is not None else [1.0] * c, dtype=torch.float32)
        return mean, std

    @property
    def latent_channels(self) -> int:
        return int(self.vae.config.latent_channels)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.vae.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.vae.parameters()).device

    # --- the two directions -------------------------------------------------------------------------
    def encode(
        self,
        pixels: torch.Tensor,
        *,
        sample: bool = False,
        generator: torch.Generator | Sequence[torch.Generator] | None = None,
        batch_size: int | None = None,
    ) -> torch.Tensor:
        """Scaled latents of ``pixels`` (in [-1, 1]). Posterior mean unless ``sample`` (then seeded by ``generator``,
        or one generator per image, which makes each image's draw independent of the batching).

        ``batch_size`` slices the batch (VAE slicing) to bound peak memory.
        """
        per_image = generator is not None and not isinstance(generator, torch.Generator)
        if per_image and len(generator) != pixels.shape[0]:
            raise ValueError(f"{len(generator)} generators for {pixels.shape[0]} images")
        chunks = pixels.split(batch_size) if batch_size else (pixels,)
        out = []
        if self.is_tiny_autoencoder:  # deterministic: there is no posterior to sample
            mean, std = (v.to(self.device)[:, None, None] for v in self._stats())
            for chunk in chunks:
                raw = self.vae.encode_raw((chunk.to(self.device, self.dtype) + 1) / 2).float()
                out.append((raw - mean) / std)
            return torch.cat(out)
        start = 0
        for chunk in chunks:
            dist = self.vae.encode(chunk.to(self.device, self.dtype)).latent_dist
            latent = dist.mean
            if sample:
                if per_image:
                    noise = torch.stack([torch.randn(dist.mean.shape[1:], generator=g, dtype=torch.float32)
                                         for g in generator[start: start + chunk.shape[0]]]).to(dist.mean)
                else:
                    noise = torch.randn(dist.mean.shape, generator=generator, device=dist.mean.device,
                                        dtype=dist.mean.dtype)
                latent = dist.mean + dist.std * noise
            out.append(latent * self.scaling_factor)
            start += chunk.shape[0]
        return torch.cat(out)

    def decode(self, latents: torch.Tensor, *, batch_size: int | None = None) -> torch.Tensor:
        """Pixels in [-1, 1] (clamped) from scaled latents."""
        chunks = latents.split(batch_size) if batch_size else (latents,)
        if self.is_tiny_autoencoder:
            mean, std = (v.to(self.device)[:, None, None] for v in self._stats())
            out = [self.vae.decode_raw((c.to(self.device).float() * std + mean).to(self.dtype)).float() * 2 - 1
                   for c in chunks]
            return torch.cat(out).clamp(-1, 1)
        out = [self.vae.decode(c.to(self.device, self.dtype) / self.scaling_factor).sample for c in chunks]
        return torch.cat(out).clamp(-1, 1)


_WEIGHT_NAMES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")

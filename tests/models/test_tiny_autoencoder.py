"""The TAEF2-layout tiny autoencoder behind LatentCodec: shapes, statistics, tiling, saving, the real weights."""

from pathlib import Path

import pytest
import torch

from m3ddm.codecs import LatentCodec
from m3ddm.models.tiny_autoencoder import TinyAutoencoder
from m3ddm.utils.pixels import psnr, to_signed

SHIPPED = Path(__file__).resolve().parents[2] / "src" / "m3ddm" / "weights" / "default" / "vae"
CAMPAIGN = Path(__file__).resolve().parents[2] / "training" / "default-v4" / "vae"  # TAEF2, committed
SHARED_TAEF2 = Path(__file__).resolve().parents[3] / "shared" / "weights" / "taef2"


def _pixels(n=2, h=32, w=48, seed=0):
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@torch.no_grad()
def test_codec_shapes_range_and_determinism():
    codec = LatentCodec.tiny_autoencoder(seed=0, latent_channels=8, width=8)
    assert codec.is_tiny_autoencoder and codec.downsample_factor == 8 and codec.latent_channels == 8
    pixels = _pixels()
    latents = codec.encode(pixels)
    assert latents.shape == (2, 8, 4, 6)
    assert torch.equal(latents, codec.encode(pixels, sample=True))  # no posterior: sampling changes nothing
    out = codec.decode(latents)
    assert out.shape == pixels.shape and float(out.min()) >= -1 and float(out.max()) <= 1


@torch.no_grad()
def test_per_channel_statistics_shift_and_scale_the_latents():
    plain = LatentCodec.tiny_autoencoder(seed=0, latent_channels=8, width=8)
    mean, std = [0.1 * c for c in range(8)], [0.5 + 0.1 * c for c in range(8)]
    scaled = LatentCodec.tiny_autoencoder(seed=0, latent_channels=8, width=8)
    scaled.vae.register_to_config(latents_mean=mean, latents_std=std)
    pixels = _pixels()
    raw = plain.encode(pixels)
    want = (raw - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    assert torch.allclose(scaled.encode(pixels), want, atol=1e-6)
    assert torch.allclose(scaled.decode(scaled.encode(pixels)), plain.decode(raw), atol=1e-5)
    assert scaled.scaling_factor == pytest.approx(float((1 / torch.tensor(std)).mean()))


@torch.no_grad()
def test_tiling_covers_the_image_and_switches_off():
    model = TinyAutoencoder(latent_channels=8, width=8, tile_size=32, tile_overlap=16).eval()
    images = (_pixels(1, 64, 80) + 1) / 2
    whole_latents = model.encode_raw(images)
    model.enable_tiling()
    tiled_latents = model.encode_raw(images)
    tiled_images = model.decode_raw(whole_latents)
    assert tiled_latents.shape == whole_latents.shape and tiled_images.shape == images.shape
    assert torch.isfinite(tiled_latents).all() and torch.isfinite(tiled_images).all()
    model.disable_tiling()
    assert torch.equal(model.encode_raw(images), whole_latents)


@torch.no_grad()
def test_save_and_load_through_latent_codec(tmp_path):
    codec = LatentCodec.tiny_autoencoder(seed=3, latent_channels=8, width=8)
    codec.vae.register_to_config(latents_mean=[0.2] * 8, latents_std=[0.7] * 8)
    codec.save_pretrained(tmp_path / "vae")
    loaded = LatentCodec.from_pretrained(tmp_path / "vae")
    assert loaded.is_tiny_autoencoder
    pixels = _pixels()
    assert torch.equal(loaded.encode(pixels), codec.encode(pixels))


def _real_codec() -> LatentCodec:
    if (SHIPPED / "config.json").is_file() and "TinyAutoencoder" in (SHIPPED / "config.json").read_text():
        return LatentCodec.from_pretrained(SHIPPED)
    if (CAMPAIGN / "config.json").is_file():
        return LatentCodec.from_pretrained(CAMPAIGN)
    if SHARED_TAEF2.is_dir():
        return LatentCodec.taef2(SHARED_TAEF2)
    pytest.skip("no TAEF2 weights here (neither shipped nor in ../shared)")


@torch.no_grad()
def test_real_weights_reconstruct_a_photo():
    import numpy as np
    import skimage.data

    from m3ddm.canvas import resize

    codec = _real_codec().float()
    image = resize(np.asarray(skimage.data.astronaut()), 160, 160)
    pixels = to_signed(image)[None]
    out = codec.decode(codec.encode(pixels))
    mse = float(((out - pixels) / 2).pow(2).mean())
    assert psnr(mse, peak=1.0) > 26, psnr(mse, peak=1.0)  # a random codec of this layout gives about 5 dB


@torch.no_grad()
def test_real_weights_tile_without_visible_seams():
    import numpy as np
    import skimage.data

    from m3ddm.canvas import resize

    codec = _real_codec().float()
    image = resize(np.asarray(skimage.data.coffee()), 512, 384)
    pixels = to_signed(image)[None]
    latents = codec.encode(pixels)
    whole = codec.decode(latents)
    codec.vae.register_to_config(tile_size=256, tile_overlap=64)
    codec.vae.enable_tiling()
    tiled_latents, tiled = codec.encode(pixels), codec.decode(latents)
    codec.vae.disable_tiling()
    psnr = 10 * np.log10(4 / float((tiled - whole).pow(2).mean()))
    assert psnr > 30, psnr  # tiled vs untiled decode of the same 32-channel latents
    assert float((tiled_latents - latents).pow(2).mean()) < 0.05 * float(latents.pow(2).mean())

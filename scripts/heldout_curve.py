"""Held-out curve of a training run: the EMA weights' v (or epsilon) MSE on validation clips, per checkpoint.

    python scripts/heldout_curve.py RUN VAL_FRAMES CACHE [--samples 48] [--every 1]

RUN: the training output folder (its checkpoints/ and training_config.yaml); VAL_FRAMES: folder of validation
clips (never trained on); CACHE: where their latents are cached (built once with the run's codec). The same
clips, masks, noise and timesteps (evenly spread over the schedule) for every checkpoint, so the numbers compare;
the training split's loss is measured the same way beside it. Prints a markdown table and writes RUN/heldout.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from m3ddm.training import checkpoint as ckpt
from m3ddm.training.config import load_config
from m3ddm.training.data import LatentCache, LatentClipDataset, build_latent_cache, discover_videos, probe_entry
from m3ddm.training.loop import build_codec, clip_settings
from m3ddm.training.objective import Denoiser, NoiseDraw, build_model_batch, diffusion_loss, training_noise_scheduler
from m3ddm.training.snapshot import unet_from_checkpoint

TIMESTEPS = (49, 199, 349, 499, 649, 799, 949, 999)


def _cache(folder: Path, frames: Path, config, codec) -> LatentCache:
    if not (folder / "index.json").is_file():
        entries = [probe_entry(str(p)) for p in discover_videos(frames)]
        build_latent_cache(folder, entries, codec, config.data.size)
    return LatentCache(folder)


@torch.no_grad()
def _loss(unet, dataset, codec, samples: int, config, seed: int = 1234) -> float:
    scheduler = training_noise_scheduler(config.model.schedule())
    model = Denoiser(unet).eval()
    black = dataset.black_latent()
    total = 0.0
    for k in range(samples):
        batch = {key: value[None] for key, value in dataset[10_000_000 + k].items()}
        gen = torch.Generator().manual_seed(seed + k)
        mb = build_model_batch(batch, codec, black, device=torch.device("cpu"), generator=gen,
                               sample_posterior=False, fill=config.model.fills_hidden_context,
                               relative=config.model.relative_to_context)
        t = torch.tensor([TIMESTEPS[k % len(TIMESTEPS)]])
        draw = NoiseDraw(torch.randn(mb.latents.shape, generator=gen), t)
        total += float(diffusion_loss(model, scheduler, mb, draw))
    return total / samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("val_frames", type=Path)
    parser.add_argument("cache", type=Path)
    parser.add_argument("--samples", type=int, default=48)
    parser.add_argument("--every", type=int, default=1, help="use every N-th checkpoint")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = load_config(args.run / "training_config.yaml")
    codec = build_codec(config)
    settings = clip_settings(config)
    probs = config.masking.for_variant(config.model.variant)
    val = LatentClipDataset(_cache(args.cache, args.val_frames, config, codec).folder, settings, probs, seed=7)
    train = LatentClipDataset(config.data.latent_cache, settings, probs, seed=7)
    out_file = args.run / "heldout.json"
    done = json.loads(out_file.read_text()) if out_file.is_file() else {}
    print("| step | held-out loss | training-split loss |\n|---:|---:|---:|")
    checkpoints = ckpt.list_checkpoints(args.run)
    for n, (step, path) in enumerate(checkpoints):
        if n % args.every and step != checkpoints[-1][0]:
            continue
        if str(step) not in done:
            unet = unet_from_checkpoint(path, averaged=True).eval()
            done[str(step)] = {"val": _loss(unet, val, codec, args.samples, config),
                               "train": _loss(unet, train, codec, args.samples, config)}
            out_file.write_text(json.dumps(done, indent=1))
        print(f"| {step} | {done[str(step)]['val']:.4f} | {done[str(step)]['train']:.4f} |", flush=True)


if __name__ == "__main__":
    main()

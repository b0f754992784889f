"""Synthetic videos for tests and small experiments: a camera panning/zooming over a large natural
image, plus sprites that cross the frame.

Pans are where global frames matter: content that leaves the frame early in the video is exactly what a later
clip must outpaint, and only the global frames (sampled over the whole video) still show it.

Every video is a pure function of ``(seed, index)`` and its size, so a DataLoader worker can regenerate it on
demand. Backgrounds are scikit-image's bundled sample images (no download).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

# scikit-image sample images that ship inside the wheel (colour first; grey ones are tinted).
BACKGROUND_IMAGES = (
    "astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
    "colorwheel", "camera", "moon", "grass", "gravel", "brick", "coins", "clock", "cell",
)
# Every natural picture available offline, for training the default model: the above, the rest of scikit-image's
# photographs, scikit-learn's two sample photos and matplotlib's sample photos ("package:name").
TRAINING_BACKGROUNDS = (
    *BACKGROUND_IMAGES, "stereo_motorcycle", "sklearn:china", "sklearn:flower", "matplotlib:grace_hopper",
    "matplotlib:Minduka_Present_Blue_Pack",
)
MOTIONS = ("pan", "zoom", "pan_zoom")


@dataclass(frozen=True)
class SyntheticVideo:
    """RGB uint8 frames ``[T, H, W, 3]`` with how they were made."""

    frames: np.ndarray
    fps: float
    name: str
    background: str
    motion: str
    num_sprites: int


def _load_picture(name: str) -> np.ndarray:
    package, _, picture = name.rpartition(":")
    if package == "sklearn":
        from sklearn.datasets import load_sample_image  # dev dependency

        return np.asarray(load_sample_image(f"{picture}.jpg"))
    if package == "matplotlib":
        from matplotlib import cbook

        suffix = ".png" if picture[0].isupper() else ".jpg"
        image = np.asarray(cv2.imread(str(cbook.get_sample_data(picture + suffix, asfileobj=False)),
                                      cv2.IMREAD_COLOR))
        return image[..., ::-1]
    import skimage.data  # dev dependency; imported lazily so training on real videos does not need it

    image = getattr(skimage.data, picture)()
    return image[0] if isinstance(image, tuple) else image  # stereo_motorcycle: (left, right, disparity)


@functools.lru_cache(maxsize=len(TRAINING_BACKGROUNDS))
def _background(name: str) -> np.ndarray:
    image = np.asarray(_load_picture(name))
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    if image.ndim == 2:
        # Tint grey images so that every background has colour to learn.
        tint = np.array([1.0, 0.85, 0.7], dtype=np.float32) if len(name) % 2 else np.array([0.7, 0.9, 1.0])
        image = (image[..., None].astype(np.float32) * tint).clip(0, 255).astype(np.uint8)
    return np.ascontiguousarray(image[..., :3])


def _camera_path(rng: np.random.Generator, motion: str, src_hw: tuple[int, int], view_hw: tuple[int, int],
                 num_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame view centre (x, y) in source pixels and scale (source pixels per output pixel)."""
    sh, sw = src_hw
    vh, vw = view_hw
    # Base scale: the view covers 35-60 % of the source's limiting side, so there is room to pan.
    fit = min(sh / vh, sw / vw)
    base = fit * rng.uniform(0.35, 0.6)
    if motion == "pan":
        s0 = s1 = base
    else:
        zoom = rng.uniform(1.4, 2.0)
        s0, s1 = (base, base / zoom) if rng.random() < 0.5 else (base / zoom, base)
    if motion == "zoom":
        cx = sw / 2 + rng.uniform(-0.1, 0.1) * sw
        cy = sh / 2 + rng.uniform(-0.1, 0.1) * sh
        c0 = c1 = np.array([cx, cy])
    else:
        half = np.array([vw, vh]) * max(s0, s1) / 2
        lo, hi = half, np.array([sw, sh]) - half
        angle = rng.uniform(0, 2 * np.pi)
        direction = np.array([np.cos(angle), np.sin(angle)])
        centre = (lo + hi) / 2
        # Travel as far as the image allows along the chosen direction, symmetric around the centre.
        reach = np.min(np.where(np.abs(direction) > 1e-6, (hi - lo) / 2 / np.maximum(np.abs(direction), 1e-6),
                                np.inf))
        c0, c1 = centre - direction * reach * 0.95, centre + direction * reach * 0.95
    t = np.linspace(0.0, 1.0, num_frames)[:, None]
    centres = c0[None] * (1 - t) + c1[None] * t
    scales = s0 * (s1 / s0) ** t[:, 0]  # geometric: constant zoom speed
    return centres, scales


def _draw_sprites(rng: np.random.Generator, frames: np.ndarray, count: int) -> None:
    """Coloured discs and boxes that enter from one edge and leave through the opposite one (in place)."""
    t_total, h, w, _ = frames.shape
    for _ in range(count):
        radius = int(max(2, rng.uniform(0.06, 0.14) * min(h, w)))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        shape = "disc" if rng.random() < 0.5 else "box"
        # Start outside one edge, end outside the opposite one, during a random part of the video.
        if rng.random() < 0.5:
            y0, y1 = rng.uniform(0.15, 0.85, 2) * h
            x0, x1 = (-radius, w + radius) if rng.random() < 0.5 else (w + radius, -radius)
        else:
            x0, x1 = rng.uniform(0.15, 0.85, 2) * w
            y0, y1 = (-radius, h + radius) if rng.random() < 0.5 else (h + radius, -radius)
        start = int(rng.integers(0, max(1, t_total // 2)))
        end = int(rng.integers(min(t_total - 1, start + max(2, t_total // 3)), t_total))
        for t in range(start, end + 1):
            a = (t - start) / max(1, end - start)
            x, y = int(round(x0 + (x1 - x0) * a)), int(round(y0 + (y1 - y0) * a))
            if shape == "disc":
                cv2.circle(frames[t], (x, y), radius, colour, thickness=-1, lineType=cv2.LINE_AA)
            else:
                corner0, corner1 = (x - radius, y - radius), (x + radius, y + radius)
                cv2.rectangle(frames[t], corner0, corner1, colour, thickness=-1)


def synthetic_video(
    index: int,
    *,
    seed: int = 0,
    num_frames: int = 48,
    height: int = 96,
    width: int = 96,
    fps: float = 24.0,
    max_sprites: int = 3,
    backgrounds: tuple[str, ...] = BACKGROUND_IMAGES,
) -> SyntheticVideo:
    """Video number ``index`` of the synthetic family ``seed`` (deterministic), over one of ``backgrounds``."""
    if num_frames < 1 or height < 8 or width < 8:
        raise ValueError("synthetic videos need num_frames >= 1 and a size of at least 8x8")
    rng = np.random.default_rng([seed, index, 0x5EED])
    background = backgrounds[int(rng.integers(len(backgrounds)))]
    motion = MOTIONS[int(rng.integers(len(MOTIONS)))]
    source = _background(background)
    # Work on a source at least ~3x the view so pans have somewhere to go, whatever the output size.
    up = max(1.0, 3.0 * max(height, width) / min(source.shape[:2]))
    if up > 1.0:
        source = cv2.resize(source, None, fx=up, fy=up, interpolation=cv2.INTER_CUBIC)
    centres, scales = _camera_path(rng, motion, source.shape[:2], (height, width), num_frames)

    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    for t in range(num_frames):
        s = scales[t]
        cx, cy = centres[t]
        # Output pixel (u, v) samples source (cx + s*(u - w/2), cy + s*(v - h/2)).
        to_source = np.array([[s, 0.0, cx - s * width / 2], [0.0, s, cy - s * height / 2]], dtype=np.float64)
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        frames[t] = cv2.warpAffine(source, to_source, (width, height), flags=flags,
                                   borderMode=cv2.BORDER_REFLECT_101)
    num_sprites = int(rng.integers(0, max_sprites + 1)) if max_sprites > 0 else 0
    _draw_sprites(rng, frames, num_sprites)
    name = f"synthetic-{seed}-{index:05d}"
    return SyntheticVideo(frames, float(fps), name, background, motion, num_sprites)


def iter_synthetic_videos(count: int, *, seed: int = 0, **kwargs) -> Iterator[SyntheticVideo]:
    """Yield ``count`` synthetic videos as arrays (see ``synthetic_video`` for the keyword arguments)."""
    for index in range(count):
        yield synthetic_video(index, seed=seed, **kwargs)


def write_synthetic_videos(
    folder: str | os.PathLike, count: int, *, seed: int = 0, extension: str = ".mp4", **kwargs
) -> list[Path]:
    """Write ``count`` synthetic videos into ``folder`` (``m3ddm.io.write_video``); returns their paths."""
    from m3ddm.io import write_video

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for video in iter_synthetic_videos(count, seed=seed, **kwargs):
        path = folder / f"{video.name}{extension}"
        write_video(path, video.frames, video.fps)
        paths.append(path)
    return paths

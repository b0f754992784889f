"""Shimmer on a static camera (issue 12): a still photo with fresh sensor-like noise every frame, outpainted with a
model at its defaults through the user's path (the written MP4 read back); prints the mean frame-to-frame change
in the generated border beside the same in the picture. A steady border changes about as little as the picture.
``--scene wall`` is a textureless still (a plain beige wall): there the border should also keep the wall's colour,
so the table adds the largest per-channel difference between the border's mean colour and the picture's.

    python scripts/shimmer_check.py [--model DIR ...] [--scene coffee|wall] [--frames 48] [--out runs/shimmer-check]
        [--noise-share S] [--strides 5,1] [--prefill telea|propagate] [--steady N] [--texture A] [--strength S]
        [--steps N]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image
from user_output import outpaint_and_read

from m3ddm.canvas import resize
from m3ddm.commands.arguments import parse_int_list, parse_ratio
from m3ddm.io import write_frame_folder
from m3ddm.pipeline import M3DDMPipeline, OutpaintOptions

TARGETS = ("16:9", "9:16")  # coffee is 3:2: sides and top/bottom
NOISE_STD = 2.0  # levels of 255: a camera's noise on a static scene


WALL_COLOUR = (200.0, 190.0, 170.0)  # a beige wall, 5 % darker towards its left and right edges


def still_picture(scene: str) -> np.ndarray:
    """The still at 320x212: scikit-image's coffee, or a textureless wall."""
    if scene == "wall":
        shading = 1 - 0.05 * np.linspace(-1, 1, 320) ** 2
        return np.broadcast_to(np.asarray(WALL_COLOUR) * shading[None, :, None], (212, 320, 3)).astype(np.float32)
    from skimage import data

    return resize(data.coffee(), 320, 212).astype(np.float32)


def static_clip(folder: Path, frames: int, scene: str = "coffee") -> None:
    """The scene's still, ``frames`` times, each with fresh Gaussian noise (seeded)."""
    still = still_picture(scene)
    rng = np.random.default_rng(0)
    video = np.stack([np.clip(still + rng.normal(0, NOISE_STD, still.shape), 0, 255) for _ in range(frames)])
    write_frame_folder(folder, np.rint(video).astype(np.uint8), fps=24)


def frame_change(frames: np.ndarray, mask: np.ndarray) -> float:
    """Mean absolute change between consecutive frames (levels of 255) over the pixels of ``mask``."""
    steps = np.abs(np.diff(frames.astype(np.float32), axis=0)).mean(axis=-1)
    return float(steps[:, mask].mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="model folder (repeatable; default: the shipped one)")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--out", type=Path, default=Path("runs/shimmer-check"))
    parser.add_argument("--noise-share", type=float, help="start noise common to all frames (default: the model's)")
    parser.add_argument("--strides", type=lambda t: tuple(parse_int_list(t, "strides")),
                        help="coarse-to-fine strides (default: the plan's)")
    parser.add_argument("--prefill", help="telea or propagate (default: the model's)")
    parser.add_argument("--steady", type=int, help="frames averaged on either side (default: the model's)")
    parser.add_argument("--texture", type=float, help="the picture's grain lent to the border (default: the model's)")
    parser.add_argument("--strength", type=float, help="1 = from pure noise (default: the model's)")
    parser.add_argument("--steps", type=int, help="denoising steps (default: the model's)")
    parser.add_argument("--scene", choices=("coffee", "wall"), default="coffee", help="the still (default coffee)")
    args = parser.parse_args()
    clip = args.out / f"{args.scene}-static"
    if not clip.exists():
        static_clip(clip, args.frames, args.scene)
    wall = args.scene == "wall"
    print("| model | target | border change | picture change | ratio |" + (" colour shift |" if wall else ""))
    print("|---|---|---:|---:|---:|" + ("---:|" if wall else ""))
    for k, model in enumerate(args.model or [None]):
        pipe = M3DDMPipeline.load(model)
        for target in TARGETS:
            output = args.out / f"{args.scene}_model{k}_{target.replace(':', '-')}.mp4"
            options = OutpaintOptions(ratio=parse_ratio(target), noise_share=args.noise_share, strides=args.strides,
                                      prefill=args.prefill, steady=args.steady, texture=args.texture,
                                      strength=args.strength, steps=args.steps)
            frames, known = outpaint_and_read(pipe, clip, output, options)
            picture = np.zeros(frames.shape[1:3], dtype=bool)
            picture[known.y0 : known.y1, known.x0 : known.x1] = True
            Image.fromarray(frames[len(frames) // 2]).save(output.with_suffix(".png"))
            border, inside = frame_change(frames, ~picture), frame_change(frames, picture)
            line = f"| {model or 'shipped'} | {target} | {border:.2f} | {inside:.2f} | {border / inside:.1f} |"
            if wall:  # levels of 255; a wall's border keeps its colour
                shift = np.abs(frames[:, ~picture].mean(axis=(0, 1)) - frames[:, picture].mean(axis=(0, 1))).max()
                line += f" {shift:.1f} |"
            print(line)


if __name__ == "__main__":
    main()

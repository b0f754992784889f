"""Shimmer on a static camera (issue 12): a still photo with fresh sensor-like noise every frame, outpainted with a
model at its defaults through the user's path (the written MP4 read back); prints the mean frame-to-frame change
in the generated border beside the same in the picture. A steady border changes about as little as the picture.

    python scripts/shimmer_check.py [--model DIR ...] [--frames 48] [--out runs/shimmer-check] [--noise-share S]
        [--strides 5,1] [--prefill telea|propagate] [--steady N] [--texture A]
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


def static_clip(folder: Path, frames: int) -> None:
    """scikit-image's coffee at 320x212, ``frames`` times, each with fresh Gaussian noise (seeded)."""
    from skimage import data

    still = resize(data.coffee(), 320, 212).astype(np.float32)
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
    args = parser.parse_args()
    clip = args.out / "coffee-static"
    if not clip.exists():
        static_clip(clip, args.frames)
    print("| model | target | border change | picture change | ratio |")
    print("|---|---|---:|---:|---:|")
    for k, model in enumerate(args.model or [None]):
        pipe = M3DDMPipeline.load(model)
        for target in TARGETS:
            output = args.out / f"model{k}_{target.replace(':', '-')}.mp4"
            options = OutpaintOptions(ratio=parse_ratio(target), noise_share=args.noise_share, strides=args.strides,
                                      prefill=args.prefill, steady=args.steady, texture=args.texture)
            frames, known = outpaint_and_read(pipe, clip, output, options)
            picture = np.zeros(frames.shape[1:3], dtype=bool)
            picture[known.y0 : known.y1, known.x0 : known.x1] = True
            Image.fromarray(frames[len(frames) // 2]).save(output.with_suffix(".png"))
            border, inside = frame_change(frames, ~picture), frame_change(frames, picture)
            print(f"| {model or 'shipped'} | {target} | {border:.2f} | {inside:.2f} | {border / inside:.1f} |")


if __name__ == "__main__":
    main()

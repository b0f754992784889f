"""`m3ddm plan`: show the coarse-to-fine schedule for a number of frames, as a diagram or as JSON."""

from __future__ import annotations

import argparse
import json

from m3ddm.commands.arguments import parse_strides
from m3ddm.planning import DEFAULT_WINDOW, coarse_to_fine_plan


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="show which frames each window generates (coarse-to-fine schedule)",
        description="Show the coarse-to-fine schedule: per level, the windows, their frames and guides "
        "(* = generated earlier and given as a condition).",
    )
    parser.add_argument("--frames", type=int, required=True, metavar="N", help="number of frames to plan for")
    parser.add_argument(
        "--strides",
        default=None,
        metavar="S1,S2,...",
        help="frame interval per level, coarse to fine, ending in 1 (default 15,5,1 from 50 frames, else 1)",
    )
    parser.add_argument("--window", type=int, default=DEFAULT_WINDOW, help="frames per window (default 16)")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    strides = parse_strides(args.strides) if args.strides is not None else None
    plan = coarse_to_fine_plan(args.frames, strides, window=args.window)
    print(json.dumps(plan.to_json()) if args.json else plan.draw())
    return 0

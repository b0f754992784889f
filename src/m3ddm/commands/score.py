"""`m3ddm score`: score an existing outpainted video against its ground truth."""

from __future__ import annotations

import argparse
import json
import math

from m3ddm.commands.arguments import parse_border


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "score",
        help="score an outpainted video against the ground truth (full frame, generated region, seam)",
        description="Compare PRED with GT (video files or frame folders of equal length and size). --border "
        "gives the generated border as fractions of the output frame (LEFT,RIGHT of its width, TOP,BOTTOM "
        "of its height) or in whole pixels. Prints MSE, PSNR, SSIM, warp error and flicker (and LPIPS with "
        "--lpips-weights), and the seam metric: the mean step across the edge of the known region over the "
        "mean step between neighbouring rows/columns just inside it (about 1 = no visible seam). Without GT "
        "only the seam metric is computed.",
    )
    parser.add_argument("pred", help="the outpainted video (file or frame folder)")
    parser.add_argument("gt", nargs="?", help="the ground-truth video (file or frame folder); optional")
    border = parser.add_mutually_exclusive_group(required=True)
    border.add_argument(
        "--border",
        metavar="LEFT,TOP,RIGHT,BOTTOM",
        help="generated border as fractions of the output frame, e.g. 0.125,0,0.125,0, or pixels, e.g. 0,85,0,85",
    )
    # the old name, kept for scripts: it meant the output-frame border here but the source fractions in outpaint
    border.add_argument("--pad", dest="border", help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="print the scores as JSON")
    parser.add_argument("--lpips-weights", metavar="PATH", help="local LPIPS-Alex weights (file or folder)")
    parser.add_argument("--max-frames", type=int, metavar="N", help="score only the first N frames")
    parser.add_argument("--device", help="torch device for LPIPS (default: cuda if available, else cpu)")
    parser.set_defaults(func=run)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.5g}"


def run(args: argparse.Namespace) -> int:
    from m3ddm.errors import UserError
    from m3ddm.evaluation.protocol import score_files
    from m3ddm.evaluation.report import json_safe

    if args.max_frames is not None and args.max_frames < 1:
        raise UserError("--max-frames must be at least 1")
    result = score_files(
        args.pred,
        args.gt,
        parse_border(args.border),
        lpips_weights=args.lpips_weights,
        max_frames=args.max_frames,
        device=args.device,
    )
    if args.json:
        print(json.dumps(json_safe(result), allow_nan=False))
        return 0
    print(f"{result['frames']} frames, generated border (px L,T,R,B) = {tuple(result['pad_px'])}")
    if "full" in result:
        metrics = list(result["full"])
        print(f"{'':8s}" + "".join(f"{m:>12s}" for m in metrics))
        for scope in ("full", "region"):
            print(f"{scope:8s}" + "".join(f"{_fmt(result[scope].get(m)):>12s}" for m in metrics))
    seam = result["seam"]
    reference = f", ground truth {_fmt(seam['gt'])}" if "gt" in seam else ""
    print(
        f"seam    {_fmt(seam['ratio'])} (step across the seam {_fmt(seam['step'])} / step just inside "
        f"{_fmt(seam['inside'])}; about 1 = no visible seam{reference})"
    )
    if "full" in result:
        for key, reason in result["unavailable"].items():
            print(f"{key}: {reason}")
    else:
        print("no ground truth: only the seam metric")
    return 0

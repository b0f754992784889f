"""`m3ddm outpaint INPUT... -o OUTPUT`: the main job (one input, or a batch in which a bad input stops nothing)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from m3ddm.commands.arguments import (
    parse_pad,
    parse_ratio,
    parse_seconds,
    parse_size,
    parse_strides,
    parse_target_ratios,
)
from m3ddm.errors import UserError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")
DTYPES = ("float32", "float16", "bfloat16")
# The shipped model's settings, read without importing torch (building the parser must stay quick).
_SHIPPED_INDEX = Path(__file__).resolve().parent.parent / "weights" / "default" / "model_index.json"


def _shipped(key: str, fallback):
    try:
        value = json.loads(_SHIPPED_INDEX.read_text()).get(key, fallback)
    except (OSError, ValueError):
        return fallback
    return "/".join(f"{v:g}" for v in value) if isinstance(value, list) else value


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "outpaint", help="outpaint a video (or several) to a new aspect ratio or with explicit padding",
        description="Outpaint videos with M3DDM's hybrid coarse-to-fine pipeline. You supply an input video (file, "
                    "frame folder or image; several, or a folder of videos, for a batch), an output name and a "
                    "target (--ratio or --pad). Without --model or --unet/--vae the shipped default model is used.",
    )
    p.add_argument("inputs", nargs="+", help="video files, frame folders or images; a folder of videos")
    p.add_argument("-o", "--output", required=True,
                   help="output file (.mp4/.mkv/.mov, an image, or a name without extension for a frame folder) for "
                        "one input; an output folder for several inputs or a folder of videos")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--ratio", help="target aspect ratio W:H, e.g. 9:16, 1:1, 2.39:1; several, comma-separated "
                                        "(9:16,1:1): one generation, one output each, named <stem>_<w>-<h>.<ext>")
    target.add_argument("--pad", help="LEFT,TOP,RIGHT,BOTTOM border as fractions (<1) or pixels")
    model = p.add_argument_group("model")
    model.add_argument("--model", help="pipeline folder (model_index.json, unet/, vae/, scheduler/)")
    model.add_argument("--unet", help="official-layout UNet folder (with --vae)")
    model.add_argument("--vae", help="SD VAE folder (diffusers AutoencoderKL), with --unet")
    span = p.add_argument_group("time range")
    span.add_argument("--start", type=parse_seconds, metavar="SECONDS",
                      help="outpaint from this time on (seconds, or [H:]MM:SS.ss; default: the first frame); the "
                           "audio and the global frames come from the range")
    span.add_argument("--end", type=parse_seconds, metavar="SECONDS",
                      help="outpaint up to this time (frames shown before it; default: the last frame)")
    p.add_argument("--size", type=int,
                   help=f"working long side in pixels, a multiple of 8 (default: the model's: "
                        f"{_shipped('default_size', 160)} for the shipped model, 256 for --unet/--vae)")
    p.add_argument("--canvas", choices=("target", "square"),
                   help="generate only the target canvas (default) or the official square canvas (the default "
                        "with --official-compat)")
    p.add_argument("--output-size", help="WxH of the output (default: source pixels kept at full resolution)")
    p.add_argument("--official-output", action="store_true", help="everything at the working size, as upstream")
    p.add_argument("--scheduler", help=f"dpmpp, ddim, pndm (official, 50 steps) or euler (default: the model's: "
                                       f"{_shipped('default_scheduler', 'dpmpp')} for the shipped model, pndm for "
                                       f"--unet/--vae)")
    p.add_argument("--steps", type=int, help=f"denoising steps (default: the model's: "
                                             f"{_shipped('default_steps', 20)} for the shipped model, "
                                             f"{_shipped('default_noise_steps', 1)} there from noise (--strength 1), "
                                             f"50 for --unet/--vae)")
    p.add_argument("--strides", help="coarse-to-fine strides, e.g. 15,5,1 (default: 15,5,1 from 50 frames on, "
                                     "else 1 = dense)")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same video (default 0)")
    p.add_argument("--guidance-context", type=float,
                   help=f"s1 of eq. 4 (default: the model's: {_shipped('default_guidance', '1/1').split('/')[0]} "
                        f"for the shipped model, the paper's 2 for --unet/--vae)")
    p.add_argument("--guidance-global", type=float,
                   help=f"s2 of eq. 4 (default: the model's: {_shipped('default_guidance', '1/1').split('/')[-1]} "
                        f"for the shipped model, the paper's 4 for --unet/--vae)")
    p.add_argument("--batch-windows", type=int, default=4,
                   help="independent windows denoised together (default 4; the output does not change)")
    p.add_argument("--init", choices=("prefill", "noise"), default="prefill",
                   help="start from the pre-fill plus noise (default, official) or from pure noise")
    p.add_argument("--prefill",
                   help=f"the border's pre-fill: telea (per frame, official), smooth (per frame, the edge's colours "
                        f"extrapolated smoothly), propagate (pixels other frames saw, brought in by the camera's "
                        f"motion; TELEA for the rest) or propagate-smooth (the same, smooth for the rest) "
                        f"(default: the model's: "
                        f"{_shipped('default_prefill', 'telea')} for the shipped model, telea for --unet/--vae)")
    p.add_argument("--strength", type=float,
                   help=f"in (0, 1]: noise the pre-fill only this far up and run that share of the steps "
                        f"(image-to-image; default: the model's: {_shipped('default_strength', 1.0):g} for the "
                        f"shipped model, 1 = from noise for --unet/--vae)")
    p.add_argument("--noise-share", type=float,
                   help=f"in [0, 1): share of the start noise common to every frame; higher flickers less "
                        f"(default: the model's below --strength 1: {_shipped('default_noise_share', 0.0):g} for "
                        f"the shipped model; 0 = independent noise per frame as the paper, and from noise)")
    p.add_argument("--keep-seen", action=argparse.BooleanOptionalAction,
                   help=f"paste the border pixels that other frames of the shot saw (the camera's motion brings them "
                        f"back) over the model's border, sharp at the output's size (default: the model's: "
                        f"{'on' if _shipped('default_keep_seen', False) else 'off'} for the shipped model, off for "
                        f"--unet/--vae)")
    p.add_argument("--steady", type=int, metavar="N",
                   help=f"average each frame's border with the borders of N frames on either side, brought into "
                        f"place by the camera's motion: less shimmer, no jump between windows; 0 = off (default: the "
                        f"model's: {_shipped('default_steady', 0)} for the shipped model, 0 for --unet/--vae)")
    p.add_argument("--texture", type=float, metavar="A",
                   help=f"in [0, 1]: lend the picture's fine grain (finer than the working size can paint) to the "
                        f"band of the border next to it, so grass does not stop at the seam; 0 = off, 1 = full "
                        f"weight (default: the model's: {_shipped('default_texture', 0.0):g} for the shipped model, "
                        f"0 for --unet/--vae)")
    p.add_argument("--replace-known", action="store_true",
                   help="RePaint-style: after every step reset the known region's latents to the source's, noised "
                        "to that step (default off)")
    p.add_argument("--no-colour-match", dest="colour_match", action="store_false",
                   help="do not shift the border's colour to continue the source's at the seam (default: match)")
    p.add_argument("--vae-batch", type=int, default=8,
                   help="frames per VAE call (VAE slicing: lower uses less memory; default 8)")
    p.add_argument("--vae-tiling", action="store_true",
                   help="encode and decode in blended tiles (for large working sizes; changes the output slightly)")
    p.add_argument("--official-compat", action="store_true",
                   help="the official driver step for step (pndm only): its square canvas, resize and rounding, "
                        "PNDM start, one re-seeded noise per window, posterior sampling, fps and guide-frame "
                        "overwrite (see the README's official-compatibility section)")
    p.add_argument("--global-frames", type=int,
                   help=f"number of global frames (default: the model's: {_shipped('num_global_frames', 16)} for the "
                        f"shipped model, 16 for --unet/--vae)")
    p.add_argument("--crf", type=int, default=18, help="H.264 quality (lower is better; default 18)")
    tune = p.add_argument_group("per-video adaptation", "tune a copy of the model on the input's own known region "
                                "before painting its border (the base model is not changed)")
    tune.add_argument("--adapt", type=int, default=0, metavar="STEPS",
                      help="adaptation steps (default 0 = off; each costs about three UNet calls)")
    tune.add_argument("--adapt-method", choices=("lora", "full"), default="lora",
                      help="LoRA adapters on the attention and convolution layers (default), or all weights")
    tune.add_argument("--adapt-lr", type=float, metavar="LR",
                      help="learning rate (default: 1e-3 for lora, 1e-4 for full)")
    tune.add_argument("--adapt-rank", type=int, default=8, help="LoRA rank (default 8)")
    tune.add_argument("--adapt-batch", type=int, default=1, help="clips per adaptation step (default 1)")
    tune.add_argument("--save-adapter", metavar="DIR", help="keep the tuned adapter in DIR (with --adapt)")
    tune.add_argument("--adapter", metavar="DIR",
                      help="use an adapter saved by --save-adapter (e.g. another clip of the same camera) instead "
                           "of tuning")
    run_group = p.add_argument_group("running")
    run_group.add_argument("--device", default="auto",
                           help="auto (default: cuda if available, then mps, else cpu), cpu, cuda, cuda:1, mps")
    run_group.add_argument("--dtype", choices=DTYPES, default="float32", help="model precision (default float32)")
    run_group.add_argument("--threads", type=int, metavar="N",
                           help="CPU threads for torch and OpenCV (default: torch's choice, one per core)")
    run_group.add_argument("--resume", action="store_true", help="continue an interrupted run (same settings)")
    run_group.add_argument("--work-dir", help="where resumable state is kept (default: a hidden folder beside the "
                                              "output)")
    run_group.add_argument("--quiet", action="store_true",
                           help="no progress (default: a bar on a terminal; otherwise one line per stage and per "
                                "finished window, with percent, elapsed time and ETA)")
    look = p.add_argument_group("previews")
    look.add_argument("--preview", metavar="FILE.png",
                      help="also write a contact sheet: source and output at a few times, generated region outlined "
                           "(in a batch, one per output: OUTPUT_FILE.png beside it)")
    look.add_argument("--side-by-side", metavar="FILE.mp4",
                      help="also write a video of the source (where it sits in the frame) beside the output "
                           "(in a batch, one per output: OUTPUT_FILE.mp4 beside it)")
    p.set_defaults(func=run)


def _expand_inputs(inputs: list[str]) -> tuple[list[Path], bool]:
    """The inputs one by one (a folder of videos gives its videos) and whether this is a batch.

    A batch keeps inputs that do not exist or hold nothing: they fail one by one, the others still run.
    """
    from m3ddm.io import list_frame_files

    paths: list[Path] = []
    batch = len(inputs) > 1
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            videos = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
            if videos:
                paths.extend(videos)
                batch = True  # a folder of videos always writes into an output folder
                continue
            try:
                list_frame_files(path)  # a frame folder is one input
            except UserError:
                if not batch:
                    raise UserError(f"{path} holds neither videos nor frames") from None
        elif not path.exists() and not batch:
            raise UserError(f"input not found: {path}")
        paths.append(path)
    return paths, batch


def _batch_outputs(inputs: list[Path], output: Path) -> list[Path]:
    if output.exists() and not output.is_dir():
        raise UserError(f"several inputs need an output folder, and {output} is a file")
    output.mkdir(parents=True, exist_ok=True)
    names: dict[str, int] = {}
    outputs = []
    for path in inputs:
        suffix = path.suffix if path.suffix.lower() in (".mp4", ".mov", ".mkv", ".m4v") else ".mp4"
        stem = f"{path.stem}_outpainted"
        count = names[stem] = names.get(stem, 0) + 1
        outputs.append(output / f"{stem}{'' if count == 1 else f'_{count}'}{suffix}")  # same names from 2 folders
    return outputs


def pick_device(name: str):
    """``auto``: cuda if available (this process's GPU under accelerate), then mps, else cpu."""
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r} (use auto, cpu, cuda, cuda:N or mps)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but no CUDA GPU is available")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserError("--device mps was asked for but no Apple GPU is available")
    return device


def run(args: argparse.Namespace) -> int:
    import torch

    from m3ddm.adaptation import AdaptSettings
    from m3ddm.jobs import Shard, outpaint_batch, outpaint_file
    from m3ddm.pipeline import M3DDMPipeline, OutpaintOptions
    from m3ddm.progress import Reporter

    inputs, batch = _expand_inputs(args.inputs)
    output = Path(args.output)
    if args.batch_windows < 1 or (args.steps is not None and args.steps < 1):
        raise UserError("--batch-windows and --steps must be at least 1")
    if args.threads is not None and args.threads < 1:
        raise UserError("--threads must be at least 1")
    if args.start is not None and args.end is not None and args.end <= args.start:
        raise UserError(f"--end ({float(args.end):g} s) must be after --start ({float(args.start):g} s)")
    several = args.ratio is not None and "," in args.ratio
    options = OutpaintOptions(
        ratio=parse_ratio(args.ratio) if args.ratio is not None and not several else None,
        ratios=parse_target_ratios(args.ratio) if several else (),
        pad=parse_pad(args.pad) if args.pad is not None else None, size=args.size,
        canvas=args.canvas or ("square" if args.official_compat else "target"),
        output_size=parse_size(args.output_size) if args.output_size is not None else None,
        official_output=args.official_output, scheduler=args.scheduler, steps=args.steps,
        strides=parse_strides(args.strides) if args.strides is not None else None,
        seed=args.seed, guidance_context=args.guidance_context, guidance_global=args.guidance_global,
        batch_windows=args.batch_windows, init=args.init, strength=args.strength, noise_share=args.noise_share,
        prefill=args.prefill, keep_seen=args.keep_seen, steady=args.steady,
        texture=args.texture, vae_batch=args.vae_batch, vae_tiling=args.vae_tiling, replace_known=args.replace_known,
        colour_match=args.colour_match, official_compat=args.official_compat,
        num_global_frames=args.global_frames,
        adapt=AdaptSettings(args.adapt, args.adapt_method, args.adapt_lr, args.adapt_rank, args.adapt_batch),
        adapter=args.adapter,
    )
    if args.save_adapter is not None and not args.adapt:
        raise UserError("--save-adapter keeps the adapter that --adapt STEPS tunes: give --adapt too")
    if args.save_adapter is not None and batch:
        raise UserError("--save-adapter takes one input (an adapter is tuned on one video)")
    if args.threads is not None:
        import cv2

        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)
    dtype = getattr(torch, args.dtype)
    device = pick_device(args.device)
    speaker = Reporter.for_stream(args.quiet or Shard.current().rank != 0)
    model_name = args.model or (args.unet and f"{args.unet} + {args.vae}") or "the shipped default model"
    speaker.stage("model", f"{model_name} on {device} ({args.dtype}, {torch.get_num_threads()} CPU threads)")
    pipe = M3DDMPipeline.load(args.model, args.unet, args.vae, torch_dtype=dtype)
    pipe.unet.to(device)
    pipe.vae.to(device)
    job = {"crf": args.crf, "resume": args.resume, "start": args.start, "end": args.end}

    def summary(result) -> None:
        if Shard.current().rank == 0:
            print(f"{result.frames} frames in {result.seconds:.1f} s -> {result.output} "
                  f"({result.geometry.output_w}x{result.geometry.output_h}, {result.windows} windows)", flush=True)

    if not batch:
        result = outpaint_file(pipe, inputs[0], output, options, work_dir=args.work_dir,
                               progress=Reporter.for_stream(args.quiet or Shard.current().rank != 0),
                               preview=args.preview, side_by_side=args.side_by_side,
                               save_adapter=args.save_adapter, **job)
        summary(result)
        return 0
    outputs = _batch_outputs(inputs, output)
    jobs = list(zip(inputs, outputs, strict=True))
    report = outpaint_batch(pipe, jobs, options, quiet=args.quiet, work_dir=args.work_dir, on_done=summary,
                            preview=args.preview, side_by_side=args.side_by_side, **job)
    if Shard.current().rank != 0:
        return 0 if report.ok else UserError.exit_code
    total = len(jobs)
    if report.ok:
        print(f"all {total} inputs outpainted into {output}", flush=True)
        return 0
    failed = ", ".join(str(path) for path, _ in report.failed)
    print(f"m3ddm outpaint: {len(report.done)} of {total} inputs outpainted into {output}; "
          f"{len(report.failed)} failed: {failed}", file=sys.stderr, flush=True)
    return UserError.exit_code

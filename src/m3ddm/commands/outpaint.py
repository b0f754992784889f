"""`m3ddm outpaint INPUT... -o OUTPUT`: the main job."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from m3ddm.errors import UserError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")
DTYPES = ("float32", "float16", "bfloat16")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "outpaint", help="outpaint a video (or several) to a new aspect ratio or with explicit padding",
        description="Outpaint videos with M3DDM's hybrid coarse-to-fine pipeline. Without --model or --unet/--vae "
                    "the shipped default model is used.",
    )
    p.add_argument("inputs", nargs="+", help="video files, frame folders or images; a folder of videos")
    p.add_argument("-o", "--output", required=True, help="output file (one input) or output folder (several)")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--ratio", help="target aspect ratio W:H, e.g. 9:16, 1:1, 2.39:1")
    target.add_argument("--pad", help="LEFT,TOP,RIGHT,BOTTOM border as fractions (<1) or pixels")
    model = p.add_argument_group("model")
    model.add_argument("--model", help="pipeline folder (model_index.json, unet/, vae/, scheduler/)")
    model.add_argument("--unet", help="official-layout UNet folder (with --vae)")
    model.add_argument("--vae", help="SD VAE folder (diffusers AutoencoderKL), with --unet")
    p.add_argument("--size", type=int, help="working long side in pixels (multiple of 8; model default, e.g. 256)")
    p.add_argument("--canvas", choices=("target", "square"), default="target",
                   help="generate only the target canvas (default) or the official square canvas")
    p.add_argument("--output-size", help="WxH of the output (default: source pixels kept at full resolution)")
    p.add_argument("--official-output", action="store_true", help="everything at the working size, as upstream")
    p.add_argument("--scheduler", help="dpmpp, ddim, pndm (official, 50 steps) or euler (default: the model's)")
    p.add_argument("--steps", type=int, help="denoising steps (default: the model's)")
    p.add_argument("--strides", help="coarse-to-fine strides, e.g. 15,5,1 (default for >= 50 frames); 1 = dense")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--guidance-context", type=float, help="s1 of eq. 4 (default: the model's; the paper's is 2)")
    p.add_argument("--guidance-global", type=float, help="s2 of eq. 4 (default: the model's; the paper's is 4)")
    p.add_argument("--batch-windows", type=int, default=4, help="independent windows denoised together")
    p.add_argument("--init", choices=("prefill", "noise"), default="prefill",
                   help="start from the TELEA pre-fill plus noise (official) or from pure noise")
    p.add_argument("--strength", type=float,
                   help="in (0, 1]: noise the pre-fill only this far up and run that share of the steps "
                        "(image-to-image; default: the model's, 1 = from noise)")
    p.add_argument("--noise-share", type=float,
                   help="in [0, 1): share of the start noise common to every frame; higher flickers less "
                        "(default: the model's, 0 = independent noise per frame as the paper)")
    p.add_argument("--vae-batch", type=int, default=8,
                   help="frames per VAE call (VAE slicing: lower uses less memory; default 8)")
    p.add_argument("--vae-tiling", action="store_true",
                   help="encode and decode in blended tiles (for large working sizes; changes the output slightly)")
    p.add_argument("--official-compat", action="store_true", help="reproduce the official PNDM start (pndm only)")
    p.add_argument("--global-frames", type=int, help="number of global frames (default 16)")
    p.add_argument("--crf", type=int, default=18, help="H.264 quality (lower is better; default 18)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--dtype", choices=DTYPES, default="float32")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run (same settings)")
    p.add_argument("--work-dir", help="where resumable state is kept (default: beside the output)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _output_size(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UserError(f"--output-size must look like 720x1280, got {text!r}") from None
    return w, h


def _expand_inputs(inputs: list[str]) -> list[Path]:
    from m3ddm.io import list_frame_files

    paths = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            videos = sorted(p for p in path.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
            if videos:
                paths.extend(videos)
                continue
            try:
                list_frame_files(path)  # a frame folder is one input
            except UserError:
                raise UserError(f"{path} holds neither videos nor frames") from None
        elif not path.exists():
            raise UserError(f"input not found: {path}")
        paths.append(path)
    return paths


def run(args: argparse.Namespace) -> int:
    import torch

    from m3ddm.pipeline import M3DDMPipeline, OutpaintOptions, Shard

    inputs = _expand_inputs(args.inputs)
    output = Path(args.output)
    if len(inputs) > 1:
        if output.exists() and not output.is_dir():
            raise UserError(f"several inputs need an output folder, and {output} is a file")
        output.mkdir(parents=True, exist_ok=True)
        outputs = [output / f"{p.stem}_outpainted{p.suffix if p.suffix in VIDEO_SUFFIXES else '.mp4'}"
                   for p in inputs]
    else:
        outputs = [output]
    if args.batch_windows < 1 or (args.steps is not None and args.steps < 1):
        raise UserError("--batch-windows and --steps must be at least 1")
    options = OutpaintOptions(
        ratio=args.ratio, pad=args.pad, size=args.size, canvas=args.canvas, output_size=_output_size(args.output_size),
        official_output=args.official_output, scheduler=args.scheduler, steps=args.steps, strides=args.strides,
        seed=args.seed, guidance_context=args.guidance_context, guidance_global=args.guidance_global,
        batch_windows=args.batch_windows, init=args.init, strength=args.strength, noise_share=args.noise_share,
        vae_batch=args.vae_batch, vae_tiling=args.vae_tiling,
        official_compat=args.official_compat,
        num_global_frames=args.global_frames,
    )
    dtype = getattr(torch, args.dtype)
    try:
        device = torch.device(args.device)
    except RuntimeError:
        raise UserError(f"unknown device {args.device!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but no CUDA GPU is available")
    pipe = M3DDMPipeline.load(args.model, args.unet, args.vae, torch_dtype=dtype)
    pipe.unet.to(device)
    pipe.vae.to(device)
    for source, target in zip(inputs, outputs, strict=True):
        result = pipe.outpaint_video(source, target, options, work_dir=args.work_dir, resume=args.resume,
                                     crf=args.crf, progress=not args.quiet and sys.stderr.isatty())
        if Shard.current().rank != 0:
            continue
        print(f"{result.frames} frames in {result.seconds:.1f} s -> {result.output} "
              f"({result.geometry.output_w}x{result.geometry.output_h}, {result.windows} windows)")
    return 0

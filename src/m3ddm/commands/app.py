"""`m3ddm app`: start the web app (Gradio; installed with the `app` extra)."""

from __future__ import annotations

import argparse

from m3ddm.errors import UserError

DTYPES = ("float32", "float16", "bfloat16")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "app", help="start the web app in a browser (needs the app extra: pip install -e '.[app]')",
        description="A Gradio web app: upload a video, choose a ratio or pads, preview the canvas, outpaint. "
                    "Without --model or --unet/--vae the shipped default model is used.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, default=7860)
    model = p.add_argument_group("model")
    model.add_argument("--model", help="pipeline folder (model_index.json, unet/, vae/, scheduler/)")
    model.add_argument("--unet", help="official-layout UNet folder (with --vae)")
    model.add_argument("--vae", help="SD VAE folder (diffusers AutoencoderKL), with --unet")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--dtype", choices=DTYPES, default="float32")
    p.add_argument("--work-dir", help="where uploads' results and example clips are kept (default: a temp folder)")
    p.set_defaults(func=run)


def model_label(args: argparse.Namespace) -> str:
    if args.unet or args.vae:
        return f"official UNet {args.unet} + VAE {args.vae}"
    return f"pipeline folder {args.model}" if args.model else "the shipped default model (a small preview model)"


def run(args: argparse.Namespace) -> int:
    from m3ddm.app.ui import build_demo, launch, require_gradio

    require_gradio()  # before loading a model: say at once when the extra is missing
    if not 0 < args.port < 65536:
        raise UserError(f"--port must be between 1 and 65535, got {args.port}")
    import torch

    from m3ddm.pipeline import M3DDMPipeline

    try:
        device = torch.device(args.device)
    except RuntimeError:
        raise UserError(f"unknown device {args.device!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but no CUDA GPU is available")
    pipe = M3DDMPipeline.load(args.model, args.unet, args.vae, torch_dtype=getattr(torch, args.dtype))
    pipe.unet.to(device)
    pipe.vae.to(device)
    demo = build_demo(pipe, model_label=model_label(args), work_root=args.work_dir)
    launch(demo, args.host, args.port, block=False)
    # printed once the server listens, so a supervisor (or a test) can wait on this line instead of polling
    print(f"m3ddm app: serving on http://{args.host}:{args.port} (Ctrl+C stops)", flush=True)
    demo.block_thread()
    return 0

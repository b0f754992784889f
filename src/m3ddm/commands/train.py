"""`m3ddm train`: train (or fine-tune, or resume) an M3DDM model from a YAML config."""

from __future__ import annotations

import argparse
import logging
import os


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train an M3DDM model by mask modeling",
        description="Train an M3DDM model by mask modeling. Multi-process: accelerate launch --multi_gpu "
        "--num_processes N -m m3ddm train ... (on a CPU-only machine this runs N CPU processes). The output "
        "folder ends with unet/ (EMA weights), vae/, scheduler/ and training_config.yaml, ready for inference.",
    )
    parser.add_argument("--config", metavar="FILE|NAME",
                        help="a YAML config, or a shipped one: tiny-cpu, official")
    parser.add_argument("--max-steps", type=int, default=None, metavar="N", help="override train.max_steps")
    parser.add_argument("--output-dir", default=None, metavar="DIR", help="override train.output_dir")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the latest checkpoint in the output folder (starts fresh if none)")
    parser.add_argument("--warm-start", metavar="DIR", default=None,
                        help="start from a weights snapshot (EMA and raw UNet weights, no optimizer state; made by "
                        "--snapshot): the step numbering goes on, the optimizer and its LR warm-up start afresh")
    parser.add_argument("--snapshot", nargs=2, metavar=("RUN", "OUT"), default=None,
                        help="instead of training: write the weights snapshot of RUN's latest checkpoint (or of a "
                        "step-* checkpoint folder) to OUT, in float16 (small enough to commit)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from m3ddm.training.config import load_config
    from m3ddm.training.loop import train

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.snapshot:
        from m3ddm.training.snapshot import make_snapshot, read_snapshot

        out = make_snapshot(*args.snapshot)
        print(f"wrote the weights snapshot of step {read_snapshot(out).step} to {out}")
        return 0
    if not args.config:
        from m3ddm.errors import UserError

        raise UserError("train needs --config FILE|NAME (or --snapshot RUN OUT)")
    config = load_config(args.config)
    result = train(config, resume=args.resume, max_steps=args.max_steps, output_dir=args.output_dir,
                   warm_start=args.warm_start)
    if os.environ.get("RANK", "0") == "0":  # one summary line, not one per process
        print(f"trained to step {result.step}: {result.output_dir} "
              f"({result.clips_per_second:.2f} clips/s, {result.skipped_videos} unreadable videos skipped)")
    return 0

"""A GPU phase for the default model (issue 12): train a larger UNet on one GPU within a wall-clock budget, and send
its weights back small enough for the device tool (files of at most 16 MiB, at most 8 of them).

    bash scripts/device/gpu_train_v5.sh --quick      # here, on the CPU: the same steps at a tiny size (a dry run)
    bash scripts/device/gpu_train_v5.sh              # there (device run, carry [".whl"]): about 8 minutes
    python scripts/device/gpu_train_v5.py assemble FILES_AT OUT   # here: an inference folder from what came back
    m3ddm evaluate --data runs/default-v4/data/val-wide --method m3ddm:OUT --ratio 0.25 --direction horizontal \
        --no-fvd --no-visuals [--option strength=1]              # the measure the shipped model is judged by

What it trains (written before any run): the default model's recipe (``src/m3ddm/configs/default-v4.yaml``:
v-prediction, zero terminal SNR, trailing spacing, the paper's masking with a smaller unconditional share, the TAEF2
codec) on a UNet about 3.4 times as wide as the shipped one (preset ``mini``, one layer per block, levels
64-128-128-128: 14.4 M parameters against 4.2 M), from scratch, on in-memory synthetic pans and zooms over every
offline picture (the clips are made and encoded on the device: its image has no PyAV and no sample videos), batch
64 in bf16, the learning rate warmed up over 200 steps to 5e-4 and decayed by cosine to 0 at the last step. The
number of steps is what fits the budget: a short calibration run measures the step rate first.
What comes back: the EMA and raw weights in float16 (two shards each), the UNet's config, the training config, and
a summary (steps, rate, losses). ``assemble`` turns them into an inference folder with the shipped settings (to
evaluate with ``m3ddm evaluate --method m3ddm:OUT``) and a weights-only snapshot (to warm-start from).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

SHARD_BYTES = 14 * 2**20  # under the device tool's 16 MiB a file
CODEC = "training/default-v4/vae"
WIDTHS = [64, 128, 128, 128]


def training_dict(quick: bool, max_steps: int, out: Path, cache: Path) -> dict:
    """The run's config: the default model's recipe on a wider UNet and synthetic clips (see the module doc)."""
    import yaml

    base = yaml.safe_load(Path("src/m3ddm/configs/default-v4.yaml").read_text())
    base["data"].update(
        root=None, latent_cache=str(cache), latent_cache_size=None, num_workers=0 if quick else 4,
        synthetic={"num_videos": 8 if quick else 1200, "num_frames": 24 if quick else 64,
                   "height": 128, "width": 128, "fps": 24.0, "seed": 0},
        size=[64, 64] if quick else [96, 96], num_frames=8 if quick else 16,
        num_global_frames=4 if quick else 16)
    base["model"]["overrides"] = {"layers_per_block": 1, "block_out_channels": [16, 32, 32, 32] if quick else WIDTHS}
    base["model"]["min_snr_gamma"] = None
    # phase 5's relative objective is not (yet) better than the absolute one (model card, thirty-ninth rule)
    base["model"]["relative_to_context"] = False
    base["optim"].update(learning_rate=5e-4, lr_scheduler="cosine", lr_warmup_steps=2 if quick else 200)
    base["train"].update(
        output_dir=str(out), max_steps=max_steps, batch_size=2 if quick else 64, cpu=quick,
        mixed_precision="no" if quick else "bf16", num_threads=2 if quick else None,
        checkpoint_every=max(1, max_steps // 4), checkpoints_to_keep=2, log_every=5 if quick else 50,
        sample_every=0)
    return base


def train_within(budget_s: float, quick: bool, work: Path) -> tuple[Path, dict]:
    """Calibrate the step rate, then train as many steps as fit ``budget_s`` (cache building included)."""
    from m3ddm.training.config import config_from_dict
    from m3ddm.training.loop import train

    started = time.perf_counter()
    cache = work / "cache"
    stamps: list[float] = []
    calibration = 6 if quick else 60
    train(config_from_dict(training_dict(quick, calibration, work / "calibration", cache)),
          on_step_end=lambda step, loss: stamps.append(time.perf_counter()))
    # the first steps pay for compilation and the allocator's warm-up: time the second half
    half = len(stamps) // 2
    rate = (len(stamps) - 1 - half) / max(1e-6, stamps[-1] - stamps[half])
    left = budget_s - (time.perf_counter() - started)
    steps = max(10 if quick else 200, int(0.9 * left * rate))
    print(f"calibration: {rate:.2f} steps/s; {left:.0f} s left -> {steps} steps", flush=True)
    losses: list[float] = []
    train_started = time.perf_counter()
    result = train(config_from_dict(training_dict(quick, steps, work / "run", cache)),
                   on_step_end=lambda step, loss: losses.append(loss))
    wall = time.perf_counter() - train_started
    tail = losses[-max(1, len(losses) // 10):]
    summary = {"steps": result.step, "calibrated_rate": rate, "train_seconds": wall,
               "first_loss": losses[0] if losses else None, "last_tenth_loss": sum(tail) / len(tail),
               "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"}
    return work / "run", summary


def send_back(run: Path, summary: dict, out: Path) -> None:
    """Float16 EMA and raw weights in shards, the UNet config, the training config and the summary, into ``out``."""
    from safetensors.torch import save_file

    from m3ddm.training import checkpoint as ckpt
    from m3ddm.training.snapshot import unet_from_checkpoint

    last = ckpt.latest_checkpoint(run)
    trainer = json.loads((last / ckpt.STATE_FILE).read_text())
    out.mkdir(parents=True, exist_ok=True)
    for kind, averaged in (("ema", True), ("raw", False)):
        unet = unet_from_checkpoint(last, averaged=averaged)
        state = {k: v.detach().to(torch.float16).contiguous() for k, v in unet.state_dict().items()}
        shard: dict[str, torch.Tensor] = {}
        size, number = 0, 0
        for key, tensor in state.items():
            nbytes = tensor.numel() * tensor.element_size()
            if shard and size + nbytes > SHARD_BYTES:
                save_file(shard, str(out / f"unet_{kind}-{number}.safetensors"))
                shard, size, number = {}, 0, number + 1
            shard[key] = tensor
            size += nbytes
        save_file(shard, str(out / f"unet_{kind}-{number}.safetensors"))
    (out / "unet_config.json").write_text(json.dumps(dict(unet.config), indent=1, default=list))
    (out / "training_config.yaml").write_text((last / "training_config.yaml").read_text())
    facts = {"checkpoint": last.name, "step": int(trainer["step"]), "clips_seen": int(trainer.get("clips_seen", 0))}
    (out / "summary.json").write_text(json.dumps({**summary, **facts}, indent=1))
    print("sent back:", sorted(p.name for p in out.iterdir()), flush=True)


def assemble(files: Path, out: Path) -> None:
    """An inference folder (``out``, the shipped settings) and a weights-only snapshot (``out``-snapshot)."""
    sys.path.insert(0, "scripts")
    from default_model_v4 import export_unet
    from pipeline_curve import shipped_settings
    from safetensors.torch import load_file

    from m3ddm.models import M3DDMUNet
    from m3ddm.training.config import load_config
    from m3ddm.training.snapshot import EMA_FOLDER, RAW_FOLDER, SNAPSHOT_FILE
    from m3ddm.utils.atomic import atomic_path
    from m3ddm.utils.state_dict import save_pretrained_as

    config = json.loads((files / "unet_config.json").read_text())
    training = load_config(files / "training_config.yaml")
    summary = json.loads((files / "summary.json").read_text())
    unets = {}
    for kind in ("ema", "raw"):
        state: dict[str, torch.Tensor] = {}
        for shard in sorted(files.glob(f"unet_{kind}-*.safetensors")):
            state.update(load_file(str(shard)))
        unet = M3DDMUNet.from_config(config)
        unet.load_state_dict({k: v.float() for k, v in state.items()})
        unets[kind] = unet.eval()
    export_unet(unets["ema"], training, (files / "training_config.yaml").read_text(), Path(CODEC), out,
                shipped_settings(Path("src/m3ddm/weights/default")))
    snapshot = out.with_name(out.name + "-snapshot")
    with atomic_path(snapshot) as tmp:  # the layout of m3ddm.training.snapshot (one EMA update a step)
        save_pretrained_as(unets["raw"], tmp / RAW_FOLDER)
        save_pretrained_as(unets["ema"], tmp / EMA_FOLDER)
        (tmp / SNAPSHOT_FILE).write_text(json.dumps(
            {"step": summary["step"], "ema_updates": summary["step"], "clips_seen": summary["clips_seen"],
             "from": f"gpu {summary['checkpoint']}"}, indent=1) + "\n")
    print("wrote", out, "and", snapshot)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("train")
    run.add_argument("--minutes", type=float, default=7.0, help="wall-clock budget for calibration and training")
    run.add_argument("--work", type=Path, default=Path("/tmp/gpu-train-v5"))
    run.add_argument("--out", type=Path, required=True, help="where the weights go ($OUT on the device)")
    run.add_argument("--quick", action="store_true", help="a tiny dry run on the CPU")
    back = sub.add_parser("assemble")
    back.add_argument("files", type=Path)
    back.add_argument("out", type=Path)
    args = parser.parse_args()
    if args.command == "assemble":
        if not (args.files / "summary.json").is_file():
            parser.error(f"{args.files} holds no summary.json: not what gpu_train_v5.py train sent back")
        assemble(args.files, args.out)
        return
    if not args.quick and not torch.cuda.is_available():
        parser.error("no GPU here: run with --quick for a dry run on the CPU")
    if args.work.exists():
        parser.error(f"{args.work} exists: give another --work (runs never reuse a folder)")
    run_dir, summary = train_within(60 * args.minutes, args.quick, args.work)
    send_back(run_dir, {**summary, "minutes": args.minutes, "quick": args.quick}, args.out)
    print(json.dumps(summary), flush=True)
    if math.isnan(summary["last_tenth_loss"]):
        raise SystemExit("the loss is NaN")


if __name__ == "__main__":
    main()

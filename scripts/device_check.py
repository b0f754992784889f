"""The GPU check of issue 14: the official-size UNet and the whole pipeline on one accelerator, one table.

    python scripts/device_check.py                   # on the GPU machine (scripts/device_check.sh: 8-minute timeout)
    python scripts/device_check.py --quick           # the same steps at a tiny size on the CPU (a dry run)

Random weights throughout (no downloads): speed, throughput and memory do not depend on the weights' values, and the
fp16/fp32 comparison shows how much precision the half-precision path loses on this network.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

# dense fp16/bf16 tensor-core peak of one H200 SXM (NVIDIA's data sheet: 989 TFLOP/s without sparsity)
H200_PEAK_TFLOPS = 989.0


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny preset on the CPU: checks the script, not the GPU")
    p.add_argument("--device", default=None, help="default: cuda, or cpu with --quick")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--clip-frames", type=int, default=300)
    p.add_argument("--peak-tflops", type=float, default=H200_PEAK_TFLOPS)
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--json", help="also write the rows as JSON here")
    return p.parse_args(argv)


def random_pipeline(preset: str, size: int, quick: bool):
    """The official layout with random weights: the preset UNet, an SD-shaped VAE (tiny with --quick), PNDM."""
    import torch
    from diffusers import AutoencoderKL

    from m3ddm.codecs import LatentCodec
    from m3ddm.models import M3DDMUNet
    from m3ddm.pipeline import M3DDMPipeline
    from m3ddm.sampling import make_scheduler

    torch.manual_seed(0)
    unet = M3DDMUNet.from_preset(preset).eval()
    if quick:
        vae = LatentCodec.tiny(0).vae.eval()
    else:  # Stable Diffusion v1's VAE shape (83 M parameters), scaling factor 0.18215
        vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
                            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                            block_out_channels=(128, 256, 512, 512), sample_size=512,
                            scaling_factor=0.18215).eval()
    return M3DDMPipeline(unet=unet, vae=vae, scheduler=make_scheduler("pndm"), global_frames="stretch",
                         default_size=size, default_scheduler="pndm", default_steps=50)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    import numpy as np
    import torch

    from m3ddm.benchmarks.measure import PeakMemory, synchronize
    from m3ddm.benchmarks.models import region_psnr, synthetic_frames
    from m3ddm.benchmarks.unet import forward_task

    device = args.device or ("cpu" if args.quick else "cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device here: run with --quick for a CPU dry run", file=sys.stderr)
        return 2
    preset, latent, size, steps = ("tiny", 8, 64, 3) if args.quick else ("official", 32, 256, 50)
    name = torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu"
    rows: list[dict] = []

    def row(measure: str, setting: str, value: str, **extra) -> None:
        rows.append({"measure": measure, "setting": setting, "value": value, **extra})
        print(f"  {measure}: {setting}: {value}", file=sys.stderr, flush=True)

    # 1. One UNet forward per guidance batch (rows = branches x windows), fp16 and bf16.
    for dtype in ("float16", "bfloat16"):
        for batch in (1, 2, 3, 4):
            r = forward_task(preset, frames=16, latent=latent, batch=batch, repeats=args.repeats, device=device,
                             dtype=dtype)
            tflops = r["flops"] / r["median_s"] / 1e12
            row("UNet forward", f"{preset} {size}x{size} 16 frames, batch {batch}, {dtype}",
                f"{1e3 * r['median_s']:.1f} ms, {tflops:.3g} TFLOP/s "
                f"({100 * tflops / args.peak_tflops:.1f}% of {args.peak_tflops:.0f}), peak {r['peak_mb']:.0f} MB",
                seconds=r["median_s"], flops=r["flops"], peak_mb=r["peak_mb"])
    # 2. torch.compile on the sampler's usual call (3 branches, bf16).
    if not args.no_compile:
        plain = forward_task(preset, frames=16, latent=latent, batch=3, repeats=args.repeats, device=device,
                             dtype="bfloat16")
        compiled = forward_task(preset, frames=16, latent=latent, batch=3, repeats=args.repeats, device=device,
                                dtype="bfloat16", compile=True)
        row("torch.compile", "batch 3, bfloat16", f"{plain['median_s'] / compiled['median_s']:.2f}x faster "
            f"({1e3 * compiled['median_s']:.1f} vs {1e3 * plain['median_s']:.1f} ms; compiling took "
            f"{compiled['first_call_s']:.0f} s)", gain=plain["median_s"] / compiled["median_s"])
    # 3. fp16 against fp32 on the same short clip (one window level), the written pixels.
    pipe = random_pipeline(preset, size, args.quick).to(device)
    frames = synthetic_frames(32, size, size * 9 // 16)  # a 16:9 source
    outputs = {}
    for dtype in ("float32", "float16"):
        pipe.to(dtype=getattr(torch, dtype))
        outputs[dtype] = pipe.outpaint_array(frames, fps=30, ratio=9 / 16, steps=steps,
                                             scheduler="pndm", official_compat=True, canvas="square",
                                             official_output=True, seed=0)
    border = np.ones(outputs["float32"].shape[1:3], bool)
    psnr, _ = region_psnr(outputs["float16"], outputs["float32"], border)
    row("fp16 vs fp32", f"32 frames, {steps} PNDM steps, the written frames", f"PSNR {psnr:.1f} dB", psnr=psnr)
    # 4. The whole pipeline on a long clip: frames per second, peak memory.
    pipe.to(dtype=torch.bfloat16)
    long_clip = synthetic_frames(args.clip_frames, size, size * 9 // 16)
    with PeakMemory(device) as memory:
        start = time.perf_counter()
        pipe.outpaint_array(long_clip, fps=30, ratio=9 / 16, steps=steps, scheduler="pndm", seed=0,
                            batch_windows=4, canvas="square")
        synchronize(device)
        seconds = time.perf_counter() - start
    peak = memory.result()["peak_mb"]
    row("whole pipeline", f"{args.clip_frames} frames -> 9:16 (square canvas), {steps} PNDM steps, bfloat16, "
        "4 windows a batch", f"{args.clip_frames / seconds:.2f} frames/s ({seconds:.0f} s), peak {peak:.0f} MB",
        seconds=seconds, peak_mb=peak)

    print(f"\n| measure ({name}, torch {torch.__version__}) | setting | value |\n|---|---|---|")
    for r in rows:
        print(f"| {r['measure']} | {r['setting']} | {r['value']} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": name, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main(sys.argv[1:]))

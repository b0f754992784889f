"""`m3ddm bench unet`: one UNet forward on a guidance batch — time, peak memory, FLOPs, parameters.

The measured call is what the sampler does once per denoising step: ``batch`` rows (3 = the null, local and full
guidance branches of one window) of ``frames`` latent frames, attending to a shared ``GlobalContext`` holding the
null and real tokens of 16 global frames (encoded once beforehand, key/values cached, as in the pipeline).
"""

from __future__ import annotations

from collections.abc import Sequence

from m3ddm.benchmarks.measure import PeakMemory, check_device, median, run_task, set_threads, timed_repeats
from m3ddm.errors import UserError

DTYPES = ("float32", "float16", "bfloat16")
TASK = "m3ddm.benchmarks.unet:forward_task"


def guidance_rows(batch: int) -> list[int]:
    """Context row of each batch row, branch-major: the null and local branches use the null context (row 0), the
    full branch the real one (row 1). batch 3 -> [0, 0, 1]; batch 6 (two windows) -> [0, 0, 0, 0, 1, 1]."""
    real = batch // 3
    return [0] * (batch - real) + [1] * real


def forward_task(
    preset: str,
    frames: int = 16,
    latent: int = 32,
    batch: int = 3,
    repeats: int = 5,
    num_global: int = 16,
    device: str = "cpu",
    dtype: str = "float32",
    threads: int | None = None,
    attention: str = "sdpa",
    seed: int = 0,
    channels_last: bool = False,
    compile: bool = False,
) -> dict:
    import time

    import torch

    from m3ddm.benchmarks.flops import count_unet_flops
    from m3ddm.models import GlobalContext, M3DDMUNet
    from m3ddm.models.unet import count_parameters

    threads_used = set_threads(threads)
    torch.manual_seed(seed)
    unet = M3DDMUNet.from_preset(preset).eval().to(device)
    if dtype != "float32":
        unet = unet.to(getattr(torch, dtype))
    unet.set_attention_backend(attention)
    if channels_last:  # 2D convolution weights in NHWC order (the per-frame convolutions then run in NHWC)
        unet.set_channels_last()
    denoise = torch.compile(unet.denoise) if compile else unet.denoise
    with torch.no_grad():
        global_latents = torch.randn(num_global, 4, latent, latent, device=device)
        real = unet.encode_global(global_latents, num_global)
        null = unet.encode_global(torch.zeros_like(global_latents), num_global)
        context = GlobalContext(torch.cat([null, real]), cache_kv=True)
        sample = torch.randn(batch, 9, frames, latent, latent, device=device)
        timestep = torch.tensor(500, device=device)
        fps = torch.full((batch,), 8, device=device)
        index = torch.tensor(guidance_rows(batch))

        def forward():
            return denoise(sample, timestep, fps, context, index)

        start = time.perf_counter()
        forward()  # the first call compiles (compile=True); it is the warm-up either way
        first_call_s = time.perf_counter() - start
        with PeakMemory(device) as memory:
            times = timed_repeats(forward, repeats, device)
        flops = count_unet_flops(unet, sample, timestep, fps, context, index)
    return {
        "preset": preset, "params": count_parameters(unet), "flops": flops,
        "median_s": median(times), "min_s": min(times), "times_s": times,
        "frames": frames, "latent": latent, "batch": batch, "global_frames": num_global,
        "device": device, "dtype": dtype, "threads": threads_used, "attention": attention,
        "channels_last": channels_last, "compile": compile, "first_call_s": first_call_s, **memory.result(),
    }


def bench_unet(presets: Sequence[str], *, isolated: bool = True, **params) -> list[dict]:
    """``forward_task`` for each preset, each in a fresh process unless ``isolated`` is False."""
    from m3ddm.models.unet import UNET_PRESETS

    for preset in presets:
        if preset not in UNET_PRESETS:
            raise UserError(f"unknown UNet preset {preset!r}; choose from {', '.join(UNET_PRESETS)}")
    if params.get("dtype", "float32") not in DTYPES:
        raise UserError(f"--dtype must be one of {', '.join(DTYPES)}")
    for name in ("frames", "latent", "batch", "repeats"):
        if name in params and params[name] < 1:
            raise UserError(f"--{name} must be at least 1")
    if params.get("latent", 32) < 6:
        raise UserError("--latent must be at least 6 (the global-frame encoder needs it)")
    check_device(params.get("device", "cpu"))
    results = []
    for preset in presets:
        result = run_task(TASK, {"preset": preset, **params}, isolated)
        result["isolated"] = isolated
        results.append(result)
    return results


COLUMNS = [
    ("preset", "preset", ""),
    ("params_m", "params (M)", ".3f"),
    ("gflops", "GFLOP/call", ".2f"),
    ("median_ms", "median ms", ".1f"),
    ("min_ms", "min ms", ".1f"),
    ("peak_mb", "peak MB", ".0f"),
    ("work_mb", "growth MB", ".0f"),
]


def table_rows(results: Sequence[dict]) -> list[dict]:
    return [
        {**r, "params_m": r["params"] / 1e6, "gflops": r["flops"] / 1e9, "median_ms": 1e3 * r["median_s"],
         "min_ms": 1e3 * r["min_s"]}
        for r in results
    ]

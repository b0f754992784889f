"""`m3ddm bench official`: the official driver's way of working against ours, on the same model and video.

"official" reproduces the official driver's work pattern (spec sections 8-9): four guidance branches (one of them
discarded), every window re-reads and re-encodes its frames and the global frames and re-runs the global encoder
(no key/value cache), a square canvas, one window per UNet call, explicit softmax attention, PNDM with 50 steps.
"ours" is ``OutpaintOptions()``: three branches, the video encoded once, a target-shaped canvas, batched
windows, fused attention, the model's default scheduler and steps.

Each lever is then switched on its own, starting from the official configuration, to show what it buys. Levers
that only reorganise the work (branches, re-encoding, batching, attention backend) must leave the output
(near) unchanged, which the PSNR against the official output checks; the canvas and the scheduler change it.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from m3ddm.benchmarks.measure import PeakMemory, check_device, median, run_task, set_threads
from m3ddm.benchmarks.models import prepare_model, region_psnr
from m3ddm.errors import UserError

TASK = "m3ddm.benchmarks.official:config_task"
OFFICIAL_STEPS = 50  # PNDM, as the official driver
FAST_STEPS = 25  # the scheduler lever: dpmpp
FOUR_BRANCHES = ("null", "local", "null_full", "full")
# A lever whose output PSNR against the official output falls below this is flagged (it should not change it).
SAME_OUTPUT_MIN_PSNR = 40.0


@dataclass(frozen=True)
class Config:
    """OutpaintOptions fields and the attention backend of one benchmarked configuration."""

    name: str
    options: dict = field(default_factory=dict)
    attention: str = "sdpa"
    runtime: dict = field(default_factory=dict)  # how the model runs: {"dtype": "bfloat16"}


def scaled_steps(steps: int, scale: float) -> int:
    return max(1, round(steps * scale))


def official_config(steps: int = OFFICIAL_STEPS) -> Config:
    return Config("official", dict(branches=FOUR_BRANCHES, reencode_per_window=True, canvas="square",
                                   batch_windows=1, scheduler="pndm", steps=steps, init="prefill",
                                   official_compat=True, background_io=False, strength=1.0, noise_share=0.0,
                                   guidance_context=2.0, guidance_global=4.0), attention="naive")


def ours_config(steps: int | None = None) -> Config:
    return Config("ours", {} if steps is None else {"steps": steps}, attention="sdpa")


@dataclass(frozen=True)
class Lever:
    name: str
    changes: dict
    attention: str | None = None  # None: keep the official backend
    same_output: bool = True  # switching it on must not change the output
    runtime: dict = field(default_factory=dict)

    def apply(self, base: Config) -> Config:
        return Config(self.name, {**base.options, **self.changes}, self.attention or base.attention,
                      {**base.runtime, **self.runtime})


def levers(fast_steps: int = FAST_STEPS) -> list[Lever]:
    return [
        Lever("3-branch guidance", {"branches": None}),
        Lever("cached global context", {"reencode_per_window": False}),
        Lever("target canvas", {"canvas": "target"}, same_output=False),
        Lever("batched windows", {"batch_windows": 4}),
        Lever("sdpa attention", {}, attention="sdpa"),
        Lever(f"dpmpp {fast_steps} steps", {"scheduler": "dpmpp", "steps": fast_steps, "official_compat": False},
              same_output=False),
        Lever("background I/O thread", {"background_io": True}),
        Lever("VAE slicing (1 frame per call)", {"vae_batch": 1}),
        Lever("VAE tiling", {"vae_tiling": True}, same_output=False),
        Lever("bfloat16 weights", {}, same_output=False, runtime={"dtype": "bfloat16"}),
    ]


# ------------------------------------------------------------------------------------------- one configuration
def per_window_reencoding(pipe, source, options):
    """The official driver's per-window work, as a generation hook: every window's frames and the global frames
    are read and VAE-encoded again and the global encoder re-run, without a key/value cache. The values are the
    same (deterministic), so only the time changes. ``options`` are resolved for the source."""
    from m3ddm.io.arrays import ArraySource
    from m3ddm.planning import global_frame_indices

    geometry = pipe.geometry_for(source, options)
    global_indices = global_frame_indices(source.info.num_frames, options.num_global_frames)

    def before_batch(windows):
        for window in windows:
            clip = ArraySource(np.stack(source.read(list(window.frames))), source.info.fps)
            pipe.encode_video(clip, geometry, replace(options, num_global_frames=len(window.frames)))
        global_frames = ArraySource(np.stack(source.read(global_indices)), source.info.fps)
        context = pipe.global_context(pipe.encode_video(global_frames, geometry, options))
        if context is not None:
            context.cache_kv = False
        return context

    return before_batch



def config_task(model_dir: str, source: dict, options: dict, attention: str, output_path: str,
                repeats: int = 1, device: str = "cpu", threads: int | None = None, steps_scale: float = 1.0,
                runtime: dict | None = None) -> dict:
    """Outpaint the source with one configuration; saves the output frames and generated-region mask (npz).

    Without "steps" in ``options`` the model's default number of steps is used, times ``steps_scale``."""
    import torch

    from m3ddm.benchmarks.flops import UNetCallRecorder
    from m3ddm.benchmarks.models import load_frames, load_pipeline, synthetic_frames
    from m3ddm.io.arrays import ArraySource
    from m3ddm.pipeline import GenerationHooks, OutpaintOptions
    from m3ddm.sampling import Guidance

    threads_used = set_threads(threads)
    runtime = runtime or {}
    pipe = load_pipeline(model_dir, device, reuse=not runtime)  # a changed model is never shared
    if "dtype" in runtime:
        pipe.to(dtype=getattr(torch, runtime["dtype"]))
    pipe.unet.set_attention_backend(attention)
    if "path" in source:
        frames, fps = load_frames(source["path"], source["frames"])
    else:
        frames, fps = synthetic_frames(source["frames"], *source["size"]), 24.0
    options = dict(options)
    # the work-pattern knobs are the benchmark's, given to the pipeline as generation hooks
    branches = options.pop("branches", None)
    branches = tuple(branches) if branches is not None else None
    reencode = options.pop("reencode_per_window", False)
    seed = options.pop("seed", 0)
    if options.get("steps") is None:
        options["steps"] = scaled_steps(pipe.config.default_steps, steps_scale)
    resolved = pipe.resolve(OutpaintOptions(seed=seed, **options), len(frames))
    source = ArraySource(frames, fps)
    geometry = pipe.geometry_for(source, resolved)
    hooks = GenerationHooks(branches=branches,
                            before_batch=per_window_reencoding(pipe, source, resolved) if reencode else None)

    times = []
    with UNetCallRecorder(pipe.unet) as calls, PeakMemory(device) as memory:
        start = time.perf_counter()
        output = pipe.outpaint_array(frames, fps, seed=seed, hooks=hooks, **options)
        times.append(time.perf_counter() - start)
    for _ in range(repeats - 1):
        start = time.perf_counter()
        pipe.outpaint_array(frames, fps, seed=seed, hooks=hooks, **options)
        times.append(time.perf_counter() - start)
    flops = calls.flops()
    needed = Guidance(resolved.guidance_context, resolved.guidance_global).coefficients(pipe.unet.config.global_context)
    np.savez(output_path, frames=output, mask=geometry.output_mask)
    n = len(frames)
    return {
        "frames": n, "wall_s": median(times), "times_s": times, "unet_calls": calls.num_calls,
        "rows": calls.num_rows, "flops": flops, "rows_per_frame": calls.num_rows / n, "flops_per_frame": flops / n,
        "wall_per_frame_s": median(times) / n, "canvas": [geometry.canvas_w, geometry.canvas_h],
        "output": [geometry.output_w, geometry.output_h], "scheduler": resolved.scheduler, "steps": resolved.steps,
        "branches": len(branches) if branches else len(needed), "attention": attention,
        "threads": threads_used, "device": device, "dtype": runtime.get("dtype", "float32"), **memory.result(),
    }


# --------------------------------------------------------------------------------------------------- the bench
def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def compare(base: dict, other: dict) -> dict:
    """How many times more ``base`` costs than ``other`` (> 1: ``other`` is cheaper)."""
    return {
        "ratio_wall": _ratio(base["wall_s"], other["wall_s"]),
        "ratio_flops": _ratio(base["flops"], other["flops"]),
        "ratio_rows": _ratio(base["rows"], other["rows"]),
        "ratio_memory": _ratio(base["peak_mb"], other["peak_mb"]),
    }


def bench_official(
    *,
    model: str = "tiny",
    input_path: str | None = None,
    frames: int = 64,
    source_size: tuple[int, int] = (128, 72),
    ratio: float = 9 / 16,
    size: int | None = 88,
    seed: int = 0,
    steps_scale: float = 1.0,
    official_steps: int | None = None,
    fast_steps: int | None = None,
    ours_steps: int | None = None,
    with_levers: bool = True,
    repeats: int = 1,
    device: str = "cpu",
    threads: int | None = None,
    isolated: bool = True,
    on_result=None,
) -> dict:
    """Run official, ours and (``with_levers``) each lever alone; ``on_result(name, result)`` reports progress.

    ``steps_scale`` multiplies every configuration's number of steps (official 50, dpmpp lever 25, ours: the
    model's default) to make a CPU run shorter; per-step costs, and so FLOP and row ratios, do not change. The
    ``*_steps`` arguments set a configuration's steps outright."""
    if not 0 < steps_scale <= 1:
        raise UserError(f"--steps-scale must be in (0, 1], got {steps_scale}")
    for name, value in (("--frames", frames), ("--official-steps", official_steps), ("--fast-steps", fast_steps),
                        ("--ours-steps", ours_steps), ("--repeats", repeats)):
        if value is not None and value < 1:
            raise UserError(f"{name} must be at least 1")
    check_device(device)
    official_steps = official_steps or scaled_steps(OFFICIAL_STEPS, steps_scale)
    fast_steps = fast_steps or scaled_steps(FAST_STEPS, steps_scale)
    source = {"path": str(input_path), "frames": frames} if input_path else {"frames": frames,
                                                                              "size": list(source_size)}
    common = {"ratio": ratio, "size": size, "seed": seed}
    official = official_config(official_steps)
    configs = [official, ours_config(ours_steps)]
    lever_list = levers(fast_steps) if with_levers else []
    configs += [lever.apply(official) for lever in lever_list]

    results: dict[str, dict] = {}
    versus_official: dict[str, tuple[float, int]] = {}  # (PSNR, max abs diff) of each output against official's
    with tempfile.TemporaryDirectory(prefix="m3ddm-bench-official-") as tmp:
        model_dir = prepare_model(model, Path(tmp) / "model")
        for i, config in enumerate(configs):
            out = Path(tmp) / f"output-{i}.npz"
            params = {"model_dir": model_dir, "source": source, "options": {**common, **config.options},
                      "attention": config.attention, "output_path": str(out), "repeats": repeats,
                      "device": device, "threads": threads, "steps_scale": steps_scale, "runtime": config.runtime}
            results[config.name] = {**run_task(TASK, params, isolated), "isolated": isolated}
            with np.load(out) as data:
                if config is official:
                    reference, mask = data["frames"], data["mask"]
                else:
                    versus_official[config.name] = region_psnr(reference, data["frames"], mask)
            out.unlink()
            if on_result is not None:
                on_result(config.name, results[config.name])

    report = {"official": results["official"], "ours": results["ours"],
              **compare(results["official"], results["ours"])}
    report["psnr_official_vs_ours"], report["max_abs_diff_official_vs_ours"] = versus_official["ours"]
    report["levers"] = []
    for lever in lever_list:
        psnr, diff = versus_official[lever.name]
        report["levers"].append({
            "lever": lever.name, **compare(results["official"], results[lever.name]), "psnr_vs_official": psnr,
            "max_abs_diff": diff, "should_match": lever.same_output,
            "matches": psnr >= SAME_OUTPUT_MIN_PSNR, "result": results[lever.name],
        })
    report["setup"] = {"model": model, "input": input_path, "frames": frames, "source_size": list(source_size),
                       "ratio": ratio, "size": size, "seed": seed, "steps_scale": steps_scale,
                       "official_steps": official_steps, "fast_steps": fast_steps,
                       "ours_steps": report["ours"]["steps"], "repeats": repeats, "device": device,
                       "isolated": isolated}
    return report


CONFIG_COLUMNS = [
    ("name", "configuration", ""),
    ("canvas_text", "canvas", ""),
    ("sampler", "sampler", ""),
    ("unet_calls", "UNet calls", ""),
    ("rows_per_frame", "rows/frame", ".3g"),
    ("gflops_per_frame", "GFLOP/frame", ".4g"),
    ("wall_per_frame_s", "wall s/frame", ".3g"),
    ("peak_mb", "peak MB", ".0f"),
]

LEVER_COLUMNS = [
    ("lever", "lever (alone, from official)", ""),
    ("ratio_wall", "wall ratio", ".3g"),
    ("ratio_flops", "FLOP ratio", ".3g"),
    ("ratio_rows", "rows ratio", ".3g"),
    ("psnr_vs_official", "PSNR vs official dB", ".1f"),
    ("max_abs_diff", "max diff", ""),
    ("expect", "expected output", ""),
]


def config_rows(report: dict) -> list[dict]:
    rows = []
    for name in ("official", "ours"):
        r = report[name]
        rows.append({**r, "name": name, "canvas_text": "x".join(str(v) for v in r["canvas"]),
                     "sampler": f"{r['scheduler']} {r['steps']}", "gflops_per_frame": r["flops_per_frame"] / 1e9})
    ratios = {"rows_per_frame": "ratio_rows", "gflops_per_frame": "ratio_flops", "wall_per_frame_s": "ratio_wall",
              "peak_mb": "ratio_memory"}
    rows.append({"name": "official / ours",
                 **{column: _times(report[key]) for column, key in ratios.items()}})
    return rows


def _times(ratio: float | None) -> str | None:
    return None if ratio is None else f"{ratio:.3g}x"


def lever_rows(report: dict) -> list[dict]:
    rows = []
    for lever in report["levers"]:
        if lever["should_match"]:
            expect = "same (ok)" if lever["matches"] else "same (DIFFERS)"
        else:
            expect = "changes"
        rows.append({**lever, "expect": expect})
    return rows


def summary_lines(report: dict) -> Sequence[str]:
    ours, official = report["ours"], report["official"]
    return [
        f"official: {official['unet_calls']} UNet calls, {official['rows']} rows; ours: {ours['unet_calls']} calls, "
        f"{ours['rows']} rows. Ratios are official / ours (or official / lever): > 1 = the change is cheaper.",
        f"PSNR official vs ours (generated border): {report['psnr_official_vs_ours']:.1f} dB — the outputs differ "
        "by design (canvas, scheduler and steps differ), so this is not a quality measure.",
    ]

"""`m3ddm bench schedulers`: fewer denoising steps with DPM-Solver++ at the quality of 50-step PNDM?

The official driver samples with PNDM and 50 steps; we default to DPM-Solver++ with fewer steps. This benchmark
checks that claim on real videos with the evaluation protocol (:mod:`m3ddm.evaluation.protocol`): each clip of
DATA has a border cut off (``ratio`` of the width for ``horizontal``), every configuration ``scheduler:steps``
outpaints it back with the same model, seed and options, and each output is scored against the ground truth
(region PSNR, SSIM, warp error) and against the reference configuration's output (region PSNR between the two).
UNet calls are counted (:class:`~m3ddm.benchmarks.flops.UNetCallRecorder`) and the outpainting is timed.

A configuration is of "equal quality" when its region PSNR is at most ``tolerance_db`` below the reference's and
its region warp error at most ``WARP_SLACK`` times the reference's. The reference (default ``pndm:50``) always
runs first on each clip, after one untimed 1-step warm-up run, so one-time costs (model loading, kernel
selection, allocator growth) are charged to no configuration.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from m3ddm.errors import UserError
from m3ddm.utils.pixels import PSNR_CAP_DB  # an identical clip counts as this in a mean with others

DEFAULT_CONFIGS = "pndm:50,dpmpp:10,dpmpp:15,dpmpp:20,dpmpp:25,ddim:20"
DEFAULT_REFERENCE = "pndm:50"
DEFAULT_TOLERANCE_DB = 0.1
WARP_SLACK = 1.05  # equal quality allows 5 % more region warp error than the reference
# Options that the benchmark sets itself: per configuration (scheduler, steps) or from its own flag (seed).
RESERVED_OPTIONS = {"scheduler": "--configs", "steps": "--configs", "seed": "--seed", "pad": "--ratio",
                    "ratio": "--ratio"}


@dataclass(frozen=True)
class SchedulerConfig:
    """One benchmarked sampler: a scheduler name of :data:`m3ddm.sampling.SCHEDULERS` and a number of steps."""

    scheduler: str
    steps: int

    @property
    def name(self) -> str:
        return f"{self.scheduler}:{self.steps}"


def parse_config(text: str, flag: str = "--configs") -> SchedulerConfig:
    """``"dpmpp:20"`` -> SchedulerConfig("dpmpp", 20); UserError for anything else."""
    from m3ddm.sampling import SCHEDULERS

    name, sep, steps_text = str(text).strip().partition(":")
    name, steps_text = name.strip(), steps_text.strip()
    if not sep or not name or not steps_text:
        raise UserError(f"{flag}: {text!r} is not SCHEDULER:STEPS (e.g. dpmpp:20)")
    if name not in SCHEDULERS:
        raise UserError(f"{flag}: unknown scheduler {name!r} in {text!r}; choose one of {', '.join(SCHEDULERS)}")
    try:
        steps = int(steps_text)
    except ValueError:
        raise UserError(f"{flag}: the steps of {text!r} must be a whole number") from None
    if steps < 1:
        raise UserError(f"{flag}: the steps of {text!r} must be at least 1")
    return SchedulerConfig(name, steps)


def parse_configs(text: str | Sequence[str], flag: str = "--configs") -> list[SchedulerConfig]:
    """``"pndm:50,dpmpp:20"`` (or a list of such items) -> configs in order, duplicates dropped."""
    parts = str(text).split(",") if isinstance(text, str) else list(text)
    configs: list[SchedulerConfig] = []
    for part in parts:
        if not str(part).strip():
            continue
        config = parse_config(part, flag)
        if config not in configs:
            configs.append(config)
    if not configs:
        raise UserError(f"{flag}: no configuration given; use SCHEDULER:STEPS items such as pndm:50,dpmpp:20")
    return configs


def check_options(options: dict[str, Any]) -> dict[str, Any]:
    """The user's pipeline options, refusing those the benchmark sets itself."""
    for key, flag in RESERVED_OPTIONS.items():
        if key in options:
            raise UserError(f"--option {key}=... is set by the benchmark; use {flag} instead")
    return dict(options)


# ------------------------------------------------------------------------------------------------ the bench
def _mean(values: Sequence[float]) -> float:
    from m3ddm.evaluation.protocol import finite_mean as protocol_mean  # mean of the finite values, NaN if none

    return protocol_mean(values)


def _mean_psnr(values: Sequence[float]) -> float:
    """Mean PSNR over clips: inf when every clip is identical, else identical clips count as PSNR_CAP_DB."""
    if values and all(math.isinf(v) and v > 0 for v in values):
        return float("inf")
    return _mean([min(v, PSNR_CAP_DB) for v in values])


def _resolved(pipe: Any, options: dict[str, Any], num_frames: int) -> Any:
    from m3ddm.pipeline import OutpaintOptions

    try:
        return pipe.resolve(OutpaintOptions(**options), num_frames)
    except TypeError as exc:  # an unknown keyword
        raise UserError(f"--option: {exc}") from None


def _summarise(config: SchedulerConfig, clips: list[dict[str, Any]], reference: dict[str, Any] | None,
               tolerance_db: float, is_reference: bool) -> dict[str, Any]:
    """Means over clips of one configuration, and its comparison with the reference."""
    row: dict[str, Any] = {
        "config": config.name, "scheduler": config.scheduler, "steps": config.steps, "is_reference": is_reference,
        "clips": len(clips),
        "unet_calls_per_frame": _mean([c["unet_calls"] / c["frames"] for c in clips]),
        "unet_rows_per_frame": _mean([c["unet_rows"] / c["frames"] for c in clips]),
        "wall_s_per_frame": _mean([c["wall_s"] / c["frames"] for c in clips]),
        "wall_s": float(sum(c["wall_s"] for c in clips)),
        "region_psnr": _mean([c["region"]["psnr"] for c in clips]),
        "region_ssim": _mean([c["region"]["ssim"] for c in clips]),
        "region_warp_error": _mean([c["region"]["warp_error"] for c in clips]),
        "full_psnr": _mean([c["full"]["psnr"] for c in clips]),
        "psnr_vs_reference_db": _mean_psnr([c["psnr_vs_reference_db"] for c in clips]),
        "per_clip": clips,
    }
    ref = row if reference is None else reference
    row["delta_psnr_db"] = row["region_psnr"] - ref["region_psnr"]
    row["wall_ratio"] = row["wall_s_per_frame"] / ref["wall_s_per_frame"] if ref["wall_s_per_frame"] else None
    psnr_ok = row["region_psnr"] >= ref["region_psnr"] - tolerance_db
    ref_warp = ref["region_warp_error"]
    warp_ok = not math.isfinite(ref_warp) or row["region_warp_error"] <= ref_warp * WARP_SLACK
    row["equal_quality"] = bool(psnr_ok and warp_ok)
    return row


def fewest_steps(rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The equal-quality configuration other than the reference with the fewest steps (then UNet calls, wall)."""
    candidates = [r for r in rows if r["equal_quality"] and not r["is_reference"]]
    if not candidates:
        return None
    return min(candidates, key=lambda r: (r["steps"], r["unet_calls_per_frame"], r["wall_s_per_frame"]))


def bench_schedulers(
    data: str | Path,
    *,
    model: str | None = None,
    configs: str | Sequence[str] = DEFAULT_CONFIGS,
    reference: str = DEFAULT_REFERENCE,
    ratio: float = 0.25,
    direction: str = "horizontal",
    max_frames: int | None = None,
    size: int | None = None,
    options: dict[str, Any] | None = None,
    tolerance_db: float = DEFAULT_TOLERANCE_DB,
    seed: int = 0,
    threads: int | None = None,
    device: str | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Run the reference and every configuration on every clip of ``data``; returns
    ``{"reference": row, "configs": [row, ...], "header": {...}, "summary": {...}}`` (one row per configuration:
    means over clips, and ``per_clip`` records)."""
    import torch

    from m3ddm.benchmarks.flops import UNetCallRecorder
    from m3ddm.benchmarks.measure import set_threads
    from m3ddm.benchmarks.models import region_psnr
    from m3ddm.evaluation.baselines import M3DDMMethod
    from m3ddm.evaluation.metrics import region_mask
    from m3ddm.evaluation.protocol import DIRECTIONS, crop_known, crop_pads, discover_clips, load_clip, score_video

    config_list = parse_configs(configs)
    ref_config = parse_config(reference, "--reference")
    options = check_options(options or {})
    if direction not in DIRECTIONS:
        raise UserError(f"unknown direction {direction!r}; use one of {', '.join(DIRECTIONS)}")
    if not 0 < ratio < 1:
        raise UserError(f"--ratio must be between 0 and 1 (exclusive), got {ratio}")
    for flag, value in (("--max-frames", max_frames), ("--size", size)):
        if value is not None and value < 1:
            raise UserError(f"{flag} must be at least 1")
    if not math.isfinite(tolerance_db) or tolerance_db < 0:
        raise UserError(f"--tolerance-db must be a non-negative number, got {tolerance_db}")
    if model is not None and not Path(model).exists():
        raise UserError(f"model folder not found: {model}")
    clips = discover_clips(data)
    order = [ref_config] + [c for c in config_list if c != ref_config]  # the reference first

    threads_before = torch.get_num_threads()
    try:
        threads_used = set_threads(threads)
        method = M3DDMMethod(model, seed=seed, options=options, device=device)
        pipe = method._pipeline()  # loaded before anything is timed

        def outpaint(config: SchedulerConfig, known: np.ndarray, pads: tuple[int, int, int, int],
                     fps: float) -> tuple[np.ndarray, float, UNetCallRecorder]:
            method.options = {**options, "scheduler": config.scheduler, "steps": config.steps}
            with UNetCallRecorder(pipe.unet) as calls:
                start = time.perf_counter()
                out = np.asarray(method(known, pads, fps))
                seconds = time.perf_counter() - start
            return out, seconds, calls

        records: dict[SchedulerConfig, list[dict[str, Any]]] = {c: [] for c in order}
        header: dict[str, Any] = {}
        for index, clip in enumerate(clips):
            gt, fps = load_clip(clip, max_frames, size)
            pads = crop_pads(gt.shape[1], gt.shape[2], ratio, direction)
            known = crop_known(gt, pads)
            mask = region_mask(gt.shape[1], gt.shape[2], pads)
            log(f"[{index + 1}/{len(clips)}] {clip.name}: {len(gt)} frames {gt.shape[2]}x{gt.shape[1]}, "
                f"pad {pads}")
            if index == 0:
                resolved = _resolved(pipe, {**options, "scheduler": ref_config.scheduler,
                                            "steps": ref_config.steps}, len(gt))
                for config in order:  # a bad option fails now, not after the reference has run
                    _resolved(pipe, {**options, "scheduler": config.scheduler, "steps": config.steps}, len(gt))
                warm = SchedulerConfig(ref_config.scheduler, 1)
                _, warmup_s, _ = outpaint(warm, known, pads, fps)
                header = {
                    "model": model or "default", "strength": resolved.strength,
                    "guidance_context": resolved.guidance_context, "guidance_global": resolved.guidance_global,
                    "noise_share": resolved.noise_share, "working_size": resolved.size, "options": options,
                    "ratio": ratio, "direction": direction, "max_frames": max_frames, "size": size, "seed": seed,
                    "tolerance_db": tolerance_db, "warp_slack": WARP_SLACK, "threads": threads_used,
                    "device": str(device or "cpu"), "warmup_s": warmup_s,
                }
                log(f"    warm-up ({warm.name}, untimed): {warmup_s:.1f} s")
            reference_output = None
            for config in order:
                pred, seconds, calls = outpaint(config, known, pads, fps)
                if pred.shape != gt.shape or pred.dtype != np.uint8:
                    raise UserError(f"{config.name} returned {pred.dtype} {tuple(pred.shape)}, expected uint8 "
                                    f"{tuple(gt.shape)}")
                scores = score_video(pred, gt, pads)
                scores.pop("per_frame")
                if reference_output is None:
                    reference_output = pred
                versus, max_diff = region_psnr(reference_output, pred, mask)
                records[config].append({
                    "clip": clip.name, "frames": int(len(gt)), "pad_px": list(pads), "fps": fps,
                    "unet_calls": calls.num_calls, "unet_rows": calls.num_rows, "wall_s": seconds,
                    "region": scores["region"], "full": scores["full"], "psnr_vs_reference_db": versus,
                    "max_abs_diff_vs_reference": max_diff,
                })
                log(f"    {config.name}: region PSNR {scores['region']['psnr']:.2f} dB, "
                    f"{'reference' if config == ref_config else f'{versus:.1f} dB vs reference'}, "
                    f"{calls.num_calls} UNet calls, {seconds:.1f} s")
    finally:
        torch.set_num_threads(threads_before)

    ref_row = _summarise(ref_config, records[ref_config], None, tolerance_db, is_reference=True)
    rows = {ref_config: ref_row}
    for config in order[1:]:
        rows[config] = _summarise(config, records[config], ref_row, tolerance_db, is_reference=False)
    header["clips"] = [c.name for c in clips]
    header["reference"] = ref_config.name
    best = fewest_steps([rows[c] for c in order])
    summary = {"fewest_steps_equal_quality": best["config"] if best else None,
               "wall_ratio": best["wall_ratio"] if best else None}
    return {"reference": ref_row, "configs": [rows[c] for c in config_list], "header": header, "summary": summary}


# ------------------------------------------------------------------------------------------------ printing
COLUMNS = [
    ("config", "config", ""),
    ("unet_calls_per_frame", "UNet calls/frame", ".3g"),
    ("wall_s_per_frame", "wall s/frame", ".3g"),
    ("wall_ratio_text", "wall vs ref", ""),
    ("region_psnr", "region PSNR dB", ".2f"),
    ("region_ssim", "region SSIM", ".4f"),
    ("region_warp_error", "region warp err", ".3g"),
    ("delta_psnr_db", "ΔPSNR dB", "+.2f"),
    ("psnr_vs_ref_text", "PSNR vs ref dB", ""),
    ("equal_quality", "equal quality", ""),
]


def table_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The reference first, then the other configurations, with the text cells of :data:`COLUMNS`."""
    reference = report["reference"]
    rows = [reference] + [r for r in report["configs"] if r["config"] != reference["config"]]
    out = []
    for row in rows:
        versus = row["psnr_vs_reference_db"]
        if row["is_reference"]:
            versus_text = "ref"
        elif versus is None or math.isnan(versus):
            versus_text = "-"
        else:
            versus_text = "identical" if math.isinf(versus) else f"{versus:.1f}"
        ratio = row["wall_ratio"]
        out.append({**row, "psnr_vs_ref_text": versus_text,
                    "wall_ratio_text": "-" if ratio is None else f"{ratio:.3g}x"})
    return out


def header_line(report: dict[str, Any]) -> str:
    h = report["header"]
    return (f"{len(h['clips'])} clip(s), ratio {h['ratio']:g} {h['direction']}, model {h['model']}: strength "
            f"{h['strength']:g}, guidance context {h['guidance_context']:g} / global {h['guidance_global']:g}, "
            f"noise share {h['noise_share']:g}, working size {h['working_size']}, seed {h['seed']}, "
            f"{h['threads']} thread(s) on {h['device']}")


def summary_lines(report: dict[str, Any]) -> list[str]:
    h, ref = report["header"], report["reference"]
    lines = [f"equal quality = region PSNR >= {ref['region_psnr']:.2f} - {h['tolerance_db']:g} dB and region warp "
             f"error <= {h['warp_slack']:g} x {ref['region_warp_error']:.3g} (the reference {ref['config']}); "
             "ΔPSNR = config minus reference"]
    best = report["summary"]["fewest_steps_equal_quality"]
    if best is None:
        lines.append(f"fewest steps at equal quality: none besides the reference {ref['config']}")
    else:
        ratio = report["summary"]["wall_ratio"]
        timing = "wall time not measured" if not ratio else \
            f"wall time {ratio:.3g}x the reference {ref['config']}'s ({1 / ratio:.3g}x faster)"
        lines.append(f"fewest steps at equal quality: {best}, {timing}")
    return lines

"""`m3ddm bench memory`: peak memory of the whole pipeline for a short and a long video.

Each length runs ``M3DDMPipeline.outpaint_video`` (streaming read and write) on a synthetic video file, in a fresh
process, so the peaks are comparable. The claim checked: the peak for the longest video stays within ``limit``
times the peak for the shortest (memory does not grow with video length, beyond the small per-frame latents).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from m3ddm.benchmarks.measure import PeakMemory, check_device, run_task, set_threads
from m3ddm.benchmarks.models import prepare_model
from m3ddm.errors import UserError

TASK = "m3ddm.benchmarks.memory:outpaint_task"
LIMIT = 1.2


def outpaint_task(model_dir: str, input_path: str, output_path: str, options: dict, device: str = "cpu",
                  threads: int | None = None) -> dict:
    from m3ddm.benchmarks.models import load_pipeline
    from m3ddm.pipeline import OutpaintOptions

    threads_used = set_threads(threads)
    pipe = load_pipeline(model_dir, device)
    start = time.perf_counter()
    with PeakMemory(device) as memory:
        result = pipe.outpaint_video(input_path, output_path, OutpaintOptions(**options))
    return {
        "frames": result.frames, "wall_s": time.perf_counter() - start, "windows": result.windows,
        "unet_calls": result.unet_calls, "threads": threads_used, "device": device,
        "output_bytes": Path(output_path).stat().st_size, **memory.result(),
    }


def bench_memory(
    frame_counts: Sequence[int] = (100, 1000),
    *,
    model: str = "tiny",
    source_size: tuple[int, int] = (320, 240),
    ratio: float = 16 / 9,
    size: int | None = None,
    steps: int = 1,
    device: str = "cpu",
    threads: int | None = None,
    isolated: bool = True,
    limit: float = LIMIT,
) -> dict:
    from m3ddm.io.samples import make_test_video

    if len(frame_counts) < 2:
        raise UserError("--frames needs at least two lengths to compare, e.g. 100,1000")
    if steps < 1:
        raise UserError("--steps must be at least 1")
    check_device(device)
    options = {"ratio": ratio, "size": size, "steps": steps, "seed": 0}
    runs = []
    with tempfile.TemporaryDirectory(prefix="m3ddm-bench-memory-") as tmp:
        model_dir = prepare_model(model, Path(tmp) / "model")
        for n in frame_counts:
            video = make_test_video(Path(tmp) / f"input-{n}.mp4", frames=n, size=source_size, fps=24)
            params = {"model_dir": model_dir, "input_path": str(video), "output_path": str(Path(tmp) / f"out-{n}.mp4"),
                      "options": options, "device": device, "threads": threads}
            runs.append({**run_task(TASK, params, isolated), "isolated": isolated})
    first, last = runs[0], runs[-1]
    ratio_peak = last["peak_mb"] / first["peak_mb"]
    ratio_growth = last["work_mb"] / first["work_mb"] if first["work_mb"] > 0 else None
    return {
        "runs": runs, "ratio_peak": ratio_peak, "ratio_growth": ratio_growth, "limit": limit,
        "within_limit": ratio_peak <= limit,
        "setup": {"model": model, "source_size": list(source_size), "ratio": ratio, "size": size, "steps": steps,
                  "device": device, "isolated": isolated},
    }


COLUMNS = [
    ("frames", "frames", ""),
    ("windows", "windows", ""),
    ("unet_calls", "UNet calls", ""),
    ("wall_s", "wall s", ".1f"),
    ("peak_mb", "peak MB", ".0f"),
    ("work_mb", "growth MB", ".0f"),
    ("baseline_mb", "start MB", ".0f"),
]

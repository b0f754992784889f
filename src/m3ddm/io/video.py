"""Video files with PyAV: probe, stream upright RGB frames, write H.264 atomically with the source audio.

Frames are decoded one at a time, so memory does not grow with the length of a video. The frame rate is
kept as an exact Fraction (the container's rational rate, never rounded to a "standard" one), and the exact
frame count is the number of frames the decoder returns (the container's count is only an estimate: edit
lists, missing headers and damaged files make it wrong). The exact probe also reads every frame's timestamp:
a variable-frame-rate video keeps them (``VideoInfo.timing``), and the writer can write them back.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from m3ddm.errors import UserError
from m3ddm.io.audio import AudioCarrier, first_audio_stream
from m3ddm.io.timing import FrameTiming, detect_timing
from m3ddm.utils.atomic import atomic_path

# NTSC rates: what a float such as 29.97 or a rate computed from rounded timestamps stands for.
_NTSC_RATES = tuple(Fraction(n * 1000, 1001) for n in (24, 30, 48, 60, 120, 240))
# How close (relative) an inexact rate must be to a standard one to be taken for it: far below any real
# difference between rates (2997/125 fps is 1e-6 away from 24000/1001 and is kept, being an exact ratio).
_SNAP_TOLERANCE = Fraction(1, 10**7)
# Floats typed by people (29.97, 23.976, 59.94) are 1e-6 off the NTSC rate they name.
_FLOAT_SNAP_TOLERANCE = Fraction(1, 10**5)
# A rate with a denominator up to this is an exact ratio as containers store them (30000/1001, 2997/125).
_EXACT_DENOMINATOR = 1001
# H.264 encoders in order of preference: software first (always works), then hardware ones.
H264_ENCODERS = (
    "libx264",
    "libopenh264",
    "h264_videotoolbox",
    "h264_nvenc",
    "h264_qsv",
    "h264_amf",
    "h264_mf",
)
# libx264 settings that make the same frames give the same file, on any machine and whatever the pace, batching or
# process count. A fixed thread count: "auto" follows the machine's cores. And no macroblock-tree rate control: with
# it, the same frames encoded twice in one process gave other bitstreams (14 distinct files in 60 runs of a 60-frame
# clip, up to 40 levels apart after decoding; 24 in 40 on 2026-12-06); without it 40 of 40 were identical. It costs a
# few percent of bitrate at the same CRF. (The frames themselves must be the same too: see the contiguous latents in
# pipeline.generate.)
ENCODER_THREADS = 2
X264_PARAMS = "mbtree=0"
# Reading from frame SEEK_FROM_FRAME on, the reader seeks instead of decoding every frame before (a few key-frame
# intervals: below that a seek saves little); B-frames put packet timestamps out of order by far fewer than
# _REORDER_MARGIN places.
SEEK_FROM_FRAME = 100
_REORDER_MARGIN = 64


@dataclass(frozen=True)
class VideoInfo:
    """What a video (file or frame folder) holds. ``width``/``height`` are the displayed (upright) size.

    ``rotation`` is the counter-clockwise turn (degrees, a multiple of 90) applied to stored frames to
    show them upright, followed by a left-right mirror when ``mirrored``. ``num_frames_exact`` says
    whether ``num_frames`` was counted by decoding (or listing images) rather than read from a header.
    """

    path: Path
    width: int
    height: int
    fps: Fraction
    num_frames: int
    num_frames_exact: bool
    codec: str
    container: str
    rotation: int = 0
    mirrored: bool = False
    start_time: float = 0.0
    has_audio: bool = False
    audio_codec: str | None = None
    audio_channels: int = 0
    audio_layout: str | None = None
    audio_sample_rate: int = 0
    is_frame_folder: bool = False
    # Per-frame timestamps of a variable-frame-rate video (exact probes only); None: frame i is at i / fps.
    # ``fps`` is then the average rate.
    timing: FrameTiming | None = None

    @property
    def duration(self) -> float:
        """Play time of the frames in seconds (``num_frames / fps``, or the timestamps' end)."""
        return float(self.timing.duration if self.timing is not None else self.num_frames / self.fps)

    def frame_seconds(self, index: int) -> Fraction:
        """When frame ``index`` is shown, in seconds after the first frame (``num_frames`` gives the end)."""
        if self.timing is not None:
            return self.timing.seconds(index)
        return Fraction(index) / self.fps

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height


# ---------------------------------------------------------------------------------------------------------
# Orientation: display matrices and the legacy 'rotate' tag, as pure functions.


def orientation_from_display_matrix(matrix: Sequence[int]) -> tuple[int, bool]:
    """(counter-clockwise rotation, mirrored) for an FFmpeg display matrix (9 ints, 16.16 fixed point).

    FFmpeg maps a source pixel (x, y) to (a*x + c*y, b*x + d*y) with a, b, c, d = m[0], m[1], m[3], m[4]
    (y points down). Angles that are not a multiple of 90 degrees snap to the nearest one.
    """
    a, b, c, d = (float(matrix[i]) for i in (0, 1, 3, 4))
    transpose = abs(b) + abs(c) > abs(a) + abs(d)
    if transpose:
        # Displayed rows come from source columns (flipped when b < 0), displayed columns from rows (c < 0).
        ops = (True, b < 0, c < 0)
    else:
        ops = (False, d < 0, a < 0)
    return _orientation_from_ops(*ops)


def orientation_from_rotate_tag(tag: str | int) -> tuple[int, bool]:
    """The legacy ``rotate`` stream tag holds clockwise degrees; return (ccw rotation, mirrored=False)."""
    try:
        clockwise = float(tag)
    except (TypeError, ValueError):
        return 0, False
    return int(-90 * round(clockwise / 90)) % 360, False


def apply_orientation(frame: np.ndarray, rotation: int, mirrored: bool) -> np.ndarray:
    """Turn a stored HxWxC frame upright: rotate counter-clockwise by ``rotation`` degrees, then mirror."""
    k = (rotation // 90) % 4
    if k:
        frame = np.rot90(frame, k)
    if mirrored:
        frame = frame[:, ::-1]
    return frame


def _orientation_from_ops(transpose: bool, flip_rows: bool, flip_cols: bool) -> tuple[int, bool]:
    # Find the (rotation, mirror) pair that moves pixels like transpose-then-flip; a tiny brute force,
    # which avoids sign-convention slips between FFmpeg's matrix algebra and numpy's rot90.
    probe = np.arange(6).reshape(2, 3)
    target = probe.T if transpose else probe
    target = target[::-1] if flip_rows else target
    target = target[:, ::-1] if flip_cols else target
    for rotation in (0, 90, 180, 270):
        for mirrored in (False, True):
            candidate = apply_orientation(probe, rotation, mirrored)
            if candidate.shape == target.shape and np.array_equal(candidate, target):
                return rotation, mirrored
    raise AssertionError("unreachable: the 8 orientations cover every transpose/flip combination")


def frame_orientation(frame: av.VideoFrame, stream: av.video.stream.VideoStream) -> tuple[int, bool]:
    """Orientation of a decoded frame: its display-matrix side data, else the stream's 'rotate' tag."""
    container = frame.side_data
    # recent PyAV makes the container a mapping from type to side data; older releases iterate the side data itself
    entries = container.values() if hasattr(container, "values") else container
    for side_data in entries:
        if side_data.type == av.sidedata.sidedata.Type.DISPLAYMATRIX:
            matrix = np.frombuffer(bytes(side_data)[:36], dtype="<i4")
            return orientation_from_display_matrix(matrix.tolist())
    for key, value in stream.metadata.items():
        if key.lower() == "rotate":
            return orientation_from_rotate_tag(value)
    return 0, False


# ---------------------------------------------------------------------------------------------------------
# Reading.


def normalize_fps(rate: Fraction | float) -> Fraction:
    """A frame rate as an exact Fraction, without changing rates that are exact ratios.

    Containers store rates as ratios (30000/1001, 2997/125, 25): those are kept as they are. Only an inexact
    value becomes the NTSC rate, integer or small ratio it is a hair from: a ratio with a large denominator
    computed from rounded timestamps (29970029/1000000, within 1e-7) or a float (29.97, within 1e-5).
    """
    exact = Fraction(rate)
    tolerance = _FLOAT_SNAP_TOLERANCE if isinstance(rate, float) else _SNAP_TOLERANCE
    if exact.denominator <= _EXACT_DENOMINATOR and not isinstance(rate, float):
        return exact
    for standard in (*_NTSC_RATES, Fraction(round(exact)), exact.limit_denominator(_EXACT_DENOMINATOR)):
        if standard > 0 and abs(exact - standard) <= standard * tolerance:
            return standard
    return exact


def _stream_rates(stream, frames: int, seconds: float | None) -> list[Fraction]:
    """The frame rates FFmpeg reads for a stream, most trusted first (then frames / duration)."""
    rates: list[Fraction] = []
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and rate > 0 and normalize_fps(Fraction(rate)) not in rates:
            rates.append(normalize_fps(Fraction(rate)))
    if not rates and frames > 0 and seconds:
        rates.append(normalize_fps(Fraction(frames) / Fraction(seconds)))
    return rates


def _check_file(path: Path) -> None:
    if not path.exists():
        raise UserError(f"video not found: {path}")
    if path.is_dir():
        raise UserError(
            f"{path} is a folder, not a video file (frame folders are read with open_video_source)"
        )
    if path.stat().st_size == 0:
        raise UserError(f"video file is empty: {path}")


def _open_input(path: Path) -> av.container.InputContainer:
    _check_file(path)
    try:
        return av.open(str(path), "r")
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read {path} as a video: {_reason(error)}") from None


def _reason(error: BaseException) -> str:
    text = getattr(error, "strerror", None) or str(error)
    return " ".join(str(text).split()) or type(error).__name__


def _video_stream(container, path: Path):
    streams = [s for s in container.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)]
    if not streams:
        raise UserError(f"{path} has no video stream")
    stream = streams[0]
    stream.thread_type = "AUTO"
    return stream


def _decoded_frames(container, stream, path: Path) -> Iterator[av.VideoFrame]:
    """Every frame the decoder returns, in order; damaged packets are skipped as the ffmpeg tool does."""
    try:
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                continue
            yield from frames
    except av.error.FFmpegError as error:
        raise UserError(f"error while reading {path}: {_reason(error)}") from None


def probe_video(path: str | os.PathLike, exact: bool = False) -> VideoInfo:
    """Describe a video file. Decodes its first frame (for orientation, and to prove it is readable).

    With ``exact=True`` the frame count is counted by decoding the whole stream (no RGB conversion);
    otherwise it comes from the container (or duration x fps) and ``num_frames_exact`` is False.
    """
    path = Path(path)
    container = _open_input(path)
    with container:
        stream = _video_stream(container, path)
        frames = _decoded_frames(container, stream, path)
        first = next(frames, None)
        if first is None:
            raise UserError(f"{path} holds no decodable video frames")
        rotation, mirrored = frame_orientation(first, stream)
        seconds = _stream_seconds(container, stream)
        rates = _stream_rates(stream, stream.frames, seconds)
        timing = None
        if exact:
            stamps, last = [first.pts], first
            for last in frames:
                stamps.append(last.pts)
            num_frames = len(stamps)
            # Constant rate when the timestamps follow one of the container's rates; else they are kept.
            end = _stream_end(container, stream, last)
            fps, timing = detect_timing(stamps, stream.time_base, rates, end)
            if timing is not None:
                fps = timing.nominal_fps
        else:
            fps = rates[0] if rates else None
        if fps is None:
            raise UserError(f"cannot tell the frame rate of {path}")
        if not exact:
            num_frames = stream.frames if stream.frames > 0 else max(1, round(seconds * fps)) if seconds else 1
        width, height = (first.height, first.width) if rotation % 180 else (first.width, first.height)
        audio = first_audio_stream(container)
        return VideoInfo(
            path=path,
            width=width,
            height=height,
            fps=fps,
            num_frames=num_frames,
            num_frames_exact=exact,
            codec=stream.codec_context.codec.canonical_name,
            container=container.format.name,
            rotation=rotation,
            mirrored=mirrored,
            start_time=float(first.time) if first.time is not None else 0.0,
            has_audio=audio is not None,
            audio_codec=audio.codec_context.codec.canonical_name if audio is not None else None,
            audio_channels=audio.codec_context.channels if audio is not None else 0,
            audio_layout=audio.codec_context.layout.name if audio is not None else None,
            audio_sample_rate=audio.codec_context.sample_rate if audio is not None else 0,
            timing=timing,
        )


def _stream_seconds(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def _stream_end(container, stream, last: av.VideoFrame) -> int | None:
    """Where the video stream ends, in ticks of its time base (same origin as frame timestamps).

    MP4, MOV and AVI give the stream's duration. Matroska and WebM give none, but store each frame's own
    duration, so the last frame's end is the stream's (the container's duration would include the audio).
    """
    tb = stream.time_base
    if tb is None:
        return None
    if stream.duration is not None and stream.start_time is not None:
        return stream.start_time + stream.duration
    if "matroska" in container.format.name and last.pts is not None and last.duration:
        return last.pts + last.duration
    if container.duration is not None:
        start = container.start_time or 0
        return round(Fraction(start + container.duration, av.time_base) / tb)
    return None


def first_frame_time(container, path: Path) -> float | None:
    """Time (seconds) of the first decodable video frame, or None for a file without video."""
    if not any(not (s.disposition & av.stream.Disposition.attached_pic) for s in container.streams.video):
        return None
    stream = _video_stream(container, path)
    first = next(_decoded_frames(container, stream, path), None)
    return float(first.time) if first is not None and first.time is not None else None


def count_frames(path: str | os.PathLike) -> int:
    """The exact number of frames, counted by decoding (no colour conversion)."""
    return probe_video(path, exact=True).num_frames


def iter_frames(path: str | os.PathLike, start: int = 0, end: int | None = None) -> Iterator[np.ndarray]:
    """Yield frames ``start <= i < end`` as upright RGB uint8 arrays (H x W x 3), one at a time.

    The file is opened here, so a missing or unreadable file raises UserError at the call, not later.
    """
    path = Path(path)
    container = _open_input(path)
    try:
        stream = _video_stream(container, path)
    except BaseException:
        container.close()
        raise
    return _iter_rgb(container, stream, path, start, end)


def _iter_rgb(container, stream, path: Path, start: int, end: int | None) -> Iterator[np.ndarray]:
    with container:
        orientation = None
        for index, frame in _indexed_frames(container, stream, path, start):
            if orientation is None:
                orientation = frame_orientation(frame, stream)
            if end is not None and index >= end:
                return
            yield _to_rgb(frame, orientation)


def _indexed_frames(container, stream, path: Path, start: int,
                    seek: bool = True) -> Iterator[tuple[int, av.VideoFrame]]:
    """``(index, frame)`` for every decoded frame from ``start`` on (index = place in decoding order from 0).

    Far into a file (``--start`` in a long video) it seeks to the key frame before frame ``start`` instead of
    decoding everything before it (:func:`_seeked_frames`)."""
    if seek and start >= SEEK_FROM_FRAME:
        yield from _seeked_frames(container, stream, path, start)
        return
    for index, frame in enumerate(_decoded_frames(container, stream, path)):
        if index >= start:
            yield index, frame


def _seeked_frames(container, stream, path: Path, start: int) -> Iterator[tuple[int, av.VideoFrame]]:
    """Frame ``start`` is found by its timestamp: the ``start``-th smallest packet timestamp of the stream, read
    without decoding; the file is seeked to the key frame before it. Where that cannot be done exactly (packets
    without timestamps, too few frames, a seek that fails or lands elsewhere), the file is opened again and
    decoded from its beginning, as for a small ``start``."""
    target = _timestamp_of(container, stream, start)
    if target is not None:
        try:
            container.seek(target, stream=stream, backward=True, any_frame=False)
        except av.error.FFmpegError:
            target = None
    if target is not None:
        frames = _decoded_frames(container, stream, path)
        for frame in frames:
            if frame.pts is not None and frame.pts < target:
                continue  # between the key frame and the one asked for
            if frame.pts == target:
                yield start, frame
                yield from enumerate(frames, start + 1)
                return
            break
    # this opening has been read into (and maybe seeked): start over on a fresh one
    with _open_input(path) as fresh:
        yield from _indexed_frames(fresh, _video_stream(fresh, path), path, start, seek=False)


def _timestamp_of(container, stream, index: int) -> int | None:
    """The presentation timestamp of frame ``index`` from the packets alone (no decoding), or None when some
    packet has none. Packets come in decoding order, whose timestamps are out of order only within a few frames
    (B-frames): after ``index + 1 + _REORDER_MARGIN`` packets the ``index``-th smallest is final."""
    stamps = []
    try:
        for packet in container.demux(stream):
            if packet.size == 0:  # the demuxer's closing empty packet
                continue
            if packet.pts is None:
                return None
            stamps.append(packet.pts)
            if len(stamps) > index + _REORDER_MARGIN:
                break
    except av.error.FFmpegError:  # a damaged file: the sequential decoding skips or reports what it can
        return None
    if len(stamps) <= index:
        return None
    return sorted(stamps)[index]


def _to_rgb(frame: av.VideoFrame, orientation: tuple[int, bool]) -> np.ndarray:
    # to_ndarray converts with the frame's own colour matrix and range tags (BT.601 when untagged).
    rgb = frame.to_ndarray(format="rgb24")
    return np.ascontiguousarray(apply_orientation(rgb, *orientation))


def read_frames(path: str | os.PathLike, indices: Iterable[int]) -> list[np.ndarray]:
    """Frames at ``indices`` (any order, repeats allowed) from one decoding pass (seeking far into a file).

    Only the requested frames are converted to RGB and kept; decoding stops after the last one.
    """
    requested = [int(i) for i in indices]
    if not requested:
        return []
    if min(requested) < 0:
        raise ValueError(f"frame indices must be >= 0, got {min(requested)}")
    wanted, last = set(requested), max(requested)
    path = Path(path)
    container = _open_input(path)
    found: dict[int, np.ndarray] = {}
    with container:
        stream = _video_stream(container, path)
        orientation = None
        for index, frame in _indexed_frames(container, stream, path, min(requested)):
            orientation = orientation or frame_orientation(frame, stream)
            if index in wanted:
                found[index] = _to_rgb(frame, orientation)
            if index >= last:
                break
    if last not in found:  # (frames before the first requested one may not have been decoded: count them all)
        raise ValueError(f"{path} has {count_frames(path)} frames; frame {last} does not exist")
    return [found[i] for i in requested]


# ---------------------------------------------------------------------------------------------------------
# Writing.


def pick_h264_encoder() -> str:
    """The preferred H.264 encoder this FFmpeg build offers."""
    for name in H264_ENCODERS:
        try:
            av.codec.Codec(name, "w")
        except Exception:
            continue
        return name
    raise UserError("this FFmpeg build (PyAV) has no H.264 encoder; install a PyAV wheel with libx264")


class VideoWriter:
    """Write RGB frames to an H.264 video, atomically, optionally carrying another file's audio.

    Use as a context manager. The file appears at ``path`` only when the block ends without an error;
    until then frames go to a temporary file beside it, which an exception removes.

    ``fps`` is exact (a Fraction such as 30000/1001 stays exact). ``crf`` is x264's quality (lower is
    better; 18 is visually near-lossless). ``audio_from`` names a file whose audio is copied when its
    codec fits the container (AAC/MP3/AC-3 in MP4) or re-encoded to AAC otherwise, trimmed to the video.
    Audio stays in sync with the source's first video frame; ``audio_skip`` (seconds) starts it later,
    for output that begins part-way into the source; ``reencode_audio`` forces AAC. Width and height must
    be even (yuv420p): the caller chooses the size, so an odd one is a programming error (ValueError).

    ``timing`` (a variable-frame-rate source's :class:`FrameTiming`) writes frame ``i`` at ``timing.pts[i]``
    in the source's time base instead of ``i / fps``, gives the last frame its duration so the file plays
    as long as the source, and moves the audio along the same clock. ``fps`` is then the nominal rate.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: Fraction | int | float | str,
        width: int,
        height: int,
        crf: int = 18,
        audio_from: str | os.PathLike | None = None,
        audio_skip: float = 0.0,
        reencode_audio: bool = False,
        preset: str = "medium",
        encoder: str | None = None,
        timing: FrameTiming | None = None,
    ) -> None:
        self.path = Path(path)
        self.fps = _as_fps(fps)
        self.timing = timing
        if width <= 0 or height <= 0 or width % 2 or height % 2:
            raise ValueError(f"video size must be positive and even for yuv420p H.264, got {width}x{height}")
        self.width, self.height = int(width), int(height)
        self.crf = int(crf)
        self.preset = preset
        self.encoder = encoder
        self.audio_from = Path(audio_from) if audio_from is not None else None
        self.audio_skip = float(audio_skip)
        self.reencode_audio = reencode_audio
        self.frames_written = 0
        self._stack: contextlib.ExitStack | None = None
        self._container = None
        self._stream = None
        self._audio: AudioCarrier | None = None
        self._held: av.Packet | None = None  # timed output: the latest packet, muxed once the next one exists
        self._first_dts: int | None = None
        self._shown_for: dict[int, int] | None = None  # timed output: frame timestamp -> display duration

    def __enter__(self) -> VideoWriter:
        self.open()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abort(exc_type, exc, tb)

    def open(self) -> None:
        """Create the temporary output and its streams (called by ``with``)."""
        if self._stack is not None:
            raise RuntimeError("VideoWriter is already open")
        audio_offset = self._audio_offset()  # probe before creating anything, so a bad source leaves no file
        self._stack = contextlib.ExitStack()
        try:
            tmp = self._stack.enter_context(atomic_path(self.path))
            self._container = self._open_output(tmp)
            self._stream = self._add_video_stream(self._container)
            if self.audio_from is not None:
                self._audio = AudioCarrier.open(
                    self._container, self.audio_from, audio_offset, reencode=self.reencode_audio
                )
        except BaseException as error:
            self._abort(type(error), error, error.__traceback__)
            raise

    def write(self, frame: np.ndarray) -> None:
        """Append one RGB uint8 frame of shape (height, width, 3)."""
        if self._container is None:
            raise RuntimeError("VideoWriter is not open; use it in a with block")
        frame = np.asarray(frame)
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise ValueError(
                f"frame must be uint8 of shape ({self.height}, {self.width}, 3), "
                f"got {frame.dtype} {frame.shape}"
            )
        rgb = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        # Convert with the BT.709 matrix (limited range) and tag the stream so players decode it the same way.
        yuv = rgb.reformat(format="yuv420p", dst_colorspace="itu709", dst_color_range="MPEG")
        if self.timing is None:
            yuv.pts, yuv.time_base = self.frames_written, 1 / self.fps
            self._container.mux(self._stream.encode(yuv))
        else:
            index = self.frames_written
            if index >= len(self.timing):
                raise ValueError(f"the timing has {len(self.timing)} frames; frame {index} has no timestamp")
            ticks = self.timing.pts
            yuv.pts, yuv.time_base = ticks[index], self.timing.time_base
            yuv.duration = (ticks[index + 1] if index + 1 < len(ticks) else self.timing.end) - ticks[index]
            self._mux_timed(self._stream.encode(yuv))
        self.frames_written += 1
        if self._audio is not None:
            self._audio.advance(self._written_seconds())

    def close(self) -> None:
        """Flush the encoders, finish the audio, and move the file into place."""
        if self._stack is None:
            return
        try:
            if self.frames_written == 0:
                raise ValueError(f"no frames were written to {self.path}")
            if self.timing is None:
                self._container.mux(self._stream.encode(None))
            else:
                self._mux_timed(self._stream.encode(None))
                self._mux_last_packet()
            if self._audio is not None:
                self._audio.finish(self._written_seconds())
                self._audio = None
            self._container.close()
            self._container = None
        except BaseException as error:
            self._abort(type(error), error, error.__traceback__)
            raise
        stack, self._stack = self._stack, None
        stack.close()  # renames the temporary file onto the target

    def _written_seconds(self) -> Fraction:
        """Output time where the frames written so far stop showing."""
        if self.timing is None:
            return self.frames_written / self.fps
        return self.timing.seconds(min(self.frames_written, len(self.timing)))

    def _mux_timed(self, packets: list[av.Packet]) -> None:
        # Each packet shows its frame until the next frame's timestamp (what Matroska stores per block).
        # One packet is held back: the last one (in decoding order) gets its duration fixed at the end.
        if self._shown_for is None:
            ticks = self.timing.pts
            self._shown_for = {t: b - t for t, b in zip(ticks, (*ticks[1:], self.timing.end), strict=True)}
        for packet in packets:
            if packet.pts in self._shown_for:
                packet.duration = self._shown_for[packet.pts]
            if self._first_dts is None:
                self._first_dts = packet.dts if packet.dts is not None else packet.pts
            if self._held is not None:
                self._container.mux(self._held)
            self._held = packet

    def _mux_last_packet(self) -> None:
        """Mux the held packet with the duration that makes the file end at ``timing.end``.

        MP4 sums decoding-time steps for the track's length (the last packet's duration closes it); with
        B-frames and irregular timestamps the encoder's guess for that duration is another frame's, so the
        file would play shorter or longer than the source.
        """
        packet, self._held = self._held, None
        if packet is None:
            return
        dts_based = self._container.format.name in ("mp4", "mov")  # Matroska keeps the per-frame durations
        if dts_based and None not in (packet.dts, self._first_dts, packet.time_base):
            end = round(self.timing.duration / packet.time_base)
            duration = end + self._first_dts - packet.dts
            if duration > 0:
                packet.duration = duration
        self._container.mux(packet)

    def _abort(self, exc_type, exc, tb) -> None:
        self._held = None
        if self._audio is not None:
            self._audio.close()
            self._audio = None
        if self._container is not None:
            with contextlib.suppress(Exception):
                self._container.close()
            self._container = None
        if self._stack is not None:
            stack, self._stack = self._stack, None
            with contextlib.suppress(BaseException):
                stack.__exit__(exc_type, exc, tb)  # deletes the temporary file; the caller re-raises

    def _audio_offset(self) -> float:
        """Source time (seconds) that lands at the output's start: its first video frame, plus the skip."""
        if self.audio_from is None:
            return 0.0
        container = _open_input(self.audio_from)
        with container:
            start = first_frame_time(container, self.audio_from)
        return (start or 0.0) + self.audio_skip

    def _open_output(self, tmp: Path):
        muxer = _output_format(self.path)
        # MP4/MOV: put the index first so players can start before the whole file has arrived.
        options = {"movflags": "+faststart"} if muxer in ("mp4", "mov") else None
        try:
            container = av.open(str(tmp), "w", format=muxer, container_options=options)
        except (ValueError, av.error.FFmpegError, OSError) as error:
            raise UserError(f"cannot write a video to {self.path}: {_reason(error)}") from None
        if "h264" not in container.supported_codecs:
            container.close()
            raise UserError(
                f"{self.path.suffix or self.path.name} files cannot hold H.264; use .mp4, .mkv or .mov"
            )
        return container

    def _add_video_stream(self, container):
        encoder = self.encoder or pick_h264_encoder()
        options = {"crf": str(self.crf), "preset": self.preset, "threads": str(ENCODER_THREADS),
                   "x264-params": X264_PARAMS} if encoder == "libx264" else {}
        if encoder == "h264_nvenc":
            options = {"rc": "vbr", "cq": str(self.crf)}
        stream = container.add_stream(encoder, rate=self.fps, options=options)
        stream.width, stream.height = self.width, self.height
        stream.pix_fmt = "yuv420p"
        # Timed output keeps the source's clock, so every timestamp is written exactly.
        stream.codec_context.time_base = 1 / self.fps if self.timing is None else self.timing.time_base
        if encoder != "libx264" and encoder != "h264_nvenc":
            stream.bit_rate = int(self.width * self.height * float(self.fps) * 0.15)
        context = stream.codec_context
        context.colorspace, context.color_primaries, context.color_trc = 1, 1, 1  # BT.709
        context.color_range = 1  # limited ("tv") range
        return stream


def _as_fps(fps: Fraction | int | float | str) -> Fraction:
    """An exact frame rate; floats (29.97, 23.976...) snap to the NTSC rate they stand for, ratios stay."""
    try:
        if isinstance(fps, float) and not math.isfinite(fps):
            raise ValueError
        value = Fraction(fps)
    except (ValueError, ZeroDivisionError, TypeError):
        raise ValueError(f"fps must be a positive number or fraction, got {fps!r}") from None
    if value <= 0:
        raise ValueError(f"fps must be positive, got {fps!r}")
    return normalize_fps(fps) if isinstance(fps, float) else value


def _output_format(path: Path) -> str | None:
    # The temporary name keeps the extension, but naming the muxer makes the choice explicit.
    return {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}.get(path.suffix.lower())


def write_video(
    path: str | os.PathLike,
    frames: Iterable[np.ndarray],
    fps: Fraction | int | float | str,
    crf: int = 18,
    audio_from: str | os.PathLike | None = None,
    audio_skip: float = 0.0,
    reencode_audio: bool = False,
    timing: FrameTiming | None = None,
) -> int:
    """Write an iterable of RGB uint8 frames (size taken from the first) and return how many were written.

    The arguments are those of :class:`VideoWriter`.
    """
    iterator = iter(frames)
    first = next(iterator, None)
    if first is None:
        raise ValueError(f"no frames to write to {path}")
    height, width = np.asarray(first).shape[:2]
    audio = {"audio_from": audio_from, "audio_skip": audio_skip, "reencode_audio": reencode_audio}
    with VideoWriter(path, fps, width, height, crf=crf, timing=timing, **audio) as writer:
        writer.write(first)
        for frame in iterator:
            writer.write(frame)
    return writer.frames_written


def with_fps(info: VideoInfo, fps: Fraction | int | str | None) -> VideoInfo:
    """``info`` with its frame rate replaced (None keeps it); a forced rate drops per-frame timestamps."""
    return info if fps is None else replace(info, fps=_as_fps(fps), timing=None)

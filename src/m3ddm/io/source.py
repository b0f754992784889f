"""One way to read any video input: a video file or a folder of frames, whole or a time range of it."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from m3ddm.errors import UserError
from m3ddm.io.frames import iter_folder_frames, probe_frame_folder, read_folder_frames
from m3ddm.io.video import VideoInfo, iter_frames, probe_video, read_frames, with_fps


class VideoSource:
    """A readable video: ``info`` plus streaming access to its frames (RGB uint8, H x W x 3, upright).

    Every call re-opens the input, so a source can be read any number of times (e.g. once to encode
    latents, once to compose the full-resolution output) without holding frames in memory.

    A source made by :meth:`trimmed` is a time range of its file: frame 0 is the range's first frame,
    ``info`` describes the range (frame count, timestamps from 0), and ``offset_seconds`` says where the
    range starts after the file's first frame (where its audio must start).
    """

    def __init__(
        self, info: VideoInfo, first_frame: int = 0, offset_seconds: Fraction = Fraction(0), ranged: bool = False
    ) -> None:
        self.info = info
        self.first_frame = first_frame
        self.offset_seconds = Fraction(offset_seconds)
        # A whole file reads to its last decodable frame (a header's count can be wrong); a range stops at its end.
        self.ranged = ranged

    @property
    def path(self) -> Path:
        return self.info.path

    def __len__(self) -> int:
        return self.info.num_frames

    def iter_frames(self, start: int = 0, end: int | None = None) -> Iterator[np.ndarray]:
        """Frames ``start <= i < end`` in order."""
        if self.ranged:
            last = self.info.num_frames if end is None else min(end, self.info.num_frames)
            start, end = self.first_frame + start, self.first_frame + last
        if self.info.is_frame_folder:
            return iter_folder_frames(self.info.path, start, end)
        return iter_frames(self.info.path, start, end)

    def read(self, indices: Iterable[int]) -> list[np.ndarray]:
        """Frames at ``indices`` (any order), in one pass."""
        requested = [int(i) for i in indices]
        for i in requested if self.ranged else ():
            if not 0 <= i < self.info.num_frames:
                raise ValueError(f"{self.path} has {self.info.num_frames} frames; frame {i} does not exist")
        shifted = [self.first_frame + i for i in requested]
        if self.info.is_frame_folder:
            return read_folder_frames(self.info.path, shifted)
        return read_frames(self.info.path, shifted)

    def trimmed(self, start: Fraction | float | None = None, end: Fraction | float | None = None) -> VideoSource:
        """The frames shown from ``start`` to before ``end`` (seconds after the first frame; None: the edge).

        ``end`` past the end of the video is the end. A range that holds no frame is a UserError.
        """
        if start is None and end is None:
            return self
        info = self.info
        begin = Fraction(start) if start is not None else Fraction(0)
        finish = Fraction(end) if end is not None else None
        if begin < 0 or (finish is not None and finish <= begin):
            raise UserError(f"the time range must have 0 <= start < end, got start {float(begin):g} s"
                            + (f", end {float(finish):g} s" if finish is not None else ""))
        first, stop = _frame_range(info, begin, finish)
        if first >= stop:
            raise UserError(f"no frame of {self.path} is shown between {float(begin):g} s and "
                            f"{'the end' if finish is None else f'{float(finish):g} s'} "
                            f"(the video is {info.duration:.3f} s long)")
        timing = info.timing.window(first, stop) if info.timing is not None else None
        ranged = replace(info, num_frames=stop - first, timing=timing)
        offset = self.offset_seconds + info.frame_seconds(first)
        return VideoSource(ranged, self.first_frame + first, offset, ranged=True)

    def __repr__(self) -> str:
        i = self.info
        first = f", from frame {self.first_frame}" if self.first_frame else ""
        return f"VideoSource({str(i.path)!r}, {i.width}x{i.height}, {i.num_frames} frames at {i.fps} fps{first})"


def _frame_range(info: VideoInfo, start: Fraction, end: Fraction | None) -> tuple[int, int]:
    """Indices ``first, stop`` of the frames whose time t has ``start <= t < end``."""
    n = info.num_frames
    if info.timing is not None:
        first = info.timing.index_at(start)
        stop = n if end is None else info.timing.index_at(end)
    else:  # frame i is shown at i / fps: exact arithmetic, no float rounding at the edges
        first = math.ceil(start * info.fps)
        stop = n if end is None else math.ceil(end * info.fps)
    return min(first, n), min(stop, n)


def open_video_source(
    path: str | os.PathLike, fps: Fraction | int | str | None = None, exact_count: bool = True
) -> VideoSource:
    """Open a video file or a frame folder.

    ``fps`` overrides the frame rate (for folders it otherwise comes from ``fps.txt`` or defaults to 24).
    ``exact_count`` counts a file's frames by decoding it once (what a pipeline needs, and what finds the
    timestamps of a variable-frame-rate video); False trusts the container's header, which is quicker but
    can be wrong.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"input not found: {path}")
    if path.is_dir():
        return VideoSource(probe_frame_folder(path, fps))
    return VideoSource(with_fps(probe_video(path, exact=exact_count), fps))

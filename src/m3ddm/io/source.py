"""One way to read any video input: a video file or a folder of frames."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
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
    """

    def __init__(self, info: VideoInfo) -> None:
        self.info = info

    @property
    def path(self) -> Path:
        return self.info.path

    def __len__(self) -> int:
        return self.info.num_frames

    def iter_frames(self, start: int = 0, end: int | None = None) -> Iterator[np.ndarray]:
        """Frames ``start <= i < end`` in order."""
        if self.info.is_frame_folder:
            return iter_folder_frames(self.info.path, start, end)
        return iter_frames(self.info.path, start, end)

    def read(self, indices: Iterable[int]) -> list[np.ndarray]:
        """Frames at ``indices`` (any order), in one pass."""
        if self.info.is_frame_folder:
            return read_folder_frames(self.info.path, indices)
        return read_frames(self.info.path, indices)

    def __repr__(self) -> str:
        i = self.info
        return f"VideoSource({str(i.path)!r}, {i.width}x{i.height}, {i.num_frames} frames at {i.fps} fps)"


def open_video_source(
    path: str | os.PathLike, fps: Fraction | int | str | None = None, exact_count: bool = True
) -> VideoSource:
    """Open a video file or a frame folder.

    ``fps`` overrides the frame rate (for folders it otherwise comes from ``fps.txt`` or defaults to 24).
    ``exact_count`` counts a file's frames by decoding it once (what a pipeline needs); False trusts the
    container's header, which is quicker but can be wrong.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"input not found: {path}")
    if path.is_dir():
        return VideoSource(probe_frame_folder(path, fps))
    return VideoSource(with_fps(probe_video(path, exact=exact_count), fps))

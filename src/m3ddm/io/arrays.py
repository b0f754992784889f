"""An in-memory video with the interface of a file source (for the pipeline API, evaluation and ComfyUI)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from m3ddm.errors import UserError


class ArraySource:
    """An in-memory video (``[F, H, W, 3]`` uint8) with the same interface as ``m3ddm.io.VideoSource``."""

    @dataclass
    class Info:
        num_frames: int
        width: int
        height: int
        fps: Fraction
        has_audio: bool = False
        path: Path | None = None

    def __init__(self, frames: np.ndarray, fps: float | Fraction = 24):
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
            raise UserError(f"expected frames shaped [F, H, W, 3] with F >= 1, got {frames.shape}")
        self.frames = frames.astype(np.uint8, copy=False)
        fps = Fraction(fps).limit_denominator(100000)
        self.info = ArraySource.Info(frames.shape[0], frames.shape[2], frames.shape[1], fps)

    def iter_frames(self) -> Iterator[np.ndarray]:
        yield from self.frames

    def read(self, indices) -> list[np.ndarray]:
        return [self.frames[i] for i in indices]

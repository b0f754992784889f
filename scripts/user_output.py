"""Shared by the checks in scripts/ that judge the user's file: outpaint through the user's path, read the MP4 back."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from m3ddm.evaluation.protocol import read_video
from m3ddm.geometry import Rect
from m3ddm.jobs import outpaint_file
from m3ddm.pipeline import M3DDMPipeline, OutpaintOptions


def outpaint_and_read(pipe: M3DDMPipeline, clip: Path, output: Path, options: OutpaintOptions,
                      **job) -> tuple[np.ndarray, Rect]:
    """``outpaint_file`` (``job``: its other arguments, e.g. ``end``), then the written frames and the source's place
    in them."""
    result = outpaint_file(pipe, clip, output, options, **job)
    frames, _ = read_video(output)
    return frames, result.geometry.output_known

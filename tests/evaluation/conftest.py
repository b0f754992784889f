"""Shared helpers for the evaluation tests: small deterministic videos and writers."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest


def synthetic_clip(index: int, num_frames: int = 12, size: int = 48) -> np.ndarray:
    from m3ddm.training.synthetic import synthetic_video

    return synthetic_video(index, seed=7, num_frames=num_frames, height=size, width=size).frames


def write_frame_folder(folder: Path, frames: np.ndarray) -> Path:
    """Lossless PNG frames 00000.png, 00001.png, ..."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        assert cv2.imwrite(str(folder / f"{i:05d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return folder


@pytest.fixture(scope="session")
def make_clip():
    """``make_clip(index, num_frames=12, size=48)``: a deterministic synthetic video (uint8 [F, H, W, 3])."""
    return synthetic_clip


@pytest.fixture(scope="session")
def frames_to_folder():
    """``frames_to_folder(folder, frames)``: write lossless PNG frames and return the folder."""
    return write_frame_folder

"""Pixel ranges and PSNR, written once.

Three ranges meet in this project:

* uint8 frames ``[..., H, W, 3]`` (video files, images, the metrics' input);
* "signed" float pixels ``[..., 3, H, W]`` in [-1, 1] (what the VAE/codec and LPIPS take and give);
* "unit" float frames ``[..., H, W, 3]`` in [0, 1] (the image metrics, ComfyUI's IMAGE).

The signed -> uint8 rounding is the official driver's (``(x / 2 + 0.5) * 255``, rounded), so decoded frames match
it bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported where it is used: the metrics and benchmark tables load without it
    import torch

# An exact frame's PSNR: a cap rather than inf, so a mean over frames stays finite when some frames are exact.
PSNR_CAP_DB = 100.0


def to_signed(frames: np.ndarray | torch.Tensor | Sequence[np.ndarray]) -> torch.Tensor:
    """uint8 ``[..., H, W, 3]`` (an array, a list of arrays or a tensor, on any device) -> float32
    ``[..., 3, H, W]`` in [-1, 1]."""
    import torch

    if isinstance(frames, (list, tuple)):
        frames = np.stack(frames)
    if isinstance(frames, np.ndarray):
        frames = torch.from_numpy(np.ascontiguousarray(frames))
    return frames.movedim(-1, -3).float() / 127.5 - 1.0


def signed_to_uint8(pixels: torch.Tensor) -> np.ndarray:
    """float ``[..., 3, H, W]`` in [-1, 1] -> uint8 numpy ``[..., H, W, 3]`` (clamped, official rounding)."""
    import torch

    array = ((pixels.float().clamp(-1, 1) / 2 + 0.5) * 255).round().to(torch.uint8)
    return array.movedim(-3, -1).cpu().numpy()


def to_unit(frames: np.ndarray) -> np.ndarray:
    """uint8 frames -> float64 in [0, 1]; float input is taken as already in [0, 1]."""
    if frames.dtype == np.uint8:
        return frames.astype(np.float64) / 255.0
    return frames.astype(np.float64, copy=False)


def unit_to_uint8(frames: np.ndarray) -> np.ndarray:
    """float frames in [0, 1] -> uint8 (clamped, rounded half to even)."""
    return np.clip(np.rint(np.asarray(frames, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)


def psnr(mse: float | np.ndarray, peak: float = 255.0) -> float | np.ndarray:
    """PSNR in dB for a mean squared error on data whose largest value is ``peak``; inf where ``mse`` is 0.

    Callers that average PSNRs over frames cap it at ``PSNR_CAP_DB`` (``m3ddm.evaluation.metrics.psnr_from_mse``)."""
    value = np.asarray(mse, dtype=np.float64)
    with np.errstate(divide="ignore"):
        result = 10.0 * np.log10(peak**2 / value)
    return float(result) if result.ndim == 0 else result

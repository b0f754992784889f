"""Classical outpainting baselines and the method registry used by ``m3ddm evaluate``.

Every method has the signature ``method(frames, pad_px, fps) -> frames``: ``frames`` is uint8
``[F, h, w, 3]`` (the cropped, known video), ``pad_px`` is ``(left, top, right, bottom)`` in pixels and the
result is uint8 ``[F, h + top + bottom, w + left + right, 3]`` with the known pixels unchanged.

* ``replicate``: repeat the edge pixels outward.
* ``reflect``: mirror the frame at its edges (without repeating the edge pixel).
* ``telea``: per-frame OpenCV TELEA inpainting (radius 5) of a black canvas -- the official M3DDM
  driver's pre-fill.
* ``propagate``: a classical flow-style baseline in the spirit of Dehan et al. (CVPR-W 2022, the paper's
  flow-based baseline): the global motion between consecutive frames is estimated as a homography (ORB
  matches + RANSAC, falling back to dense Farneback flow), chained over time, and each frame's border is
  filled with pixels of other frames warped into it, nearest frame in time first; what no frame ever saw
  is inpainted with TELEA.
* ``m3ddm[:MODEL_DIR]``: the M3DDM pipeline (``M3DDMPipeline.from_pretrained(MODEL_DIR)``; without a
  folder, the shipped default model).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from m3ddm.errors import UserError
from m3ddm.propagation import propagate_border

PadPx = tuple[int, int, int, int]
Method = Callable[[np.ndarray, PadPx, float], np.ndarray]
TELEA_RADIUS = 5
CLASSICAL = ("replicate", "reflect", "telea", "propagate")


def _check(frames: np.ndarray, pad_px: Sequence[int]) -> PadPx:
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames [F, h, w, 3], got {frames.dtype} {frames.shape}")
    pads = tuple(int(p) for p in pad_px)
    if len(pads) != 4 or min(pads) < 0:
        raise ValueError(f"pad_px must be four non-negative pixel counts, got {pad_px}")
    return pads  # type: ignore[return-value]


def _np_pad(frames: np.ndarray, pads: PadPx, mode: str) -> np.ndarray:
    left, top, right, bottom = pads
    return np.pad(frames, ((0, 0), (top, bottom), (left, right), (0, 0)), mode=mode)


def replicate(frames: np.ndarray, pad_px: Sequence[int], fps: float = 24.0) -> np.ndarray:
    """Extend each frame by repeating its edge pixels."""
    return _np_pad(frames, _check(frames, pad_px), "edge")


def reflect(frames: np.ndarray, pad_px: Sequence[int], fps: float = 24.0) -> np.ndarray:
    """Extend each frame by mirroring it at its edges (numpy 'reflect': the edge pixel is not repeated)."""
    return _np_pad(frames, _check(frames, pad_px), "reflect")


def _canvas(frame: np.ndarray, pads: PadPx) -> tuple[np.ndarray, np.ndarray]:
    """Black canvas with ``frame`` placed in it and the mask (uint8, 1 = border) of what to fill."""
    left, top, right, bottom = pads
    h, w = frame.shape[:2]
    canvas = np.zeros((h + top + bottom, w + left + right, 3), dtype=np.uint8)
    canvas[top : top + h, left : left + w] = frame
    mask = np.ones(canvas.shape[:2], dtype=np.uint8)
    mask[top : top + h, left : left + w] = 0
    return canvas, mask


def _inpaint(canvas: np.ndarray, mask: np.ndarray) -> np.ndarray:
    if not mask.any():
        return canvas
    return cv2.inpaint(canvas, mask.astype(np.uint8), TELEA_RADIUS, cv2.INPAINT_TELEA)


def telea(frames: np.ndarray, pad_px: Sequence[int], fps: float = 24.0) -> np.ndarray:
    """Per-frame TELEA inpainting (radius 5) of the border of a black canvas."""
    pads = _check(frames, pad_px)
    return np.stack([_inpaint(*_canvas(frame, pads)) for frame in frames])


def propagate(frames: np.ndarray, pad_px: Sequence[int], fps: float = 24.0) -> np.ndarray:
    """Fill each frame's border from other frames aligned by global motion, nearest in time first, the rest by
    TELEA (``m3ddm.propagation``)."""
    return propagate_border(frames, _check(frames, pad_px))


# ---------------------------------------------------------------------------------------------- registry


BASELINES: dict[str, Method] = {
    "replicate": replicate,
    "reflect": reflect,
    "telea": telea,
    "propagate": propagate,
}


class M3DDMMethod:
    """Adapter for the M3DDM pipeline; the model is loaded on first use and kept.

    ``model_dir`` None means the shipped default model. The pipeline's own ``load`` is used when it has one
    (it knows the default model and the official two-folder layout), else ``from_pretrained``.
    """

    def __init__(
        self,
        model_dir: str | None,
        seed: int = 0,
        options: dict[str, Any] | None = None,
        device: str | None = None,
    ) -> None:
        self.model_dir = model_dir
        self.seed = seed
        self.options = dict(options or {})
        self.device = device
        self._pipe = None

    def _pipeline(self):  # noqa: ANN202 - the pipeline type lives in another module
        if self._pipe is None:
            from m3ddm.pipeline import M3DDMPipeline

            pipe = M3DDMPipeline.load(self.model_dir) if self.model_dir else M3DDMPipeline.load()
            self._pipe = pipe.to(self.device) if self.device else pipe
        return self._pipe

    def __call__(self, frames: np.ndarray, pad_px: Sequence[int], fps: float = 24.0) -> np.ndarray:
        pads = _check(frames, pad_px)
        out = self._pipeline().outpaint_array(frames, fps=fps, pad_px=pads, seed=self.seed, **self.options)
        return np.asarray(out)


def resolve_method(
    spec: str, *, seed: int = 0, options: dict[str, Any] | None = None, device: str | None = None
) -> tuple[str, Method]:
    """``"telea"`` / ``"propagate"`` / ... or ``"m3ddm[:MODEL_DIR]"`` -> (display name, callable)."""
    spec = spec.strip()
    if spec in BASELINES:
        return spec, BASELINES[spec]
    if spec == "m3ddm" or spec.startswith("m3ddm:"):
        model_dir = spec.partition(":")[2] or None
        if model_dir is not None and not Path(model_dir).exists():
            raise UserError(f"model folder not found for method {spec!r}: {model_dir}")
        return spec, M3DDMMethod(model_dir, seed=seed, options=options, device=device)
    raise UserError(f"unknown method {spec!r}; use one of {', '.join(CLASSICAL)}, m3ddm or m3ddm:MODEL_DIR")

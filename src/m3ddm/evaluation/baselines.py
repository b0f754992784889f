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

PadPx = tuple[int, int, int, int]
Method = Callable[[np.ndarray, PadPx, float], np.ndarray]
TELEA_RADIUS = 5
# Propagation accepts a motion or a warped source only if it agrees with the target where they overlap
# (mean absolute difference in uint8 units): misalignments and other shots are rejected.
MAX_OVERLAP_ERROR = 24.0
MIN_OVERLAP_PIXELS = 64
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


# ------------------------------------------------------------------------------------------- propagation


def _gray(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def _plausible(matrix: np.ndarray | None, width: int, height: int) -> bool:
    """Reject homographies that fold, flip, or move the frame by more than half its size."""
    if matrix is None or not np.all(np.isfinite(matrix)) or abs(matrix[2, 2]) < 1e-8:
        return False
    matrix = matrix / matrix[2, 2]
    det = np.linalg.det(matrix[:2, :2])
    if not 0.5 < det < 2.0:
        return False
    corners = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float64)
    moved = cv2.perspectiveTransform(corners[None], matrix)[0]
    return bool(np.abs(moved - corners).max() < 0.5 * max(width, height))


def _orb_homography(a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    h, w = a.shape
    edge = max(4, min(31, min(h, w) // 8))
    orb = cv2.ORB_create(nfeatures=1500, edgeThreshold=edge, patchSize=edge)
    ka, da = orb.detectAndCompute(a, None)
    kb, db = orb.detectAndCompute(b, None)
    if da is None or db is None or len(ka) < 8 or len(kb) < 8:
        return None
    matches = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(da, db)
    if len(matches) < 8:
        return None
    src = np.float32([ka[m.queryIdx].pt for m in matches])
    dst = np.float32([kb[m.trainIdx].pt for m in matches])
    matrix, inliers = cv2.findHomography(src, dst, cv2.RANSAC, 3.0)
    if matrix is None or inliers is None or inliers.sum() < max(12, 0.3 * len(matches)):
        return None
    return matrix


def _flow_homography(a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    flow = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 4, 21, 3, 5, 1.2, 0)
    h, w = a.shape
    step = max(4, min(h, w) // 24)
    ys, xs = np.mgrid[step // 2 : h : step, step // 2 : w : step]
    src = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)
    dst = src + flow[ys.ravel(), xs.ravel()]
    if len(src) < 8:
        return None
    matrix, _ = cv2.findHomography(src, dst, cv2.RANSAC, 2.0)
    return matrix


def estimate_motion(a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """Homography (3x3) taking pixel coordinates of frame ``a`` to frame ``b``; None when no reliable one is
    found (typically a scene cut), which stops propagation between the two frames."""
    ga, gb = _gray(a), _gray(b)
    h, w = ga.shape
    for estimator in (_orb_homography, _flow_homography):
        matrix = estimator(ga, gb)
        if _plausible(matrix, w, h) and _aligns(ga, gb, matrix):
            return matrix / matrix[2, 2]
    return None


def _aligns(a: np.ndarray, b: np.ndarray, matrix: np.ndarray) -> bool:
    """Whether ``a`` warped by ``matrix`` matches ``b`` on their overlap (grey levels, uint8 units)."""
    h, w = a.shape
    warped = cv2.warpPerspective(a, matrix, (w, h), flags=cv2.INTER_LINEAR)
    seen = cv2.warpPerspective(np.full_like(a, 255), matrix, (w, h), flags=cv2.INTER_NEAREST)
    overlap = cv2.erode(seen, np.ones((3, 3), np.uint8)) > 0
    if overlap.sum() < 0.25 * h * w:
        return False
    return float(np.abs(warped[overlap].astype(np.float32) - b[overlap]).mean()) <= MAX_OVERLAP_ERROR


def chain_to_first(motions: Sequence[np.ndarray | None]) -> tuple[list[np.ndarray], list[int]]:
    """From motions t -> t+1: each frame's map to the first frame of its segment, and its segment id.

    A missing motion (None) starts a new segment: frames of different segments are never mixed.
    """
    to_first, segments = [np.eye(3)], [0]
    for motion in motions:
        if motion is None:
            to_first.append(np.eye(3))
            segments.append(segments[-1] + 1)
        else:
            to_first.append(to_first[-1] @ np.linalg.inv(motion))
            segments.append(segments[-1])
    return to_first, segments


def _covers(matrix: np.ndarray, width: int, height: int, box: tuple[int, int, int, int]) -> bool:
    """Whether the source frame (``width`` x ``height``) mapped by ``matrix`` can overlap ``box``."""
    corners = np.array([[[0, 0], [width, 0], [width, height], [0, height]]], dtype=np.float64)
    quad = cv2.perspectiveTransform(corners, matrix)[0]
    x0, y0, x1, y1 = box
    return not (quad[:, 0].max() < x0 or quad[:, 0].min() > x1 or quad[:, 1].max() < y0 or quad[:, 1].min() > y1)


def propagate(
    frames: np.ndarray, pad_px: Sequence[int], fps: float = 24.0, *, max_distance: int | None = None
) -> np.ndarray:
    """Fill each frame's border from other frames aligned by global motion, nearest in time first.

    Sources come only from the same shot (unbroken chain of motions) and must agree with the canvas where
    they overlap it; ``max_distance`` limits how many frames away a source may be (None: any frame).
    """
    pads = _check(frames, pad_px)
    left, top, _, _ = pads
    num, h, w = frames.shape[:3]
    to_first, segment = chain_to_first([estimate_motion(frames[t], frames[t + 1]) for t in range(num - 1)])
    offset = np.array([[1, 0, left], [0, 1, top], [0, 0, 1]], dtype=np.float64)
    ones = np.full((h, w), 255, dtype=np.uint8)
    kernel = np.ones((3, 3), dtype=np.uint8)
    out = []
    for t in range(num):
        canvas, hole = _canvas(frames[t], pads)
        size = (canvas.shape[1], canvas.shape[0])
        from_first = np.linalg.inv(to_first[t])
        same_shot = [s for s in range(num) if s != t and segment[s] == segment[t]]
        for s in sorted(same_shot, key=lambda s: (abs(s - t), s)):
            if not hole.any() or (max_distance is not None and abs(s - t) > max_distance):
                break
            ys, xs = np.nonzero(hole)
            matrix = offset @ from_first @ to_first[s]  # frame s pixels -> canvas of frame t
            if not _covers(matrix, w, h, (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)):
                continue
            warped = cv2.warpPerspective(frames[s], matrix, size, flags=cv2.INTER_LINEAR)
            seen = cv2.erode(cv2.warpPerspective(ones, matrix, size, flags=cv2.INTER_NEAREST), kernel) > 0
            overlap = seen & (hole == 0)  # eroded above: no black bleeding from the warped edge
            if overlap.sum() < MIN_OVERLAP_PIXELS:
                continue
            error = np.abs(warped[overlap].astype(np.float32) - canvas[overlap].astype(np.float32)).mean()
            if error > MAX_OVERLAP_ERROR:
                continue
            take = seen & (hole > 0)
            canvas[take] = warped[take]
            hole[take] = 0
        out.append(_inpaint(canvas, hole))
    return np.stack(out)


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

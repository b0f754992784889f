"""Temporal consistency of a generated video: flow warping error and flicker.

* Warping error (after Lai et al., 2018): for each pair of consecutive frames, the backward optical flow
  t -> t-1 is estimated with OpenCV's Farneback method **on the ground truth** (the true motion of the
  scene, so a method cannot look consistent by freezing its border), the predicted frame t-1 is warped to
  t with it, and the squared difference to the predicted frame t is averaged over the pixels of the region
  that are visible in both frames (forward-backward flow consistency check) and whose source lies inside
  the frame. Values in [0, 1] units squared; lower is more consistent.
* Flicker: mean absolute difference between consecutive predicted frames over the region, in [0, 1]
  units; no motion compensation, so it also counts true motion -- compare it with the ground truth's.

Both are averaged over the frame pairs of a video (pairs with no valid pixel are skipped).
"""

from __future__ import annotations

import cv2
import numpy as np

from m3ddm.utils.pixels import to_unit, unit_to_uint8

FLOW_ESTIMATED_ON = "ground truth"
# Farneback settings: pyramid scale 0.5, 3 levels, window 15, 3 iterations, poly_n 5, poly_sigma 1.2.
_FARNEBACK = dict(pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0)


def _gray(frame: np.ndarray) -> np.ndarray:
    if frame.dtype != np.uint8:
        frame = unit_to_uint8(frame)
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def farneback_flow(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Flow ``[H, W, 2]`` (dx, dy) with ``source(p) ~ target(p + flow(p))`` for RGB frames."""
    return cv2.calcOpticalFlowFarneback(_gray(source), _gray(target), None, **_FARNEBACK)


def _sample_grid(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, w = flow.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return xs + flow[..., 0], ys + flow[..., 1]


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Backward-warp ``image`` with ``flow``: ``out(p) = image(p + flow(p))`` (bilinear)."""
    map_x, map_y = _sample_grid(flow)
    image = image.astype(np.float32)
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def valid_warp_mask(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """Pixels whose backward flow lands inside the frame and agrees with the forward flow there."""
    h, w = backward.shape[:2]
    map_x, map_y = _sample_grid(backward)
    inside = (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)
    forward_at_target = cv2.remap(forward, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    round_trip = backward + forward_at_target
    # Sundaram et al.'s occlusion test: |f_b + f_f(p + f_b)|^2 < 0.01 (|f_b|^2 + |f_f|^2) + 0.5
    tolerance = 0.01 * ((backward**2).sum(-1) + (forward_at_target**2).sum(-1)) + 0.5
    return inside & ((round_trip**2).sum(-1) < tolerance)


def temporal_scores(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> dict[str, dict[str, float]]:
    """Warping error and flicker of ``pred`` (``[F, H, W, 3]``) on the full frame and over ``mask``.

    The flow comes from ``gt``. Values are NaN when there is no frame pair (or no valid pixel at all).
    """
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ")
    sums: dict[str, list[float]] = {"full_w": [], "full_f": [], "region_w": [], "region_f": []}
    for t in range(1, len(pred)):
        backward = farneback_flow(gt[t], gt[t - 1])
        forward = farneback_flow(gt[t - 1], gt[t])
        current, previous = to_unit(pred[t]), to_unit(pred[t - 1])
        diff = np.abs(current - previous)
        sums["full_f"].append(float(diff.mean()))
        sums["region_f"].append(float(diff[mask].mean()))
        valid = valid_warp_mask(backward, forward)
        squared = (current - warp(previous, backward)) ** 2
        if valid.any():
            sums["full_w"].append(float(squared[valid].mean()))
        if (valid & mask).any():
            sums["region_w"].append(float(squared[valid & mask].mean()))

    def avg(values: list[float]) -> float:
        return float(np.mean(values)) if values else float("nan")

    return {
        scope: {"warp_error": avg(sums[f"{scope}_w"]), "flicker": avg(sums[f"{scope}_f"])}
        for scope in ("full", "region")
    }

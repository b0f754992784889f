"""Temporal consistency: warping error with Farneback flow on the ground truth, and flicker."""

from __future__ import annotations

import numpy as np
import pytest

from m3ddm.evaluation.metrics import region_mask
from m3ddm.evaluation.temporal import farneback_flow, temporal_scores, warp


def test_flow_recovers_a_pan_and_warping_aligns_frames(pan_video) -> None:
    a, b = pan_video[1], pan_video[0]
    flow = farneback_flow(a, b)  # a(p) ~ b(p + flow): the camera moved right, so content came from the left
    inner = flow[16:-16, 16:-16]
    assert np.median(inner[..., 0]) == pytest.approx(3.0, abs=0.3)
    assert np.median(inner[..., 1]) == pytest.approx(0.0, abs=0.3)
    warped = warp(b.astype(np.float32) / 255, flow)
    before = np.abs(a / 255 - b / 255)[16:-16, 16:-16].mean()
    after = np.abs(a / 255 - warped)[16:-16, 16:-16].mean()
    assert after < 0.3 * before


def test_ground_truth_is_consistent_and_flicker_is_detected(pan_video) -> None:
    gt = pan_video[:8]
    mask = region_mask(gt.shape[1], gt.shape[2], (12, 0, 12, 0))
    clean = temporal_scores(gt, gt, mask)
    flickering = gt.copy()
    flickering[1::2][:, mask] = (flickering[1::2][:, mask] * 0.6).astype(np.uint8)  # border blinks
    bad = temporal_scores(flickering, gt, mask)
    assert clean["region"]["warp_error"] < 0.2 * bad["region"]["warp_error"]
    assert bad["region"]["flicker"] > clean["region"]["flicker"] + 0.05
    # The known area did not change, so the full-frame effect is diluted, not absent.
    assert clean["full"]["warp_error"] < bad["full"]["warp_error"] < bad["region"]["warp_error"]


def test_static_video_has_no_flicker_and_region_ignores_known_changes(pan_video) -> None:
    still = np.repeat(pan_video[:1], 5, axis=0)
    mask = region_mask(still.shape[1], still.shape[2], (0, 10, 0, 10))
    scores = temporal_scores(still, still, mask)
    assert scores["region"]["flicker"] == 0 and scores["region"]["warp_error"] < 1e-5
    changed = still.copy()
    changed[2:, 10:-10] = 255 - changed[2:, 10:-10]  # only the known rows change
    after = temporal_scores(changed, still, mask)
    assert after["region"] == pytest.approx(scores["region"], abs=1e-8)
    assert after["full"]["flicker"] > 0


def test_single_frame_gives_nan() -> None:
    frame = np.zeros((1, 16, 16, 3), np.uint8)
    scores = temporal_scores(frame, frame, region_mask(16, 16, (4, 0, 4, 0)))
    assert np.isnan(scores["full"]["warp_error"]) and np.isnan(scores["region"]["flicker"])

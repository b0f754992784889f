"""The protocol's pieces: crop geometry, dataset layouts, scoring and the summary (FVD wiring)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from m3ddm.errors import UserError
from m3ddm.evaluation import protocol
from m3ddm.evaluation.protocol import (
    crop_known,
    crop_pads,
    discover_clips,
    load_clip,
    paint_known,
    parse_ratios,
    score_video,
)


def test_crop_pads_follow_the_paper_convention() -> None:
    assert crop_pads(480, 854, 0.25) == (107, 0, 107, 0)  # 213.5 -> 214 px removed in total
    assert crop_pads(480, 854, 0.666) == (284, 0, 285, 0)  # odd pixel on the right
    assert crop_pads(480, 854, 0.5, "vertical") == (0, 120, 0, 120)
    assert crop_pads(100, 200, 0.5, "all") == (50, 25, 50, 25)
    assert crop_pads(100, 200, 0.25, "left") == (50, 0, 0, 0)
    assert crop_pads(100, 200, 0.25, "bottom") == (0, 0, 0, 25)
    with pytest.raises(UserError):
        crop_pads(100, 200, 1.0)
    with pytest.raises(UserError, match="removes no pixel"):
        crop_pads(4, 4, 0.1)
    with pytest.raises(UserError, match="unknown direction"):
        crop_pads(100, 200, 0.25, "diagonal")
    assert parse_ratios("0.25,0.666") == [0.25, 0.666]
    with pytest.raises(UserError):
        parse_ratios("0.25,1.5")


def test_dataset_layouts(tmp_path: Path, make_clip, frames_to_folder) -> None:
    from m3ddm.io import write_video

    clip = make_clip(0, num_frames=4, size=32)
    videos = tmp_path / "videos"
    videos.mkdir()
    write_video(videos / "b.mp4", clip, 24)
    write_video(videos / "a.mp4", clip, 24)
    (videos / "notes.txt").write_text("not a video")
    assert [c.name for c in discover_clips(videos)] == ["a", "b"]

    davis = tmp_path / "DAVIS"
    for name in ("bear", "camel"):
        frames_to_folder(davis / "JPEGImages" / "480p" / name, clip)
    assert [c.name for c in discover_clips(davis)] == ["bear", "camel"]

    ytvos = tmp_path / "youtube-vos"
    frames_to_folder(ytvos / "valid" / "JPEGImages" / "0a49f5265b", clip)
    found = discover_clips(ytvos)
    assert [c.name for c in found] == ["0a49f5265b"]
    frames, fps = load_clip(found[0], max_frames=3, size=16)
    assert frames.shape == (3, 16, 16, 3) and fps == 24.0

    single = frames_to_folder(tmp_path / "one_sequence", clip)
    assert [c.path for c in discover_clips(single)] == [single]
    (tmp_path / "nothing").mkdir()
    with pytest.raises(UserError, match="no videos"):
        discover_clips(tmp_path / "nothing")
    with pytest.raises(UserError, match="not found"):
        discover_clips(tmp_path / "missing")


def test_score_video_reports_both_scopes(pan_video) -> None:
    gt = pan_video[:4]
    pads = crop_pads(gt.shape[1], gt.shape[2], 0.25)
    scores = score_video(gt, gt, pads)
    assert scores["frames"] == 4
    for scope in ("full", "region"):
        assert scores[scope]["mse"] == 0 and scores[scope]["ssim"] == pytest.approx(1.0)
        assert set(scores[scope]) == {"mse", "psnr", "ssim", "detail", "warp_error", "flicker"}
    assert len(scores["per_frame"]["region"]["psnr"]) == 4
    with pytest.raises(UserError, match="differ"):
        score_video(gt[:3], gt, pads)
    with pytest.raises(UserError, match="no generated region"):
        score_video(gt, gt, (0, 0, 0, 0))


def test_region_fvd_input_hides_the_known_rectangle(pan_video) -> None:
    gt = pan_video[:2]
    pads = (10, 0, 12, 0)
    painted = paint_known(gt, pads)
    assert np.all(painted[:, :, 10:-12] == 128)
    assert np.array_equal(painted[:, :, :10], gt[:, :, :10]) and np.array_equal(
        crop_known(gt, pads).shape, (2, 96, 74, 3)
    )


class _MeanColourFeatures:
    """A stand-in for I3D (cheap): per-video mean colour and its spread, so FVD wiring can be tested."""

    available = True
    reason = None
    weights = "fake"

    def __init__(self, *args, **kwargs) -> None:
        self.calls = 0

    def __call__(self, videos):
        self.calls += 1
        return np.stack([np.r_[v.mean(axis=(0, 1, 2)), v.std(axis=(0, 1, 2))] for v in videos]).astype(np.float64)


def test_fvd_wiring_with_a_stand_in_extractor(tmp_path: Path, make_clip, frames_to_folder, monkeypatch) -> None:
    monkeypatch.setattr(protocol, "I3DFeatures", _MeanColourFeatures)
    for i in range(3):
        frames_to_folder(tmp_path / "data" / f"clip{i}", make_clip(i, num_frames=5, size=32))
    config = protocol.EvalConfig(
        data=tmp_path / "data",
        out=tmp_path / "out",
        methods=["replicate", "telea"],
        ratios=[0.25, 0.5],
        visuals=False,
    )
    results = protocol.run_evaluation(config)
    rows = {(r["method"], r["ratio"], r["scope"]): r for r in results["summary"]}
    assert len(rows) == 2 * 3 * 2  # methods x (2 ratios + all) x scopes
    for row in rows.values():
        assert isinstance(row["fvd"], float) and row["fvd"] >= 0 and row["clips"] in (3, 6)
        assert row["lpips"].startswith("n/a (no weights")
    # Mean colour barely moves for a narrow border: a wider cut must be at least as far from the truth.
    assert rows[("replicate", "0.5", "full")]["fvd"] > rows[("replicate", "0.25", "full")]["fvd"]
    assert rows[("replicate", "all", "region")]["clips"] == 6
    assert len(results["clips"]) == 3 * 2 * 2

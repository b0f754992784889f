"""`m3ddm score PRED GT --border L,T,R,B`: JSON shape, values, and one clear error (exit 2) for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from m3ddm.cli import main


@pytest.fixture()
def pair(tmp_path: Path, make_clip, frames_to_folder) -> tuple[Path, Path, np.ndarray]:
    gt = make_clip(0, num_frames=6, size=48)
    pred = gt.copy()
    pred[:, :, :6] = 0  # a wrong 6-px left border (0.125 of the width)
    pred[:, :, -6:] = gt[:, :, -6:] // 2  # and a darker right border
    return frames_to_folder(tmp_path / "pred", pred), frames_to_folder(tmp_path / "gt", gt), gt


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["score", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_shape_and_values(pair, capsys) -> None:
    pred, gt, frames = pair
    code, out, err = _run(capsys, pred, gt, "--border", "0.125,0,0.125,0", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert set(result) >= {"full", "region", "frames"}
    assert result["frames"] == len(frames)
    assert result["pad_px"] == [6, 0, 6, 0]
    for scope in ("full", "region"):
        assert set(result[scope]) == {"mse", "psnr", "ssim", "detail", "warp_error", "flicker"}
    # Only the border is wrong, so the region is scored worse than the whole frame.
    assert result["region"]["mse"] == pytest.approx(result["full"]["mse"] * 4, rel=1e-6)  # region = 1/4 of it
    assert result["region"]["psnr"] < result["full"]["psnr"]
    assert result["region"]["ssim"] < result["full"]["ssim"] < 1
    assert "lpips" in result["unavailable"] and "fvd" in result["unavailable"]


def test_identical_videos_score_perfectly(pair, capsys) -> None:
    _, gt, _ = pair
    code, out, _ = _run(capsys, gt, gt, "--border", "0.125,0,0.125,0", "--json")
    result = json.loads(out)
    assert code == 0
    assert result["region"]["mse"] == 0 and result["region"]["psnr"] == 100.0
    assert result["region"]["ssim"] == pytest.approx(1.0)


def test_video_files_and_lpips_weights(tmp_path: Path, make_clip, capsys) -> None:
    from safetensors.torch import save_file

    from m3ddm.evaluation.lpips import LPIPS
    from m3ddm.io import write_video

    gt = make_clip(1, num_frames=5, size=48)
    write_video(tmp_path / "gt.mp4", gt, 24)
    write_video(tmp_path / "pred.mp4", np.ascontiguousarray(gt[:, :, ::-1]), 24)
    weights = tmp_path / "lpips.safetensors"
    save_file(_positive_heads(LPIPS().state_dict()), str(weights))
    code, out, err = _run(
        capsys, tmp_path / "pred.mp4", tmp_path / "gt.mp4", "--border", "0,0.25,0,0", "--json",
        "--lpips-weights", weights,
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["pad_px"] == [0, 12, 0, 0] and result["frames"] == 5
    assert result["region"]["lpips"] > 0 and "lpips" not in result["unavailable"]
    code, out, _ = _run(capsys, tmp_path / "pred.mp4", tmp_path / "gt.mp4", "--border", "0,0.25,0,0")
    assert code == 0 and "region" in out and "psnr" in out  # the human-readable table


def test_bad_input_is_one_clear_error(tmp_path: Path, pair, make_clip, frames_to_folder, capsys) -> None:
    pred, gt, frames = pair
    shorter = frames_to_folder(tmp_path / "short", frames[:4])
    smaller = frames_to_folder(tmp_path / "small", frames[:, :40, :40])
    empty = tmp_path / "empty"
    empty.mkdir()
    garbage = tmp_path / "broken.mp4"
    garbage.write_bytes(b"\x00\x01not a video" * 50)
    cases = {
        "frames but ground truth has": (shorter, gt, "0.125,0,0.125,0"),
        "is 40x40 but ground truth is 48x48": (smaller, gt, "0.125,0,0.125,0"),
        "no images": (empty, gt, "0.125,0,0.125,0"),
        "broken.mp4": (garbage, gt, "0.125,0,0.125,0"),
        "not found": (tmp_path / "missing.mp4", gt, "0.125,0,0.125,0"),
        "leaves no generated region": (pred, gt, "0,0,0,0"),
        "leaves no known region": (pred, gt, "0.5,0,0.5,0"),
        "pixel values must be whole numbers": (pred, gt, "1.5,0,0,0"),
        "mixes fractions": (pred, gt, "0.1,0,6,0"),
        "zero or positive": (pred, gt, "-0.1,0,0,0"),
        "four numbers": (pred, gt, "0.1,0.1"),
        "cannot read the border": (pred, gt, "left,0,0,0"),
    }
    for expected, (p, g, pad) in cases.items():
        code, out, err = _run(capsys, p, g, f"--border={pad}", "--json")
        assert code == 2, (expected, err)
        assert out == ""
        assert err.startswith("m3ddm score: error:") and expected in err, (expected, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def _positive_heads(state: dict) -> dict:
    """Random weights with lpips' non-negative heads, so distances are positive as with the real ones."""
    return {k: (v.abs() if k.startswith("lin") else v) for k, v in state.items()}


def test_the_old_pad_flag_still_reads_the_output_border(pair, capsys) -> None:
    pred, gt, _ = pair
    _, new, _ = _run(capsys, pred, gt, "--border", "0.125,0,0.125,0", "--json")
    _, old, _ = _run(capsys, pred, gt, "--pad", "0.125,0,0.125,0", "--json")
    assert json.loads(old) == json.loads(new)
    with pytest.raises(SystemExit) as stop:  # argparse's own one-line usage error
        _run(capsys, pred, gt, "--pad", "0.125,0,0.125,0", "--border", "0.125,0,0.125,0")
    assert stop.value.code == 2 and "not allowed with" in capsys.readouterr().err

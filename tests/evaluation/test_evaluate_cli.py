"""`m3ddm evaluate` end to end on a tiny synthetic set with every baseline."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from m3ddm.cli import main

BASELINES = ("replicate", "reflect", "telea", "propagate")


@pytest.fixture()
def dataset(tmp_path: Path, make_clip) -> Path:
    from m3ddm.io import write_video

    folder = tmp_path / "data"
    folder.mkdir()
    for i in range(2):
        write_video(folder / f"clip{i}.mp4", make_clip(i, num_frames=8, size=48), 12)
    return folder


def test_every_baseline_end_to_end(dataset: Path, tmp_path: Path, capsys) -> None:
    from m3ddm.io import open_video_source

    out = tmp_path / "report"
    argv = ["evaluate", "--data", str(dataset), "--ratio", "0.25,0.5", "--max-frames", "6", "--no-fvd"]
    argv += [arg for name in BASELINES for arg in ("--method", name)]
    argv += ["--lpips-weights", str(tmp_path / "no-such-weights.pth"), "--out", str(out)]
    code = main(argv)
    stdout, stderr = capsys.readouterr()
    assert code == 0, stderr
    assert stdout.strip() == str(out / "report.md")

    report = (out / "report.md").read_text()
    assert "| Method |" in report and "PSNR ↑ (0.25)" in report and "FVD ↓ (all)" in report
    assert "Detail (1 = truth) (0.25)" in report and "detail ratio" in report
    for name in BASELINES:
        assert f"| {name} |" in report
    assert f"n/a (no weights at {tmp_path / 'no-such-weights.pth'})" in report  # under the tables
    assert "| n/a* |" in report
    assert "averaging" in report and "Farneback" in report  # the protocol is stated

    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == len(BASELINES) * 3 * 2  # methods x (two ratios + all) x (full, region)
    assert {r["scope"] for r in rows} == {"full", "region"} and {r["ratio"] for r in rows} == {"0.25", "0.5", "all"}

    results = json.loads((out / "results.json").read_text())
    assert results["config"]["methods"] == list(BASELINES)
    assert len(results["clips"]) == 2 * 2 * len(BASELINES)
    by_key = {(r["method"], r["ratio"], r["scope"]): r for r in results["summary"]}
    for name in BASELINES:
        region, full = by_key[(name, "0.25", "region")], by_key[(name, "0.25", "full")]
        assert 0 < region["mse"] and region["psnr"] < full["psnr"] and 0 < region["ssim"] < 1
        assert region["fvd"] == "n/a (FVD disabled)" and region["lpips"].startswith("n/a (no weights at")
        assert region["warp_error"] >= 0 and region["flicker"] >= 0
        assert region["detail"] > 0 and full["detail"] > 0  # the border's fine detail over the truth's
        # More border to invent is harder.
        assert by_key[(name, "0.5", "region")]["mse"] > 0.5 * region["mse"]

    assert len(results["visuals"]) == 2 * 2
    for visual in results["visuals"]:
        video = open_video_source(out / visual["video"])
        assert video.info.num_frames == 6
        panels = len(BASELINES) + 2  # input | methods | ground truth, 2-px gaps between them
        assert video.info.width == panels * 48 + (panels - 1) * 2
        sheet = cv2.imread(str(out / visual["sheet"]))
        assert sheet is not None and sheet.shape[:2] == (3 * 48, panels * 48 + (panels - 1) * 2)
        red = (sheet[..., 2] > 200) & (sheet[..., 1] < 60) & (sheet[..., 0] < 60)
        assert red.any()  # the border line


def test_lpips_and_fvd_columns_with_weights(dataset: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    from safetensors.torch import save_file

    from m3ddm.evaluation import protocol
    from m3ddm.evaluation.lpips import LPIPS

    class FakeI3D:  # the real I3D is exercised in test_i3d.py; here only the columns matter
        available, reason, weights = True, None, "fake"

        def __init__(self, *args, **kwargs) -> None:
            pass

        def __call__(self, videos):
            return np.stack([v.reshape(-1, 3).mean(0) for v in videos]).astype(np.float64)

    monkeypatch.setattr(protocol, "I3DFeatures", FakeI3D)
    weights = tmp_path / "lpips.safetensors"
    save_file(_positive_heads(LPIPS().state_dict()), str(weights))
    out = tmp_path / "report"
    code = main(
        [
            "evaluate",
            "--data",
            str(dataset),
            "--method",
            "replicate",
            "--ratio",
            "0.25",
            "--max-frames",
            "4",
            "--lpips-weights",
            str(weights),
            "--no-visuals",
            "--out",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr().err
    summary = json.loads((out / "results.json").read_text())["summary"]
    assert len(summary) == 2
    for row in summary:
        assert isinstance(row["lpips"], float) and row["lpips"] > 0
        assert isinstance(row["fvd"], float) and row["fvd"] >= 0
    assert not (out / "clips").exists()


def test_bad_arguments_exit_with_code_2(dataset: Path, tmp_path: Path, capsys) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        (["--data", str(empty), "--method", "telea"], "no videos"),
        (["--data", str(dataset), "--method", "nearest"], "unknown method"),
        (["--data", str(dataset), "--method", "telea", "--ratio", "0.9,1.2"], "between 0 and 1"),
        (["--data", str(dataset), "--method", "m3ddm:/no/such/model"], "model folder not found"),
        (["--data", str(dataset), "--method", "telea", "--max-frames", "0"], "at least 1"),
    ]
    for args, expected in cases:
        code = main(["evaluate", *args, "--no-fvd", "--out", str(tmp_path / "out")])
        err = capsys.readouterr().err
        assert code == 2 and expected in err and "Traceback" not in err, (args, err)


@pytest.mark.skipif(importlib.util.find_spec("m3ddm.pipeline") is None, reason="m3ddm.pipeline not built yet")
def test_m3ddm_method_runs_through_the_pipeline(dataset: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    """The adapter is exercised with a stand-in pipeline (a trained model is too slow for unit tests)."""
    import m3ddm.pipeline

    class StandIn:
        @classmethod
        def load(cls, model_dir=None):
            return cls()

        def outpaint_array(self, frames, *, fps, pad_px, seed, **options):
            left, top, right, bottom = pad_px
            return np.pad(frames, ((0, 0), (top, bottom), (left, right), (0, 0)), mode="edge")

    monkeypatch.setattr(m3ddm.pipeline, "M3DDMPipeline", StandIn)
    out = tmp_path / "report"
    code = main(
        [
            "evaluate",
            "--data",
            str(dataset),
            "--method",
            f"m3ddm:{tmp_path}",
            "--ratio",
            "0.25",
            "--max-frames",
            "3",
            "--no-fvd",
            "--no-visuals",
            "--out",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert json.loads((out / "results.json").read_text())["config"]["methods"] == [f"m3ddm:{tmp_path}"]


def _positive_heads(state: dict) -> dict:
    """Random weights with lpips' non-negative heads, so distances are positive as with the real ones."""
    return {k: (v.abs() if k.startswith("lin") else v) for k, v in state.items()}

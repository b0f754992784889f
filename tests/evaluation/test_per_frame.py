"""Per-frame scores of `m3ddm evaluate`: per_frame_rows and the per_frame.csv the report writes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from m3ddm.cli import main
from m3ddm.evaluation.protocol import per_frame_rows, score_video


def test_per_frame_rows_flatten_every_scope_and_metric(pan_video: np.ndarray) -> None:
    gt = pan_video[:5]
    pred = gt.copy()
    pred[:, :, :12] = 0  # wrong left border
    scores = score_video(pred, gt, (12, 0, 12, 0))
    rows = per_frame_rows(scores["per_frame"], clip="c", ratio="0.25", method="zero")
    assert [r["frame"] for r in rows] == list(range(5))
    assert {r["clip"] for r in rows} == {"c"} and {r["method"] for r in rows} == {"zero"}
    assert set(rows[0]) >= {"full_mse", "full_psnr", "full_ssim", "region_mse", "region_psnr", "region_ssim"}
    assert np.mean([r["region_psnr"] for r in rows]) == pytest.approx(scores["region"]["psnr"])
    assert np.mean([r["full_mse"] for r in rows]) == pytest.approx(scores["full"]["mse"])


def test_per_frame_rows_refuse_ragged_lists() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        per_frame_rows({"region": {"mse": [0.1, 0.2], "psnr": [10.0]}}, clip="c", ratio="0.5", method="m")


def test_evaluate_writes_per_frame_csv(tmp_path: Path, make_clip, capsys) -> None:
    from m3ddm.io import write_video

    data = tmp_path / "data"
    data.mkdir()
    for i in range(2):
        write_video(data / f"clip{i}.mp4", make_clip(i, num_frames=6, size=32), 12)
    out = tmp_path / "report"
    argv = ["evaluate", "--data", str(data), "--ratio", "0.25,0.5", "--no-fvd", "--no-visuals"]
    argv += ["--method", "telea", "--method", "replicate", "--out", str(out)]
    assert main(argv) == 0, capsys.readouterr().err

    rows = list(csv.DictReader((out / "per_frame.csv").open()))
    assert len(rows) == 2 * 2 * 2 * 6  # clips x ratios x methods x frames
    assert rows[0]["clip"] == "clip0" and rows[0]["frame"] == "0"
    results = json.loads((out / "results.json").read_text())
    assert "per_frame" not in results  # per-video scores only; frames go to the CSV
    for record in results["clips"]:
        mine = [float(r["region_psnr"]) for r in rows if r["clip"] == record["clip"]
                and r["method"] == record["method"] and r["ratio"] == f"{record['ratio']:g}"]
        assert len(mine) == 6
        assert np.mean(mine) == pytest.approx(record["region"]["psnr"])

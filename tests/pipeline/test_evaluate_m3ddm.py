"""`m3ddm evaluate` with the real pipeline (tiny random model) beside the baselines."""

import json

from m3ddm.cli import main
from m3ddm.io import write_video
from m3ddm.training.synthetic import synthetic_video


def test_evaluate_runs_the_m3ddm_method_end_to_end(tiny_pipeline_dir, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    write_video(data / "clip.mp4", synthetic_video(0, seed=1, num_frames=6, height=48, width=48).frames, 12)
    out = tmp_path / "report"
    code = main(["evaluate", "--data", str(data), "--ratio", "0.25", "--max-frames", "6", "--no-fvd",
                 "--method", f"m3ddm:{tiny_pipeline_dir}", "--method", "telea", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    results = json.loads((out / "results.json").read_text())
    methods = {row["method"] for row in results["summary"]}
    assert any(m.startswith("m3ddm") for m in methods) and "telea" in methods
    for row in results["summary"]:
        assert row["psnr"] > 0 and 0 <= row["ssim"] <= 1
    assert (out / "report.md").is_file() and (out / "results.csv").is_file()
    assert results["visuals"]

"""`m3ddm bench schedulers` on a tiny random pipeline and two tiny clips (behaviour and keys, never timings)."""

import json
import math

import pytest
import torch

from m3ddm.benchmarks.models import tiny_pipeline
from m3ddm.benchmarks.schedulers import (
    COLUMNS,
    bench_schedulers,
    header_line,
    parse_configs,
    summary_lines,
    table_rows,
)
from m3ddm.benchmarks.table import format_table
from m3ddm.cli import main
from m3ddm.errors import UserError
from m3ddm.io import write_video
from m3ddm.sampling import Guidance, make_scheduler
from m3ddm.training.synthetic import synthetic_video

FRAMES = 6


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench-schedulers")
    pipe = tiny_pipeline(default_size=64, default_steps=2)  # random tiny UNet and codec
    pipe.save_pretrained(root / "model")
    data = root / "data"
    data.mkdir()
    for i in range(2):
        clip = synthetic_video(i, seed=i + 1, num_frames=FRAMES, height=48, width=64).frames
        write_video(data / f"clip{i}.mp4", clip, 12)
    return {"model": str(root / "model"), "data": str(data), "pipe": pipe}


@pytest.fixture(scope="module")
def report(setup):
    threads = torch.get_num_threads()
    result = bench_schedulers(setup["data"], model=setup["model"], configs="pndm:3,dpmpp:2", reference="pndm:3",
                              ratio=0.25, max_frames=FRAMES, threads=1)
    assert torch.get_num_threads() == threads  # --threads applied to the benchmark only
    return result


def timesteps(name: str, steps: int) -> int:
    scheduler = make_scheduler(name)
    scheduler.set_timesteps(steps)
    return len(scheduler.timesteps)


def test_reference_row(report):
    ref = report["reference"]
    assert ref["config"] == "pndm:3" and ref["is_reference"]
    assert math.isinf(ref["psnr_vs_reference_db"]) and ref["delta_psnr_db"] == 0.0
    assert ref["equal_quality"] and ref["wall_ratio"] == 1.0
    assert [r["config"] for r in report["configs"]] == ["pndm:3", "dpmpp:2"]
    assert report["configs"][0] is ref
    rows = table_rows(report)
    assert rows[0]["psnr_vs_ref_text"] == "ref"
    text = format_table(rows, COLUMNS)
    assert "ref" in text and "dpmpp:2" in text


def test_unet_calls_follow_steps_and_branches(report, setup):
    # 6 frames: one 16-frame window, so one UNet call per scheduler timestep (PNDM runs steps + 1 of them),
    # each call with one row per guidance branch.
    branches = len(Guidance().coefficients(setup["pipe"].unet.config.global_context))
    rows = {r["config"]: r for r in report["configs"]}
    for name, steps in (("pndm", 3), ("dpmpp", 2)):
        row = rows[f"{name}:{steps}"]
        assert len(row["per_clip"]) == 2
        for clip in row["per_clip"]:
            assert clip["frames"] == FRAMES
            assert clip["unet_calls"] == timesteps(name, steps)
            assert clip["unet_rows"] == timesteps(name, steps) * branches
        assert row["unet_calls_per_frame"] == pytest.approx(timesteps(name, steps) / FRAMES)
    assert rows["dpmpp:2"]["unet_calls_per_frame"] < rows["pndm:3"]["unet_calls_per_frame"]


def test_metrics_are_finite_and_compared_with_the_reference(report):
    ref, fast = report["reference"], report["configs"][1]
    for row in (ref, fast):
        for key in ("region_psnr", "region_ssim", "region_warp_error", "wall_s_per_frame"):
            assert math.isfinite(row[key]), key
        assert row["wall_s_per_frame"] > 0 and 0 <= row["region_ssim"] <= 1
    assert math.isfinite(fast["psnr_vs_reference_db"]) and fast["psnr_vs_reference_db"] > 0
    assert fast["delta_psnr_db"] == pytest.approx(fast["region_psnr"] - ref["region_psnr"])
    expected = (fast["region_psnr"] >= ref["region_psnr"] - 0.1
                and fast["region_warp_error"] <= ref["region_warp_error"] * 1.05)
    assert fast["equal_quality"] == expected
    assert report["summary"]["fewest_steps_equal_quality"] == ("dpmpp:2" if expected else None)
    header = report["header"]
    assert header["strength"] == 1.0 and (header["guidance_context"], header["guidance_global"]) == (2.0, 4.0)
    assert "strength 1" in header_line(report)
    assert summary_lines(report)[-1].startswith("fewest steps at equal quality:")


@pytest.mark.parametrize("configs", ["pndm", "foo:10", "dpmpp:0", "dpmpp:x", ",", "pndm:"])
def test_bad_configs_are_user_errors(configs):
    with pytest.raises(UserError):
        parse_configs(configs)


def test_bad_input_fails_before_any_run(setup, tmp_path):
    with pytest.raises(UserError, match="SCHEDULER:STEPS"):
        bench_schedulers(setup["data"], model=setup["model"], configs="pndm")
    with pytest.raises(UserError, match="data folder not found"):
        bench_schedulers(tmp_path / "missing", model=setup["model"], configs="dpmpp:1")
    with pytest.raises(UserError, match="--configs"):
        bench_schedulers(setup["data"], model=setup["model"], configs="dpmpp:1", options={"steps": 3})


def test_cli_json(setup, capsys):
    code = main(["bench", "schedulers", "--data", setup["data"], "--model", setup["model"], "--configs", "dpmpp:1",
                 "--reference", "ddim:2", "--max-frames", "4", "--threads", "1", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    out = json.loads(captured.out)
    assert out["reference"]["config"] == "ddim:2" and out["reference"]["psnr_vs_reference_db"] is None
    (row,) = out["configs"]
    assert row["config"] == "dpmpp:1" and row["unet_calls_per_frame"] == pytest.approx(1 / 4)
    assert set(out["header"]) >= {"strength", "guidance_context", "guidance_global", "noise_share"}


def test_cli_bad_configs_exit_code(setup, capsys):
    assert main(["bench", "schedulers", "--data", setup["data"], "--configs", "foo:10"]) == 2
    assert "unknown scheduler" in capsys.readouterr().err

"""The user's file, byte for byte, through the CLI: batching windows together and an interrupted run resumed with
``--resume`` give the same file as one uninterrupted window-by-window run (issue 13)."""

import pytest

from cli_runs import Crash, crash_in_process, run_cli
from m3ddm.geometry import Pad
from m3ddm.io.samples import make_test_video
from m3ddm.jobs import outpaint_file
from m3ddm.pipeline import M3DDMPipeline, OutpaintOptions


@pytest.mark.slow
def test_batched_and_resumed_runs_write_the_same_file(tiny_pipeline_dir, tmp_path):
    video = make_test_video(tmp_path / "in.mp4", frames=60, size=(64, 48), fps=24)
    common = [str(video), "--pad", "16,0,16,0", "--model", tiny_pipeline_dir, "--steps", "1", "--strides", "15,1",
              "--quiet", "--threads", "1"]
    single = run_cli("outpaint", *common, "--batch-windows", "1", "-o", str(tmp_path / "single.mp4"))
    assert single.returncode == 0, single.stderr
    batched = run_cli("outpaint", *common, "--batch-windows", "8", "-o", str(tmp_path / "batched.mp4"))
    assert batched.returncode == 0, batched.stderr
    expected = (tmp_path / "single.mp4").read_bytes()
    assert (tmp_path / "batched.mp4").read_bytes() == expected

    # a crash after the third window (its state saved), in this process at the CLI's thread count
    finished = []

    def crash_after_three(window) -> None:
        finished.append(window)
        if len(finished) == 3:
            raise Crash

    pipe = M3DDMPipeline.load(tiny_pipeline_dir)
    options = OutpaintOptions(pad=Pad(16, 0, 16, 0, "pixel"), steps=1, strides=(15, 1), batch_windows=1)
    crash_in_process(lambda: outpaint_file(pipe, video, tmp_path / "resumed.mp4", options, work_dir=tmp_path / "work",
                                           on_window=crash_after_three))
    assert not (tmp_path / "resumed.mp4").exists()  # no half-written output
    resumed = run_cli("outpaint", *common, "--batch-windows", "1", "--work-dir", str(tmp_path / "work"), "--resume",
                   "-o", str(tmp_path / "resumed.mp4"))
    assert resumed.returncode == 0, resumed.stderr
    assert (tmp_path / "resumed.mp4").read_bytes() == expected

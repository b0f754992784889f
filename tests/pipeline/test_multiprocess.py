"""Windows of a level sharded over 2 processes (accelerate launch, CPU) give the same file as one process, and the
same command run twice gives the same file (the user's file, byte for byte, not only the latents)."""

import os
import subprocess
import sys

import numpy as np
import pytest

from m3ddm.io import open_video_source
from m3ddm.io.samples import make_test_video


@pytest.mark.slow
def test_two_processes_equal_one(tiny_pipeline_dir, tmp_path):
    video = make_test_video(tmp_path / "in.mp4", frames=60, size=(64, 48), fps=24)
    common = ["outpaint", str(video), "--pad", "16,0,16,0", "--model", tiny_pipeline_dir, "--steps", "1",
              "--strides", "15,1", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, "-m", "m3ddm", *common, "-o", str(tmp_path / "one.mp4")],
                         capture_output=True, text=True, env=env, timeout=600)
    assert one.returncode == 0, one.stderr
    again = subprocess.run([sys.executable, "-m", "m3ddm", *common, "-o", str(tmp_path / "again.mp4")],
                           capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0, again.stderr
    accelerate = os.path.join(os.path.dirname(sys.executable), "accelerate")
    two = subprocess.run(
        [accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
         "--dynamo_backend", "no", "-m", "m3ddm", *common, "-o", str(tmp_path / "two.mp4")],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("60 frames") == 1  # one summary line: only the first process writes and reports
    a = np.stack(list(open_video_source(tmp_path / "one.mp4").iter_frames()))
    b = np.stack(list(open_video_source(tmp_path / "two.mp4").iter_frames()))
    assert a.shape == b.shape == (60, 48, 96, 3)
    assert np.array_equal(a, b)
    assert (tmp_path / "again.mp4").read_bytes() == (tmp_path / "one.mp4").read_bytes()
    assert (tmp_path / "two.mp4").read_bytes() == (tmp_path / "one.mp4").read_bytes()

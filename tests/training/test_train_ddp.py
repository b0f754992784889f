"""Two processes with `accelerate launch` (CPU, gloo): gradients are synchronised, weights end identical.

accelerate 1.x runs ``--cpu --num_processes 2`` as ONE process (its simple launcher); several CPU processes on one
machine need ``--multi_gpu`` (torchrun underneath), which on a machine without GPUs gives MULTI_CPU, and the
config's ``train.cpu: true`` keeps it on the CPU where GPUs exist. Offline: no accelerate config file is needed.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _accelerate() -> str:
    candidate = Path(sys.executable).with_name("accelerate")
    return str(candidate) if candidate.exists() else shutil.which("accelerate") or "accelerate"


@pytest.mark.slow
def test_two_cpu_processes_end_with_identical_weights(tiny_dict, tmp_path):
    config = tiny_dict({"model": {"variant": "sdm"},
                        "train": {"max_steps": 2, "checkpoint_every": 2, "num_threads": 1, "cpu": True}})
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "out"
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HOME=str(tmp_path / "hf"), PYTHONWARNINGS="ignore")
    command = [
        _accelerate(), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port()),
        "-m", "m3ddm", "train", "--config", str(path), "--output-dir", str(out),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "final_state.json").read_text())
    assert summary["num_processes"] == 2 and summary["step"] == 2
    digests = summary["rank_weight_digests"]
    assert len(digests) == 2 and digests[0] == digests[1]
    checkpoint = out / "checkpoints" / "step-00000002"
    assert (checkpoint / "random_states_0.pkl").is_file() and (checkpoint / "random_states_1.pkl").is_file()
    assert json.loads((checkpoint / "trainer_state.json").read_text())["clips_seen"] == 4  # 2 steps x 2 procs
    assert done.stdout.count("trained to step 2") == 1

"""Weights-only snapshots: made from a checkpoint through the CLI, and a warm start that goes on from them."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from m3ddm.cli import main
from m3ddm.models import M3DDMUNet
from m3ddm.training import checkpoint as ckpt
from m3ddm.training.snapshot import EMA_FOLDER, RAW_FOLDER, read_snapshot


def test_snapshot_then_warm_start_continues_the_run(tiny_config, tiny_dict, tmp_path, capsys):
    from m3ddm.training.loop import train

    config = tiny_config()
    first = tmp_path / "first"
    train(config, output_dir=first, max_steps=2)
    config_file = tmp_path / "tiny.yaml"
    config_file.write_text(yaml.safe_dump(tiny_dict()))

    snap = tmp_path / "snap"
    assert main(["train", "--snapshot", str(first), str(snap)]) == 0
    assert "step 2" in capsys.readouterr().out
    facts = read_snapshot(snap)
    assert (facts.step, facts.ema_updates) == (2, 2)
    raw = M3DDMUNet.from_pretrained(snap / RAW_FOLDER)
    averaged = M3DDMUNet.from_pretrained(snap / EMA_FOLDER)
    from safetensors.torch import load_file

    stored = load_file(str(snap / RAW_FOLDER / "diffusion_pytorch_model.safetensors"))
    weights = {k: v for k, v in stored.items() if "running_" not in k and v.is_floating_point()}
    assert {v.dtype for v in weights.values()} == {torch.float16}  # small enough to commit (BN statistics stay)
    final = M3DDMUNet.from_pretrained(first / "unet").state_dict()  # the run's export holds its EMA weights
    for key, value in averaged.state_dict().items():
        assert torch.allclose(value.float(), final[key].float(), atol=2e-3, rtol=2e-3), key
    raw_state, ema_state = raw.state_dict(), averaged.state_dict()
    assert any(not torch.equal(raw_state[k], ema_state[k]) for k in raw_state)  # two different copies

    # a new snapshot into the same folder keeps what lives beside it (the committed codec and README)
    (snap / "vae").mkdir()
    (snap / "vae" / "LICENSE").write_text("MIT")
    (snap / "README.md").write_text("state of the campaign")
    assert main(["train", "--snapshot", str(first), str(snap)]) == 0
    assert (snap / "vae" / "LICENSE").read_text() == "MIT" and (snap / "README.md").is_file()
    assert read_snapshot(snap).step == 2

    second = tmp_path / "second"
    seen = []
    result = train(config, output_dir=second, max_steps=4, warm_start=snap,
                   on_step_end=lambda step, loss: seen.append(step))
    assert seen == [3, 4] and result.step == 4  # the numbering goes on
    assert [step for step, _ in ckpt.list_checkpoints(second)] == [4]
    state = json.loads((ckpt.latest_checkpoint(second) / ckpt.STATE_FILE).read_text())
    assert state["step"] == 4

    with pytest.raises(Exception, match="nothing to train"):
        train(config, output_dir=tmp_path / "third", max_steps=2, warm_start=snap)


def test_bad_snapshots_are_one_line_errors(tmp_path, capsys):
    assert main(["train", "--snapshot", str(tmp_path), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "no training checkpoint" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
    assert main(["train", "--config", "tiny-cpu", "--warm-start", str(tmp_path), "--output-dir",
                 str(tmp_path / "run")]) == 2
    assert "not a weights snapshot" in capsys.readouterr().err


def _last_lr(checkpoint) -> float:
    # accelerate stores each registered object (EMA, LR schedule) as custom_checkpoint_<i>.pkl
    for path in sorted(checkpoint.glob("custom_checkpoint_*.pkl")):
        state = torch.load(path, weights_only=False)
        if "_last_lr" in state:
            return state["_last_lr"][0]
    raise AssertionError(f"no LR schedule in {checkpoint}")


def test_a_warm_start_decays_over_the_steps_left_and_resumes_on_the_same_curve(tiny_config, tmp_path):
    from m3ddm.training.loop import train

    config = tiny_config({"optim": {"lr_scheduler": "cosine", "lr_warmup_steps": 0}})
    train(config, output_dir=tmp_path / "first", max_steps=2)
    snap = tmp_path / "snap"
    assert main(["train", "--snapshot", str(tmp_path / "first"), str(snap)]) == 0

    whole = tmp_path / "whole"
    train(config, output_dir=whole, max_steps=6, warm_start=snap)
    lrs = {step: _last_lr(path) for step, path in ckpt.list_checkpoints(whole)}
    # steps 3-6 are the schedule's 4 steps: half-way at step 4, the end at step 6 (spanning 6 steps, it stopped at 0.25)
    assert lrs[4] == pytest.approx(0.5e-3) and lrs[6] == pytest.approx(0.0, abs=1e-9)
    assert json.loads((whole / "checkpoints" / ckpt.checkpoint_name(6) / ckpt.STATE_FILE).read_text())["lr_origin"] == 2

    class Crash(Exception):
        pass

    def crash_after_4(step, loss):
        if step == 4:  # its checkpoint is written
            raise Crash

    cut = tmp_path / "cut"
    with pytest.raises(Crash):
        train(config, output_dir=cut, max_steps=6, warm_start=snap, on_step_end=crash_after_4)
    train(config, output_dir=cut, max_steps=6, resume=True)
    assert _last_lr(ckpt.latest_checkpoint(cut)) == pytest.approx(0.0, abs=1e-9)  # not from a 6-step span

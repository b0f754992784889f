"""The training loop: overfitting, exact resume after a crash mid-save, NaN guard, export for inference."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from m3ddm.errors import UserError
from m3ddm.schedule import NoiseSchedule
from m3ddm.training import checkpoint as ckpt
from m3ddm.training import loop
from m3ddm.training.config import load_config

_MODELS: dict = {}  # the UNet the current train() call built (see _capture_unet)


def _state(path):
    return load_file(str(path))


def _equal_state_dicts(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_tiny_model_overfits_one_clip(tiny_config, tmp_path):
    """One fixed clip, fixed mask, a fixed set of 2 (noise, timestep) pairs (``train.fixed_noise_pool``, meant
    for this kind of test only): the loss must fall at least tenfold."""
    config = tiny_config({
        "data": {"synthetic": {"num_videos": 1, "num_frames": 2, "height": 64, "width": 64}, "num_frames": 2,
                 "stride_range": [1, 1], "crop_scale": [1.0, 1.0], "crop_aspect": [1.0, 1.0]},
        "masking": {"strategies": {"four": 0, "one": 0, "two": 1.0, "random": 0, "all": 0},
                    "ratio_range": [0.5, 0.5], "guide_cases": {"none": 1.0, "first_last": 0, "random": 0},
                    "p_drop_context": 0, "p_drop_global": 0},
        "codec": {"sample_posterior": False},
        "optim": {"learning_rate": 5e-3, "max_grad_norm": None, "weight_decay": 0},
        "train": {"max_steps": 64, "fixed_noise_pool": 2, "checkpoint_every": 1000, "ema_decay": None,
                  "log_every": 1000},
    })
    result = loop.train(config, output_dir=tmp_path / "run")
    first = sum(result.losses[:3]) / 3
    last = sum(result.losses[-5:]) / 5
    assert first > 0.5
    assert last <= first / 10, (first, last)
    # The run folder is a pipeline folder: `m3ddm outpaint --model RUN` loads it.
    from m3ddm.pipeline import M3DDMPipeline

    pipe = M3DDMPipeline.load(tmp_path / "run")
    assert pipe.config.global_frames == "canvas" and pipe.unet.config.global_context


def test_crash_mid_save_then_resume_equals_uninterrupted(tiny_config, tmp_path, monkeypatch):
    config = tiny_config({
        "optim": {"lr_scheduler": "constant_with_warmup", "lr_warmup_steps": 2},
        "train": {"max_steps": 3, "checkpoint_every": 2, "gradient_accumulation_steps": 2},
    })
    straight = loop.train(config, output_dir=tmp_path / "a")
    assert straight.step == 3 and straight.skipped_videos == 0

    # Run B dies while writing its step-3 checkpoint: the step-2 one must stay intact and be used.
    real_finalize = ckpt.finalize_checkpoint

    def crash_at_3(tmp_dir, step, state):
        if step == 3:
            raise KeyboardInterrupt("simulated crash during save")
        return real_finalize(tmp_dir, step, state)

    monkeypatch.setattr(ckpt, "finalize_checkpoint", crash_at_3)
    with pytest.raises(KeyboardInterrupt):
        loop.train(config, output_dir=tmp_path / "b")
    monkeypatch.setattr(ckpt, "finalize_checkpoint", real_finalize)
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path / "b")] == [2]
    assert ckpt.temporary_checkpoint_dir(tmp_path / "b", 3).exists()  # the half-written one, ignored

    with pytest.raises(UserError, match="--resume"):
        loop.train(config, output_dir=tmp_path / "b")
    resumed = loop.train(config, output_dir=tmp_path / "b", resume=True)
    assert resumed.step == 3 and resumed.losses == straight.losses[2:]
    assert not ckpt.temporary_checkpoint_dir(tmp_path / "b", 3).exists()

    a, b = tmp_path / "a/checkpoints/step-00000003", tmp_path / "b/checkpoints/step-00000003"
    assert _equal_state_dicts(_state(a / "model.safetensors"), _state(b / "model.safetensors"))
    ema_a = torch.load(a / "custom_checkpoint_0.pkl", weights_only=False)
    ema_b = torch.load(b / "custom_checkpoint_0.pkl", weights_only=False)
    assert _equal_state_dicts(ema_a["shadow"], ema_b["shadow"]) and ema_a["num_updates"] == 3
    opt_a = torch.load(a / "optimizer.bin", weights_only=False)["state"]
    opt_b = torch.load(b / "optimizer.bin", weights_only=False)["state"]
    assert all(torch.equal(opt_a[k]["exp_avg_sq"], opt_b[k]["exp_avg_sq"]) for k in opt_a)
    sched_a = torch.load(a / "custom_checkpoint_1.pkl", weights_only=False)
    assert sched_a == torch.load(b / "custom_checkpoint_1.pkl", weights_only=False)
    assert sched_a["last_epoch"] == 3
    rng_states = torch.load(a / "random_states_0.pkl", weights_only=False)  # saved by accelerate, per process
    assert {"random_state", "numpy_random_seed", "torch_manual_seed"} <= set(rng_states)
    export_a = _state(tmp_path / "a/unet/diffusion_pytorch_model.safetensors")
    export_b = _state(tmp_path / "b/unet/diffusion_pytorch_model.safetensors")
    assert _equal_state_dicts(export_a, export_b)
    _check_export(tmp_path / "a", config, a)


def _check_export(out, config, last_checkpoint):
    """The output folder loads for inference, and its UNet holds the EMA weights, not the raw ones."""
    from diffusers import PNDMScheduler

    from m3ddm.codecs import LatentCodec
    from m3ddm.models import M3DDMUNet

    unet = M3DDMUNet.from_pretrained(out / "unet")
    assert unet.config.global_context is True
    codec = LatentCodec.from_pretrained(out / "vae")
    assert codec.scaling_factor == pytest.approx(0.18215)
    scheduler = PNDMScheduler.from_pretrained(out / "scheduler")
    assert scheduler.config.beta_schedule == "scaled_linear" and scheduler.config.skip_prk_steps
    assert scheduler.config.steps_offset == 1 and not scheduler.config.set_alpha_to_one
    assert (scheduler.config.beta_start, scheduler.config.beta_end) == (0.00085, 0.012)
    assert load_config(out / "training_config.yaml").to_dict() == config.to_dict()

    raw = _state(last_checkpoint / "model.safetensors")
    shadow = torch.load(last_checkpoint / "custom_checkpoint_0.pkl", weights_only=False)["shadow"]
    exported = unet.state_dict()
    for name in ("conv_in.weight", "conv_out.spatial_conv.weight"):
        assert torch.equal(exported[name], shadow[name])
        assert not torch.equal(exported[name], raw[f"unet.{name}"])


def test_non_finite_losses_are_skipped_then_abort(tiny_config, tmp_path, monkeypatch):
    real_loss = loop.diffusion_loss
    calls = {"n": 0}

    def nan_on_second_call(*args):
        calls["n"] += 1
        loss = real_loss(*args)
        return loss * float("nan") if calls["n"] == 2 else loss

    digests = []
    monkeypatch.setattr(loop, "diffusion_loss", nan_on_second_call)
    # (also runs the pre-encoded latent-cache path: the cache is built on first use)
    config = tiny_config({"data": {"latent_cache": str(tmp_path / "cache")},
                          "train": {"max_steps": 3, "checkpoint_every": 100, "ema_decay": None}})
    with pytest.warns(RuntimeWarning, match="non-finite loss"):
        result = loop.train(config, output_dir=tmp_path / "a",
                            on_step_end=lambda step, loss: digests.append(loop.weight_digest(_MODELS["unet"])))
    assert result.bad_steps == 1 and result.step == 3
    assert digests[0] == digests[1] != digests[2]  # step 2 changed nothing
    assert (tmp_path / "cache/index.json").is_file()

    monkeypatch.setattr(loop, "diffusion_loss", lambda *args: real_loss(*args) * float("inf"))
    config = tiny_config({"train": {"max_steps": 10, "max_bad_steps": 2, "checkpoint_every": 100,
                                    "mixed_precision": "bf16"}})
    with pytest.raises(UserError, match="diverged: 2 non-finite losses in a row at step 2"):
        with pytest.warns(RuntimeWarning):
            loop.train(config, output_dir=tmp_path / "b")


@pytest.fixture(autouse=True)
def _capture_unet(monkeypatch):
    """Remember the UNet that train() builds, so tests can look at its weights between steps."""
    real = loop.build_unet

    def build(config, *args):
        unet = real(config, *args)
        _MODELS["unet"] = unet
        return unet

    monkeypatch.setattr(loop, "build_unet", build)
    yield
    _MODELS.clear()


def test_v_prediction_trains_on_v_and_exports_its_scheduler(tiny_config, tmp_path):
    from m3ddm.pipeline import M3DDMPipeline
    from m3ddm.training.objective import ModelBatch, NoiseDraw, diffusion_loss, training_noise_scheduler

    z0 = torch.randn(1, 4, 2, 4, 4)
    mb = ModelBatch(z0, torch.zeros_like(z0), torch.ones(1, 1, 2, 4, 4), torch.tensor([8]), None, 0)
    draw = NoiseDraw(torch.randn(z0.shape), torch.tensor([900]))
    zero_model = lambda sample, *args: torch.zeros_like(z0)  # noqa: E731 - the loss is then the target's power
    for kind in ("epsilon", "v_prediction"):
        scheduler = training_noise_scheduler(NoiseSchedule(prediction_type=kind))
        target = draw.noise if kind == "epsilon" else scheduler.get_velocity(z0, draw.noise, draw.timesteps)
        assert torch.allclose(diffusion_loss(zero_model, scheduler, mb, draw), target.pow(2).mean())
    config = tiny_config({"model": {"prediction_type": "v_prediction"}, "train": {"max_steps": 2}})
    loop.train(config, output_dir=tmp_path / "run")
    pipe = M3DDMPipeline.load(tmp_path / "run")
    assert pipe.scheduler.config.prediction_type == "v_prediction"
    from m3ddm.sampling import make_scheduler

    assert make_scheduler("dpmpp", pipe.scheduler).config.prediction_type == "v_prediction"
    with pytest.raises(UserError, match="prediction_type"):
        tiny_config({"model": {"prediction_type": "x0"}})


def test_a_relative_model_trains_on_the_diffusion_of_its_departure_from_the_context():
    """With a base (relative_to_context) the loss is the ordinary loss of ``x0 - base``: the model that predicts
    that diffusion's v exactly has zero loss, and it is not the one that would be right for ``x0``."""
    from dataclasses import replace

    from m3ddm.training.objective import ModelBatch, NoiseDraw, diffusion_loss, training_noise_scheduler

    z0, base = torch.randn(2, 4, 2, 4, 4), torch.randn(2, 4, 2, 4, 4)
    mb = ModelBatch(z0, torch.zeros_like(z0), torch.ones(2, 1, 2, 4, 4), torch.tensor([8, 8]), None, 0)
    draw = NoiseDraw(torch.randn(z0.shape), torch.tensor([300, 999]))
    scheduler = training_noise_scheduler(NoiseSchedule(prediction_type="v_prediction", rescale_betas_zero_snr=True))
    relative_v = scheduler.get_velocity(z0 - base, draw.noise, draw.timesteps)
    absolute_v = scheduler.get_velocity(z0, draw.noise, draw.timesteps)
    oracle = lambda target: lambda sample, *args: target  # noqa: E731
    assert diffusion_loss(oracle(relative_v), scheduler, replace(mb, base=base), draw).item() < 1e-10
    assert diffusion_loss(oracle(absolute_v), scheduler, replace(mb, base=base), draw).item() > 0.1
    assert diffusion_loss(oracle(absolute_v), scheduler, mb, draw).item() < 1e-10
    # and its noisy input is the noisy x0 - base: the first four channels the model sees
    seen = []
    diffusion_loss(lambda sample, *args: seen.append(sample) or relative_v, scheduler, replace(mb, base=base), draw)
    assert torch.allclose(seen[0][:, :4], scheduler.add_noise(z0 - base, draw.noise, draw.timesteps))


def test_focus_timesteps_take_their_share_and_reach_the_loss(tiny_config, tmp_path, monkeypatch):
    from m3ddm.training.objective import draw_noise

    shape = torch.Size([4000, 1])
    plain = draw_noise(shape, torch.Generator().manual_seed(3))
    assert draw_noise(shape, torch.Generator().manual_seed(3), focus=([199, 999], 0.0)).timesteps.equal(
        plain.timesteps)
    focused = draw_noise(shape, torch.Generator().manual_seed(3), focus=([199, 999], 0.5))
    hit = (focused.timesteps == 199) | (focused.timesteps == 999)
    assert 0.45 < hit.float().mean() < 0.55  # (uniform draws land on them 0.2 % of the time)
    assert (focused.timesteps == 199).sum() > 800 and (focused.timesteps == 999).sum() > 800
    kept = focused.timesteps == plain.timesteps
    assert kept.float().mean() > 0.45 and focused.noise.equal(plain.noise)  # the rest is the plain draw

    seen = []
    real_loss = loop.diffusion_loss

    def record(model, scheduler, mb, draw, *args):
        seen.extend(draw.timesteps.tolist())
        return real_loss(model, scheduler, mb, draw, *args)

    monkeypatch.setattr(loop, "diffusion_loss", record)
    config = tiny_config({"model": {"focus_timesteps": [7], "focus_share": 1.0},
                          "train": {"max_steps": 2, "checkpoint_every": 100}})
    loop.train(config, output_dir=tmp_path / "run")
    assert seen and set(seen) == {7}

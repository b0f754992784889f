"""Per-video adaptation (``--adapt``): the adapter changes, the base model does not; the same seed gives the same
adapter and the same file; a crash during adaptation followed by ``--resume`` gives the uninterrupted file; a saved
adapter reused with ``--adapter`` gives the file the tuning run gave."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from cli_runs import Crash, crash_in_process, run_cli
from m3ddm.adaptation import (
    Adapter,
    AdaptSettings,
    AdaptState,
    VideoLatents,
    adapt,
    draw_clip,
    known_block,
)
from m3ddm.errors import UserError
from m3ddm.geometry import Pad
from m3ddm.io.arrays import ArraySource
from m3ddm.io.samples import make_test_video
from m3ddm.pipeline import OutpaintOptions
from m3ddm.schedule import NoiseSchedule
from m3ddm.training.loop import weight_digest


def _video(pipe, frames: int = 20) -> VideoLatents:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (1, 48, 64, 3))
    clip = np.clip(base + np.arange(frames)[:, None, None, None] * 3, 0, 255).astype(np.uint8)
    source = ArraySource(clip, 24)
    options = pipe.resolve(OutpaintOptions(pad=Pad(16, 0, 16, 0, "pixel")), frames)
    geometry = pipe.geometry_for(source, options)
    encoded = pipe.encode_video(source, geometry, options)
    return VideoLatents(encoded.prefilled, encoded.latent_mask[0, 0, 0], encoded.black, 24.0, (1,), 4, True)


def test_known_block_leaves_out_the_cells_at_the_seam():
    mask = torch.ones(8, 20)
    mask[:, 3:13] = 0  # known columns 3..12 of 20, all rows
    assert known_block(mask) == (0, 4, 8, 8)  # a cell less beside each masked side, none at the canvas edge
    mask[:, 3:8] = 1
    with pytest.raises(UserError, match="too small"):
        known_block(mask)
    with pytest.raises(UserError):
        known_block(torch.ones(6, 10))


def test_clips_are_a_function_of_seed_and_step_and_hide_cells_only_inside_the_crop(tiny_pipeline):
    video = _video(tiny_pipeline)
    a, b = draw_clip(video, 3, 7, 2, 0.6), draw_clip(video, 3, 7, 2, 0.6)
    c = draw_clip(video, 3, 8, 2, 0.6)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(a[k].shape == c[k].shape and torch.equal(a[k], c[k]) for k in a)
    top, left, kh, kw = known_block(video.latent_mask)
    assert a["latents"].shape[-2] <= kh and a["latents"].shape[-1] <= kw
    assert a["latents"].shape[:3] == (2, video.latents.shape[1], 16)
    # the crop's content is the video's known cells (some 16-frame run of them)
    crop = a["latents"][0, :, 0]
    ch, cw = crop.shape[-2:]
    hits = [(y, x) for y in range(top, top + kh - ch + 1) for x in range(left, left + kw - cw + 1)
            if any(torch.equal(video.latents[f, :, y: y + crop.shape[-2], x: x + crop.shape[-1]], crop)
                   for f in range(video.latents.shape[0]))]
    assert hits


@pytest.mark.parametrize("method", ["lora", "full"])
def test_adaptation_changes_the_adapter_and_never_the_base_model(tiny_pipeline, method):
    video = _video(tiny_pipeline)
    unet = tiny_pipeline.unet
    before = weight_digest(unet)
    adapter = adapt(unet, video, AdaptSettings(steps=3, method=method), NoiseSchedule(), seed=1)
    assert weight_digest(unet) == before
    tuned = adapter.apply(unet)
    assert weight_digest(unet) == before
    if method == "lora":
        assert adapter.tensors and all("lora_" in name for name in adapter.tensors)
        assert any(name.endswith("lora_B.default.weight") and t.abs().max() > 0 for name, t in adapter.tensors.items())
    sample = torch.randn(1, 9, 16, 6, 8, generator=torch.Generator().manual_seed(0))
    glob = torch.randn(4, 4, 6, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out_base = unet.denoise(sample, torch.tensor([500]), torch.tensor([8]), unet.encode_global(glob, 4))
        out_tuned = tuned.denoise(sample, torch.tensor([500]), torch.tensor([8]), tuned.encode_global(glob, 4))
    assert not torch.equal(out_base, out_tuned)


def test_a_model_with_a_filled_or_relative_context_is_tuned_so(tiny_pipeline, monkeypatch):
    """The clip given to adaptation says whether the model's hidden context is filled (latent_fill), and the
    tuning's batches then carry the fill (build_model_batch(fill=True)), as the model was trained."""
    import m3ddm.adaptation as adaptation

    seen = []
    real = adaptation.build_model_batch
    monkeypatch.setattr(adaptation, "build_model_batch",
                        lambda *a, **k: seen.append((k["fill"], k["relative"])) or real(*a, **k))
    video = _video(tiny_pipeline)
    adapt(tiny_pipeline.unet, replace(video, fill_hidden=True), AdaptSettings(steps=1), NoiseSchedule(), seed=1)
    adapt(tiny_pipeline.unet, replace(video, fill_hidden=True, relative=True), AdaptSettings(steps=1),
          NoiseSchedule(), seed=1)
    adapt(tiny_pipeline.unet, video, AdaptSettings(steps=1), NoiseSchedule(), seed=1)
    assert seen == [(True, False), (True, True), (False, False)]
    # the pipeline marks the clip from its model's context encoding
    import m3ddm.pipeline as pipeline

    picked = []

    class Seen(Exception):
        pass

    def record(unet, clip, *args, **kwargs):
        picked.append((clip.fill_hidden, clip.relative))
        raise Seen

    monkeypatch.setattr(pipeline, "adapt", record)
    source = ArraySource(np.zeros((6, 48, 64, 3), np.uint8), 24)
    for encoding, relative in (("latent_fill", False), ("latent_fill", True), ("latent_mask", False)):
        pipe = pipeline.M3DDMPipeline(unet=tiny_pipeline.unet, vae=tiny_pipeline.vae,
                                      scheduler=tiny_pipeline.scheduler, context_encoding=encoding,
                                      relative_to_context=relative)
        options = OutpaintOptions(pad=Pad(16, 0, 16, 0, "pixel"), adapt=AdaptSettings(steps=1), size=96, steps=2)
        with pytest.raises(Seen):
            pipe.adapted_unet(pipe.prepare(source, options))
    assert picked == [(True, False), (True, True), (False, False)]


def test_same_seed_same_adapter_and_a_resumed_run_ends_where_an_uninterrupted_one_does(tiny_pipeline, tmp_path):
    video = _video(tiny_pipeline)
    settings = AdaptSettings(steps=5)
    whole = adapt(tiny_pipeline.unet, video, settings, NoiseSchedule(), seed=2)
    again = adapt(tiny_pipeline.unet, video, settings, NoiseSchedule(), seed=2)
    other = adapt(tiny_pipeline.unet, video, settings, NoiseSchedule(), seed=3)
    assert all(torch.equal(whole.tensors[k], again.tensors[k]) for k in whole.tensors)
    assert not all(torch.equal(whole.tensors[k], other.tensors[k]) for k in whole.tensors)

    def crash_at_4(step, loss):
        if step == 4:
            raise Crash

    state = AdaptState(tmp_path / "work", "fp")
    with pytest.raises(Crash):
        adapt(tiny_pipeline.unet, video, settings, NoiseSchedule(), seed=2, state=state, checkpoint_every=2,
              on_step=crash_at_4)
    steps = []
    resumed = adapt(tiny_pipeline.unet, video, settings, NoiseSchedule(), seed=2, state=state, resume=True,
                    checkpoint_every=2, on_step=lambda step, loss: steps.append(step))
    assert steps == [5]  # the crash came after the checkpoint of step 4: only step 5 was left
    assert all(torch.equal(whole.tensors[k], resumed.tensors[k]) for k in whole.tensors)
    with pytest.raises(UserError, match="other settings"):
        AdaptState(tmp_path / "work", "another run").load()


def test_an_adapter_saves_loads_and_refuses_another_base_model(tiny_pipeline, tmp_path):
    import copy

    adapter = adapt(tiny_pipeline.unet, _video(tiny_pipeline), AdaptSettings(steps=1), NoiseSchedule())
    adapter.save(tmp_path / "adapter")
    loaded = Adapter.load(tmp_path / "adapter")
    assert all(torch.equal(loaded.tensors[k], adapter.tensors[k]) for k in adapter.tensors)
    other = copy.deepcopy(tiny_pipeline.unet)
    with torch.no_grad():
        next(other.parameters()).add_(1.0)
    with pytest.raises(UserError, match="another model"):
        loaded.apply(other)
    (tmp_path / "broken").mkdir()
    with pytest.raises(UserError, match="not an adapter folder"):
        Adapter.load(tmp_path / "broken")


@pytest.mark.slow
def test_adapted_files_are_reproducible_resumable_and_reusable(tiny_pipeline_dir, tmp_path):
    """Through the CLI, on the written files: --adapt twice gives the same bytes; a run that crashed during
    adaptation and was resumed gives the same bytes; --adapter with the saved adapter gives the same bytes."""
    from m3ddm.jobs import outpaint_file
    from m3ddm.pipeline import M3DDMPipeline

    video = make_test_video(tmp_path / "in.mp4", frames=20, size=(64, 48), fps=24)
    common = [str(video), "--pad", "16,0,16,0", "--model", tiny_pipeline_dir, "--steps", "1", "--quiet",
              "--threads", "1", "--adapt", "12"]
    first = run_cli("outpaint", *common, "-o", str(tmp_path / "a.mp4"), "--save-adapter", str(tmp_path / "adapter"))
    assert first.returncode == 0, first.stderr
    second = run_cli("outpaint", *common, "-o", str(tmp_path / "b.mp4"))
    assert second.returncode == 0, second.stderr
    assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes()

    plain = run_cli("outpaint", *common[:-2], "-o", str(tmp_path / "plain.mp4"))
    assert plain.returncode == 0, plain.stderr
    assert (tmp_path / "plain.mp4").read_bytes() != (tmp_path / "a.mp4").read_bytes()

    reused = run_cli("outpaint", *common[:-2], "--adapter", str(tmp_path / "adapter"), "-o", str(tmp_path / "c.mp4"))
    assert reused.returncode == 0, reused.stderr
    assert (tmp_path / "c.mp4").read_bytes() == (tmp_path / "a.mp4").read_bytes()

    def crash_at_11(step, loss):  # after the checkpoint of step 10
        if step == 11:
            raise Crash

    pipe = M3DDMPipeline.load(tiny_pipeline_dir)
    options = OutpaintOptions(pad=Pad(16, 0, 16, 0, "pixel"), steps=1, adapt=AdaptSettings(steps=12))
    # (one thread, as the CLI runs above and below: the same arithmetic)
    crash_in_process(lambda: outpaint_file(pipe, video, tmp_path / "d.mp4", options, work_dir=tmp_path / "work",
                                           on_adapt_step=crash_at_11))
    assert not (tmp_path / "d.mp4").exists()
    resumed = run_cli("outpaint", *common, "-o", str(tmp_path / "d.mp4"), "--work-dir", str(tmp_path / "work"),
                      "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert (tmp_path / "d.mp4").read_bytes() == (tmp_path / "a.mp4").read_bytes()


def test_bad_adaptation_settings_are_one_clear_line(tiny_pipeline_dir, tmp_path):
    video = make_test_video(tmp_path / "in.mp4", frames=4, size=(64, 48), fps=24)
    for extra, message in ((["--adapt", "-1"], "--adapt"), (["--adapter", str(tmp_path)], "not an adapter folder"),
                           (["--save-adapter", str(tmp_path / "x")], "--save-adapter")):
        run = run_cli("outpaint", str(video), "--pad", "16,0,16,0", "--model", tiny_pipeline_dir, "--quiet",
                      "-o", str(tmp_path / "o.mp4"), *extra)
        assert run.returncode != 0
        assert message in run.stderr and "Traceback" not in run.stderr, run.stderr
        assert not (tmp_path / "o.mp4").exists()


def test_adaptation_progress_estimates_after_the_first_step_and_reports_a_tenth_at_a_time():
    import io

    from m3ddm.progress import Reporter

    now = [0.0]
    stream = io.StringIO()
    reporter = Reporter("lines", stream=stream, clock=lambda: now[0]).adapting(20, 0, "lora")
    for step in range(1, 21):
        now[0] += 2.0
        reporter.adapt_step(step, 0.5)
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("adapting: tuning the model on this video: 20 steps (lora")
    assert lines[1] == "estimate: about 40 s to adapt (measured on the first step: 2.0 s)"
    steps = [line for line in lines if line.startswith("adapt step ")]
    assert len(steps) == 10 and steps[-1].startswith("adapt step 20/20 (100%)") and "ETA" in steps[0]
    resumed = io.StringIO()
    reporter = Reporter("lines", stream=resumed, clock=lambda: now[0]).adapting(20, 15, "lora")
    now[0] += 3.0
    reporter.adapt_step(16, 0.4)
    assert "resuming after step 15" in resumed.getvalue() and "estimate: about 15 s to adapt" in resumed.getvalue()


def test_plan_summary_states_the_adaptation_cost_beside_the_generation_cost(tiny_pipeline):
    from m3ddm.jobs import plan_summary
    from m3ddm.planning import coarse_to_fine_plan

    options = OutpaintOptions(pad=Pad(16, 0, 16, 0, "pixel"), steps=2, adapt=AdaptSettings(steps=10))
    options = tiny_pipeline.resolve(options, 6)
    cost = tiny_pipeline.generation_cost(options, coarse_to_fine_plan(6, options.strides))
    _, _, stats = tiny_pipeline.outpaint_latents(ArraySource(np.zeros((6, 48, 64, 3), np.uint8), 24),
                                                 replace(options, adapt=AdaptSettings()))
    assert cost.unet_calls == stats["unet_calls"] > 0  # the estimate is what a run does
    text = plan_summary(tiny_pipeline, options, 6)
    assert f"{cost.unet_calls} UNet calls to generate" in text
    assert "adapting first: 10 lora steps of 1 clip, about 30 UNet calls' work" in text
    assert "adapting" not in plan_summary(tiny_pipeline, replace(options, adapt=AdaptSettings()), 6)

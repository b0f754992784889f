"""The pipeline with a tiny random model: determinism, batching, resume, geometry, loading."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from m3ddm.errors import UserError
from m3ddm.geometry import Pad
from m3ddm.io.arrays import ArraySource
from m3ddm.jobs import generate_job, run_fingerprint
from m3ddm.pipeline import GenerationHooks, M3DDMPipeline, OutpaintOptions
from m3ddm.planning import global_frame_indices


def _frames(n=20, h=48, w=64, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (1, h, w + n * 2, 3), dtype=np.uint8)
    return np.stack([base[0, :, 2 * i: 2 * i + w] for i in range(n)])  # a horizontal pan


def test_batched_windows_equal_sequential_bit_for_bit(tiny_pipeline):
    source = ArraySource(_frames(31), 24)
    base = dict(pad=Pad(16, 0, 16, 0, "pixel"), strides=(15, 1), steps=2, seed=3)
    _, seq, stats = tiny_pipeline.outpaint_latents(source, OutpaintOptions(batch_windows=1, **base))
    _, bat, _ = tiny_pipeline.outpaint_latents(source, OutpaintOptions(batch_windows=8, **base))
    assert stats["windows"] >= 3
    assert torch.equal(seq, bat)
    _, other_seed, _ = tiny_pipeline.outpaint_latents(source, OutpaintOptions(batch_windows=8, **{**base, "seed": 4}))
    assert not torch.equal(seq, other_seed)


def test_interrupted_then_resumed_equals_uninterrupted(tiny_pipeline, tmp_path):
    source = ArraySource(_frames(31), 24)
    options = OutpaintOptions(pad=Pad(16, 0, 16, 0, "pixel"), strides=(15, 1), steps=2, batch_windows=1, seed=5)
    _, full, _ = tiny_pipeline.outpaint_latents(source, options)
    seen = []

    def crash_after_two(window):
        seen.append(window.id)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate_job(tiny_pipeline, source, options, work_dir=tmp_path / "work", on_window=crash_after_two)
    assert (tmp_path / "work" / "state.json").is_file()
    resumed_windows = []
    _, resumed, _ = generate_job(tiny_pipeline, source, options, work_dir=tmp_path / "work", resume=True,
                                 on_window=lambda w: resumed_windows.append(w.id))
    assert set(resumed_windows).isdisjoint(seen)
    assert torch.equal(full, resumed)
    with pytest.raises(UserError, match="other settings"):
        generate_job(tiny_pipeline, source, OutpaintOptions(**{**options.__dict__, "seed": 6}),
                     work_dir=tmp_path / "work", resume=True)


def test_outpaint_array_keeps_known_pixels_and_size(tiny_pipeline):
    frames = _frames(6)
    out = tiny_pipeline.outpaint_array(frames, fps=24, pad_px=(16, 0, 16, 0), seed=0)
    assert out.shape == (6, 48, 96, 3)
    assert np.array_equal(out[:, :, 16:80], frames)


def test_guides_condition_later_windows(tiny_pipeline):
    """Frames generated at the coarse level are guides later: changing only them changes the fine level."""
    source = ArraySource(_frames(30), 24)
    video = tiny_pipeline.prepare(source, OutpaintOptions(pad=Pad(16, 0, 16, 0, "pixel"), strides=(15, 1), steps=2))
    assert video.encoded.masked.shape[0] == 30 and video.encoded.global_latents.shape[0] == 16
    coarse = {w.id for w in video.plan.windows if w.level == 1}
    fine = [w for w in video.plan.windows if w.level > 1]
    guides = sorted({f for w in fine for f in w.guides})
    fresh = sorted({f for w in fine for f in w.frames if f not in w.guides})
    assert guides and fresh
    first = torch.randn(video.encoded.masked.shape, generator=torch.Generator().manual_seed(0))
    second = first.clone()
    second[guides] = torch.randn(second[guides].shape, generator=torch.Generator().manual_seed(1))
    outs = []
    for start in (first, first, second):  # the coarse level "already generated" with these latents
        latents, stats = tiny_pipeline.generate(video, hooks=GenerationHooks(done=coarse, generated=start))
        assert stats["unet_calls"] > 0
        outs.append(latents)
    assert torch.equal(outs[0], outs[1])
    assert torch.equal(outs[2][guides], second[guides])  # guides are kept, not re-generated
    assert (outs[0][fresh] - outs[2][fresh]).abs().amax() > 1e-3


def test_global_frame_indices_match_official():
    assert global_frame_indices(100, 16) == [int(v) for v in np.floor(np.linspace(0, 99, 16))]
    assert global_frame_indices(5, 16)[:3] == [0, 0, 0]


def test_save_and_load_pipeline_folder(tiny_pipeline, tiny_pipeline_dir):
    loaded = M3DDMPipeline.from_pretrained(tiny_pipeline_dir)
    assert type(loaded.unet).__name__ == "M3DDMUNet"
    assert loaded.config.default_size == 96
    also = M3DDMPipeline.load(tiny_pipeline_dir)
    a, b = tiny_pipeline.unet.state_dict(), also.unet.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_incomplete_model_folder(tmp_path, tiny_pipeline_dir):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_pipeline_dir, broken)
    shutil.rmtree(broken / "vae")
    with pytest.raises(UserError, match="no vae/"):
        M3DDMPipeline.load(broken)
    with pytest.raises(UserError, match="--unet and --vae together"):
        M3DDMPipeline.load(None, unet=tiny_pipeline_dir, vae=None)


def test_official_layout_from_two_folders(tmp_path, tiny_pipeline):
    tiny_pipeline.unet.save_pretrained(tmp_path / "unet")
    tiny_pipeline.vae.save_pretrained(tmp_path / "vae")
    pipe = M3DDMPipeline.load(unet=tmp_path / "unet", vae=tmp_path / "vae")
    assert pipe.config.global_frames == "stretch" and pipe.config.default_scheduler == "pndm"
    source = ArraySource(_frames(4), 24)
    opts = OutpaintOptions(pad=Pad(16, 0, 16, 0, "pixel"), steps=3, scheduler="pndm", official_compat=True, size=96)
    _, latents, stats = pipe.outpaint_latents(source, opts)
    assert torch.isfinite(latents).all() and stats["unet_calls"] == 3 * 3


def test_official_compat_refuses_another_scheduler_before_any_work(tiny_pipeline):
    # the shipped tiny model defaults to another scheduler: the mistake is caught while resolving, not after encoding
    options = OutpaintOptions(pad=Pad(16, 0, 16, 0, "pixel"), official_compat=True, canvas="square")
    with pytest.raises(UserError, match="--scheduler pndm"):
        tiny_pipeline.resolve(options, 20)
    assert tiny_pipeline.resolve(replace(options, scheduler="pndm"), 20).scheduler == "pndm"


def test_factor4_codec_latents_and_mask_are_twice_as_fine(tiny_pipeline):
    """A codec with 3 blocks (factor 4): the latent mask follows the codec, not SD's factor 8."""
    from diffusers import AutoencoderKL

    from m3ddm.codecs import TINY_CODEC_CONFIG

    torch.manual_seed(1)
    vae = AutoencoderKL(**dict(TINY_CODEC_CONFIG, down_block_types=("DownEncoderBlock2D",) * 3,
                               up_block_types=("UpDecoderBlock2D",) * 3, block_out_channels=(8, 16, 16))).eval()
    pipe = M3DDMPipeline(unet=tiny_pipeline.unet, vae=vae, scheduler=tiny_pipeline.scheduler, default_size=64,
                         default_steps=2)
    source = ArraySource(_frames(6), 24)
    options = pipe.resolve(OutpaintOptions(pad=Pad(16, 0, 16, 0, "pixel")), 6)
    geometry = pipe.geometry_for(source, options)
    encoded = pipe.encode_video(source, geometry, options)
    assert encoded.masked.shape[-2:] == (geometry.canvas_h // 4, geometry.canvas_w // 4)
    assert encoded.latent_mask.shape[-2:] == encoded.masked.shape[-2:]
    assert encoded.latent_mask.min() == 0 and encoded.latent_mask.max() == 1
    out = pipe.outpaint_array(_frames(6), fps=24, pad_px=(16, 0, 16, 0))
    assert out.shape == (6, 48, 96, 3)


def test_strength_runs_the_last_steps_from_the_prefill(tiny_pipeline):
    source = ArraySource(_frames(6), 24)
    base = dict(pad=Pad(16, 0, 16, 0, "pixel"), steps=4, seed=2)
    _, full, stats_full = tiny_pipeline.outpaint_latents(source, OutpaintOptions(**base))
    _, same, _ = tiny_pipeline.outpaint_latents(source, OutpaintOptions(strength=1.0, **base))
    assert torch.equal(full, same)  # 1 = the default start
    _, half, stats_half = tiny_pipeline.outpaint_latents(source, OutpaintOptions(strength=0.5, **base))
    assert stats_half["unet_calls"] * 2 == stats_full["unet_calls"]
    assert not torch.equal(full, half)
    with pytest.raises(UserError, match="needs init 'prefill'"):
        tiny_pipeline.outpaint_latents(source, OutpaintOptions(strength=0.5, init="noise", **base))
    with pytest.raises(UserError, match="strength must be in"):
        tiny_pipeline.outpaint_latents(source, OutpaintOptions(strength=1.5, **base))


def test_low_strength_stays_near_the_prefill(tiny_pipeline):
    """The lower the strength, the closer the generated latents are to the encoded TELEA pre-fill."""
    source = ArraySource(_frames(6), 24)
    options = tiny_pipeline.resolve(OutpaintOptions(pad=Pad(16, 0, 16, 0, "pixel"), steps=10), 6)
    encoded = tiny_pipeline.encode_video(source, tiny_pipeline.geometry_for(source, options), options)
    gaps = []
    for strength in (0.1, 1.0):
        _, latents, _ = tiny_pipeline.outpaint_latents(source, replace(options, strength=strength))
        gaps.append(float((latents - encoded.prefilled).pow(2).mean()))
    assert gaps[0] < 0.25 * gaps[1]


def test_background_io_changes_nothing_and_may_change_on_resume(tiny_pipeline, tmp_path):
    frames = _frames(6)
    on = tiny_pipeline.outpaint_array(frames, fps=24, pad_px=(16, 0, 16, 0), background_io=True)
    off = tiny_pipeline.outpaint_array(frames, fps=24, pad_px=(16, 0, 16, 0), background_io=False)
    assert np.array_equal(on, off)
    a = run_fingerprint(OutpaintOptions(background_io=True, batch_windows=1), "x", tiny_pipeline.unet)
    b = run_fingerprint(OutpaintOptions(background_io=False, batch_windows=4), "x", tiny_pipeline.unet)
    c = run_fingerprint(OutpaintOptions(seed=1), "x", tiny_pipeline.unet)
    assert a == b != c


def test_noise_share_makes_a_static_video_flicker_less(tiny_pipeline):
    """On a still video, frames that start from shared noise come out more alike than with independent noise."""
    still = np.repeat(_frames(1), 8, axis=0)
    source = ArraySource(still, 24)
    base = dict(pad=Pad(16, 0, 16, 0, "pixel"), steps=4, seed=1, strength=0.6, strides=(1,))
    change = []
    for share in (0.0, 0.9):
        _, latents, _ = tiny_pipeline.outpaint_latents(source, OutpaintOptions(noise_share=share, **base))
        change.append(float((latents[1:] - latents[:-1]).pow(2).mean()))
    assert change[1] < 0.3 * change[0]
    with pytest.raises(UserError, match="noise share"):
        tiny_pipeline.outpaint_latents(source, OutpaintOptions(noise_share=-0.1, **base))


def test_noise_share_goes_only_to_windows_where_the_camera_holds_still(tiny_pipeline, pan_video, monkeypatch):
    """The shared noise is fixed to the canvas: a pan's windows get none of it, a still shot's get the share."""
    import m3ddm.pipeline as pipeline_module

    shares = []
    real = pipeline_module.sample_windows

    def spy(*args, **kwargs):
        shares.extend(kwargs["noise_share"])
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline_module, "sample_windows", spy)
    base = dict(pad=Pad(12, 0, 12, 0, "pixel"), steps=2, strength=0.5, strides=(1,), noise_share=0.5,
                prefill="propagate")
    pan = ArraySource(np.ascontiguousarray(pan_video[:8, :, 12:-12]), 24)
    tiny_pipeline.outpaint_latents(pan, OutpaintOptions(**base))
    assert shares and set(shares) == {0.0}
    shares.clear()
    still = ArraySource(np.ascontiguousarray(np.repeat(pan_video[:1, :, 12:-12], 8, axis=0)), 24)
    tiny_pipeline.outpaint_latents(still, OutpaintOptions(**base))
    assert shares and set(shares) == {0.5}


def test_model_defaults_fill_unset_guidance_and_noise_share(tiny_pipeline):
    resolved = tiny_pipeline.resolve(OutpaintOptions(), 8)
    assert (resolved.guidance_context, resolved.guidance_global, resolved.noise_share) == (2.0, 4.0, 0.0)
    tiny_pipeline.register_to_config(default_guidance=[1.0, 1.5], default_noise_share=0.5)
    try:
        resolved = tiny_pipeline.resolve(OutpaintOptions(guidance_global=3.0, strength=0.5, init="prefill"), 8)
        assert (resolved.guidance_context, resolved.guidance_global, resolved.noise_share) == (1.0, 3.0, 0.5)
        # the model's share is for starts from the pre-fill: from pure noise it is 0 unless asked for
        assert tiny_pipeline.resolve(OutpaintOptions(strength=1.0), 8).noise_share == 0.0
        assert tiny_pipeline.resolve(OutpaintOptions(strength=1.0, noise_share=0.25), 8).noise_share == 0.25
    finally:
        tiny_pipeline.register_to_config(default_guidance=[2.0, 4.0], default_noise_share=0.0)


def test_vae_slicing_changes_nothing_and_tiling_changes_little(tiny_pipeline):
    frames = _frames(4, h=64, w=96)
    pad = (32, 0, 32, 0)
    base = tiny_pipeline.outpaint_array(frames, fps=24, pad_px=pad, steps=2, size=160)
    sliced = tiny_pipeline.outpaint_array(frames, fps=24, pad_px=pad, steps=2, size=160, vae_batch=1)
    assert np.abs(base.astype(int) - sliced.astype(int)).max() <= 1  # float summation order only
    sample_size = tiny_pipeline.vae.config.sample_size
    assert sample_size < 160  # the 160x64 canvas is wider than one tile, so tiling is used
    tiled = tiny_pipeline.outpaint_array(frames, fps=24, pad_px=pad, steps=2, size=160, vae_tiling=True)
    assert tiny_pipeline.vae.use_tiling
    mse = np.mean((tiled.astype(float) - base.astype(float)) ** 2)
    assert 0 < mse and 10 * np.log10(255**2 / mse) > 20
    again = tiny_pipeline.outpaint_array(frames, fps=24, pad_px=pad, steps=2, size=160)
    assert not tiny_pipeline.vae.use_tiling and np.array_equal(again, base)
    with pytest.raises(UserError, match="VAE batch"):
        tiny_pipeline.outpaint_array(frames, fps=24, pad_px=pad, steps=2, vae_batch=0)


def test_tiny_autoencoder_pipeline_masks_context_in_latent_space_as_training_does():
    """context_encoding "latent_mask" (models trained on a latent cache): known cells are the pre-fill's latents,
    masked cells the black frame's latent, as the training objective builds them; the whole run works with a
    32-channel-style codec of the TAEF2 layout."""
    from m3ddm.codecs import LatentCodec
    from m3ddm.models import M3DDMUNet
    from m3ddm.sampling import make_scheduler
    from m3ddm.schedule import ZERO_SNR_V_SCHEDULE

    torch.manual_seed(2)
    codec = LatentCodec.tiny_autoencoder(seed=2, latent_channels=8, width=8)
    unet = M3DDMUNet.from_preset("tiny", in_channels=17, out_channels=8).eval()
    pipe = M3DDMPipeline(unet=unet, vae=codec.vae, scheduler=make_scheduler("ddim", ZERO_SNR_V_SCHEDULE.config()),
                         default_size=128, default_steps=2, default_scheduler="ddim", context_encoding="latent_mask")
    source = ArraySource(_frames(6), 24)
    options = pipe.resolve(OutpaintOptions(pad=Pad(16, 0, 16, 0, "pixel")), 6)
    geometry = pipe.geometry_for(source, options)
    encoded = pipe.encode_video(source, geometry, options)
    cells = encoded.latent_mask[0, 0].bool()  # [1, h, w]: 1 = generate
    assert encoded.masked.shape[1] == 8 and cells.any() and (~cells).any()
    black = encoded.black[None].expand_as(encoded.masked)
    assert torch.equal(encoded.masked[:, :, cells[0]], black[:, :, cells[0]])
    assert torch.equal(encoded.masked[:, :, ~cells[0]], encoded.prefilled[:, :, ~cells[0]])
    out = pipe.outpaint_array(_frames(6), fps=24, pad_px=(16, 0, 16, 0))
    assert out.shape == (6, 48, 96, 3)
    with pytest.raises(ValueError, match="context_encoding"):
        M3DDMPipeline(unet=unet, vae=codec.vae, scheduler=pipe.scheduler, context_encoding="pixels")


def test_latent_fill_gives_the_hidden_cells_the_fill_of_the_known_ones_as_training_does():
    """context_encoding "latent_fill" (models trained with model.hidden_context: smooth): the known cells are the
    pre-fill's latents as with latent_mask, the hidden ones ``fill_hidden`` of them, in the clip's context and its
    global frames alike (what build_model_batch(fill=True) gives the model in training)."""
    from m3ddm.codecs import LatentCodec
    from m3ddm.conditioning import fill_hidden
    from m3ddm.models import M3DDMUNet
    from m3ddm.sampling import make_scheduler
    from m3ddm.schedule import ZERO_SNR_V_SCHEDULE

    torch.manual_seed(2)
    codec = LatentCodec.tiny_autoencoder(seed=2, latent_channels=8, width=8)
    unet = M3DDMUNet.from_preset("tiny", in_channels=17, out_channels=8).eval()
    encoded = {}
    for encoding in ("latent_mask", "latent_fill"):
        pipe = M3DDMPipeline(unet=unet, vae=codec.vae, scheduler=make_scheduler("ddim", ZERO_SNR_V_SCHEDULE.config()),
                             default_size=128, default_steps=2, default_scheduler="ddim", context_encoding=encoding)
        source = ArraySource(_frames(6), 24)
        options = pipe.resolve(OutpaintOptions(pad=Pad(16, 0, 16, 0, "pixel")), 6)
        encoded[encoding] = pipe.encode_video(source, pipe.geometry_for(source, options), options)
    black, filled = encoded["latent_mask"], encoded["latent_fill"]
    cells = filled.latent_mask[0, 0].bool()[0]  # [h, w]: 1 = generate
    assert torch.equal(filled.masked, fill_hidden(black.masked, filled.latent_mask[0, 0]))
    assert torch.equal(filled.masked[:, :, ~cells], black.masked[:, :, ~cells])
    assert not torch.allclose(filled.masked[:, :, cells], black.masked[:, :, cells])
    assert torch.equal(filled.global_latents, fill_hidden(black.global_latents, filled.latent_mask[0, 0]))


def test_latent_prefill_keeps_the_pre_fills_own_latents_in_the_hidden_cells():
    """context_encoding "latent_prefill": the context (and the global frames) are the pre-filled canvas's latents,
    hidden cells included; the known cells are latent_mask's; from noise too, where no start latents are kept."""
    from m3ddm.codecs import LatentCodec
    from m3ddm.models import M3DDMUNet
    from m3ddm.sampling import make_scheduler
    from m3ddm.schedule import ZERO_SNR_V_SCHEDULE

    torch.manual_seed(2)
    codec = LatentCodec.tiny_autoencoder(seed=2, latent_channels=8, width=8)
    unet = M3DDMUNet.from_preset("tiny", in_channels=17, out_channels=8).eval()
    encoded = {}
    for encoding, init in (("latent_mask", "prefill"), ("latent_fill", "prefill"), ("latent_prefill", "prefill"),
                           ("latent_prefill", "noise")):
        pipe = M3DDMPipeline(unet=unet, vae=codec.vae, scheduler=make_scheduler("ddim", ZERO_SNR_V_SCHEDULE.config()),
                             default_size=128, default_steps=2, default_scheduler="ddim", context_encoding=encoding,
                             relative_to_context=encoding != "latent_mask")
        source = ArraySource(_frames(6), 24)
        options = pipe.resolve(OutpaintOptions(pad=Pad(16, 0, 16, 0, "pixel"), init=init), 6)
        encoded[encoding, init] = pipe.encode_video(source, pipe.geometry_for(source, options), options)
    prefill, black = encoded["latent_prefill", "prefill"], encoded["latent_mask", "prefill"]
    cells = prefill.latent_mask[0, 0].bool()[0]
    assert torch.equal(prefill.masked, prefill.prefilled)
    assert torch.equal(prefill.masked[:, :, ~cells], black.masked[:, :, ~cells])
    for other in (black, encoded["latent_fill", "prefill"]):
        assert not torch.allclose(prefill.masked[:, :, cells], other.masked[:, :, cells])
    from_noise = encoded["latent_prefill", "noise"]
    assert from_noise.prefilled is None and torch.equal(from_noise.masked, prefill.masked)
    assert torch.equal(from_noise.global_latents, prefill.global_latents)


def test_the_unet_always_sees_16_frames_and_padded_frames_are_not_written(tiny_pipeline):
    seen = []
    unet = tiny_pipeline.unet
    original = unet.denoise

    def spy(sample, *args, **kwargs):
        seen.append(sample.shape[2])
        return original(sample, *args, **kwargs)

    unet.denoise = spy
    try:
        out = tiny_pipeline.outpaint_array(_frames(20), fps=24, pad_px=(16, 0, 16, 0), strides=(1,))
    finally:
        del unet.denoise
    assert seen and set(seen) == {16}  # windows of 16 and 5 frames (the second padded with frame 19)
    assert out.shape == (20, 48, 96, 3)


def test_propagate_prefill_encodes_the_pixels_other_frames_saw(tiny_pipeline, pan_video, monkeypatch):
    """--prefill propagate: the pre-fill latents are the codec's encoding of ``propagate_border``'s canvases, made
    from the canvas's known pictures and the pan's motion measured on the source (3 px a frame at 96 px, rescaled
    to the canvas); the TELEA pre-fill does not call it."""
    import m3ddm.pipeline as pipeline_module
    from m3ddm.utils.pixels import to_signed

    calls = []
    real = pipeline_module.propagate_border

    def spy(frames, pads, motions, **kwargs):
        calls.append((frames, pads, motions))
        out = real(frames, pads, motions, **kwargs)
        calls[-1] += (out,)
        return out

    monkeypatch.setattr(pipeline_module, "propagate_border", spy)
    source = ArraySource(np.ascontiguousarray(pan_video[:10, :, 12:-12]), 24)
    options = tiny_pipeline.resolve(OutpaintOptions(pad=Pad(12, 0, 12, 0, "pixel"), prefill="propagate"), 10)
    geometry = tiny_pipeline.geometry_for(source, options)
    encoded = tiny_pipeline.encode_video(source, geometry, options)
    (known, pads, motions, fills), = calls
    scale = geometry.known.w / 72
    assert known.shape == (10, geometry.known.h, geometry.known.w, 3) and len(motions) == 9
    assert pads == (geometry.known.x0, 0, geometry.canvas_w - geometry.known.x1, 0)
    assert all(m is not None and abs(m[0, 2] + 3 * scale) < 0.5 * scale for m in motions)
    with torch.no_grad():
        expected = tiny_pipeline.codec.encode(to_signed(fills)).float()
    assert torch.allclose(encoded.prefilled, expected, atol=1e-5)
    # the left border of a right-pan was seen by earlier frames: later frames borrow it, so it is not TELEA's
    telea = tiny_pipeline.encode_video(source, geometry, replace(options, prefill="telea"))
    assert len(calls) == 1 and not torch.allclose(telea.prefilled[-1], encoded.prefilled[-1])


def test_smooth_prefills_fill_the_rest_smoothly(tiny_pipeline, pan_video, monkeypatch):
    """--prefill smooth encodes each frame's push-pull fill; propagate-smooth hands that fill to the propagation
    for what no frame saw (propagate keeps TELEA there)."""
    import m3ddm.pipeline as pipeline_module
    from m3ddm.canvas import build_canvas, prefill_smooth
    from m3ddm.utils.pixels import to_signed

    source = ArraySource(np.ascontiguousarray(pan_video[:6, :, 12:-12]), 24)
    options = tiny_pipeline.resolve(OutpaintOptions(pad=Pad(12, 0, 12, 0, "pixel"), prefill="smooth"), 6)
    geometry = tiny_pipeline.geometry_for(source, options)
    encoded = tiny_pipeline.encode_video(source, geometry, options)
    canvas, mask = build_canvas(pan_video[5, :, 12:-12], geometry)
    with torch.no_grad():
        expected = tiny_pipeline.codec.encode(to_signed(prefill_smooth(canvas, mask)[None])).float()
    assert torch.allclose(encoded.prefilled[5:6], expected, atol=1e-5)
    fills = []
    real = pipeline_module.propagate_border
    monkeypatch.setattr(pipeline_module, "propagate_border",
                        lambda *args, **kwargs: fills.append(kwargs["fill"]) or real(*args, **kwargs))
    for prefill in ("propagate-smooth", "propagate"):
        tiny_pipeline.encode_video(source, geometry, replace(options, prefill=prefill))
    assert [f.__name__ for f in fills] == ["prefill_smooth", "prefill_telea"]


def test_prefill_is_checked_and_defaults_to_the_models(tiny_pipeline):
    assert tiny_pipeline.resolve(OutpaintOptions(), 8).prefill == "telea"
    with pytest.raises(UserError, match="pre-fill must be one of telea, smooth, propagate, propagate-smooth"):
        tiny_pipeline.resolve(OutpaintOptions(prefill="flow"), 8)
    with pytest.raises(UserError, match="official-compat"):
        tiny_pipeline.resolve(OutpaintOptions(prefill="propagate", official_compat=True, scheduler="pndm"), 8)
    tiny_pipeline.register_to_config(default_prefill="propagate", default_steady=3)
    try:
        assert tiny_pipeline.resolve(OutpaintOptions(), 8).prefill == "propagate"
        # --official-compat with a model whose defaults are ours: the official pre-fill, no border stages
        official = tiny_pipeline.resolve(OutpaintOptions(official_compat=True, scheduler="pndm"), 8)
        assert (official.prefill, official.steady, official.keep_seen) == ("telea", 0, False)
        assert tiny_pipeline.resolve(OutpaintOptions(), 8).steady == 3
    finally:
        tiny_pipeline.register_to_config(default_prefill="telea", default_steady=0)


@pytest.mark.parametrize("setting, message", [
    ({"default_steady": -1}, "default_steady must be a whole number of frames"),
    ({"default_texture": 5}, "default_texture must be in"),
    ({"default_guidance": [1.0]}, "default_guidance must be two numbers"),
    ({"num_global_frames": 0}, "num_global_frames must be a whole number"),
    ({"default_noise_steps": 0}, "default_noise_steps must be null or"),
    ({"default_keep_seen": "yes"}, "default_keep_seen must be true or false"),
])
def test_impossible_saved_settings_are_refused_by_name(tiny_pipeline, setting, message):
    with pytest.raises(ValueError, match=message):
        M3DDMPipeline(tiny_pipeline.unet, tiny_pipeline.vae, tiny_pipeline.scheduler, **setting)

"""``--official-compat`` against a plain re-statement of the official driver (spec sections 8 and 9).

The reference below is written from the spec alone, as unoptimised as the driver: one window at a time, every
window re-encodes its 16 pre-filled frames, its 16 letterboxed frames, a black image and the 16 global frames, the
UNet runs all four guidance branches in its official call signature, and nothing is cached. The pipeline batches
windows, encodes each frame once, caches the global context and evaluates three branches; under
``--official-compat`` it must still give the same latents.

One thing the driver leaves open is fixed here as the pipeline fixes it: the driver samples the VAE posterior from
the unseeded global CUDA generator (so its runs are not reproducible); ours draws image ``f`` of kind ``k`` from a
generator seeded with the first 8 bytes of ``sha256("m3ddm:{seed}:posterior:{k}:{f}")`` (for the global frames,
``f`` is the position in the list of global frames).
"""

from __future__ import annotations

import functools
import hashlib

import cv2
import numpy as np
import pytest
import torch
from diffusers import PNDMScheduler

from cli_runs import Crash, crash_in_process, run_cli
from m3ddm.io import write_video
from m3ddm.io.arrays import ArraySource
from m3ddm.jobs import outpaint_file
from m3ddm.pipeline import GenerationHooks, M3DDMPipeline, OutpaintOptions

SEED = 6  # the driver's default --seed
STEPS = 4  # enough for PNDM's warm-up quirk (spec 8.1) and two PLMS orders after it
SIDE = 64  # the square canvas (256 for the released weights)
GUIDANCE, PREVIOUS_GUIDANCE = 2.0, 4.0


def _stream(seed: int, name: str) -> torch.Generator:
    digest = hashlib.sha256(f"m3ddm:{seed}:{name}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))


def _encode(vae, images: torch.Tensor, names: list[str], mutation: str | None) -> torch.Tensor:
    """Posterior sample x scaling factor, one seeded stream per image (all of a window's images in one call)."""
    dist = vae.encode(images).latent_dist
    if mutation == "posterior_mean":
        return dist.mean * vae.config.scaling_factor
    noise = torch.stack([torch.randn(dist.mean.shape[1:], generator=_stream(SEED, n)) for n in names])
    return (dist.mean + dist.std * noise) * vae.config.scaling_factor


def _square_canvases(frames: np.ndarray, ratio: tuple[int, int], mutation: str | None):
    """preprocess_frames_speed_square: (pre-filled, letterboxed, mask) per frame, uint8 / {0, 1}."""
    _, height, width, _ = frames.shape
    r = ratio[0] / ratio[1]
    bound_w, bound_h = float(width), float(height)
    if width / height < r:
        bound_w = r * height
    else:
        bound_h = width / r
    bound = max(bound_w, bound_h)
    side = SIDE if bound > SIDE else bound
    scale = side / bound
    new_w, new_h = min(int(width * scale), SIDE), min(int(height * scale), SIDE)
    top, left = (SIDE - new_h) // 2, (SIDE - new_w) // 2
    mask = np.ones((SIDE, SIDE), np.uint8)
    mask[top: top + new_h, left: left + new_w] = 0
    filled, boxed = [], []
    for frame in frames:
        if mutation == "area_resize":
            small = cv2.resize(frame, (new_w, new_h), interpolation=cv2.INTER_AREA)
        else:
            small = cv2.resize(frame.astype(np.float32), (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        canvas = np.zeros((SIDE, SIDE, 3), np.uint8)
        canvas[top: top + new_h, left: left + new_w] = small  # truncated to uint8 on assignment
        boxed.append(canvas)
        filled.append(cv2.inpaint(canvas, mask, 5, cv2.INPAINT_TELEA))
    return filled, boxed, mask


def _signed(images: list[np.ndarray]) -> torch.Tensor:
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255
    return (x - 0.5) / 0.5


def reference_driver(frames: np.ndarray, fps: float, ratio: tuple[int, int], unet, vae, num_global: int,
                     mutation: str | None = None) -> torch.Tensor:
    """The latent each frame finally shows ``[T, 4, h, w]`` (its last writer), the official way."""
    total = len(frames)
    scheduler = PNDMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                              beta_schedule="scaled_linear", skip_prk_steps=True, set_alpha_to_one=False,
                              steps_offset=1)
    filled, boxed, pixel_mask = _square_canvases(frames, ratio, mutation)
    factor = 2 ** (len(vae.config.block_out_channels) - 1)  # nearest sampling at index factor * i
    latent_mask = torch.from_numpy(pixel_mask[::factor, ::factor].astype(np.float32))
    global_ids = [int(i) for i in np.floor(np.linspace(0, total - 1, num_global))]
    global_pixels = torch.stack([
        torch.nn.functional.interpolate(torch.from_numpy(frames[i]).permute(2, 0, 1)[None].float() / 255,
                                        size=(SIDE, SIDE), mode="bilinear", antialias=True)[0]
        for i in global_ids]) * 2 - 1
    stored: dict[int, torch.Tensor] = {}
    shown: dict[int, torch.Tensor] = {}
    window_count = 0
    for stride in ([15, 5, 1] if total >= 50 else [1]):
        candidates = list(range(0, total, stride))
        start = 0
        while start < total // stride - 1:
            real = candidates[start: start + 16]
            window = real + [total - 1] * (16 - len(real))
            with torch.no_grad():
                ori = _encode(vae, _signed([filled[f] for f in window]), [f"posterior:prefill:{f}" for f in window],
                              mutation)
                masked = _encode(vae, _signed([boxed[f] for f in window]),
                                 [f"posterior:letterbox:{f}" for f in window], mutation)
                black = _encode(vae, _signed([np.zeros_like(boxed[0])]), ["posterior:black:0"], mutation)
                global_latents = _encode(vae, global_pixels, [f"posterior:global:{j}" for j in range(num_global)],
                                         mutation)
            to_clip = lambda x: x.permute(1, 0, 2, 3)[None]  # noqa: E731  [16, 4, h, w] -> [1, 4, 16, h, w]
            ori, masked = to_clip(ori), to_clip(masked)
            uncond = to_clip(black.expand(16, -1, -1, -1)).clone()
            mask = latent_mask[None, None, None].repeat(1, 1, 16, 1, 1)
            uncond_mask = torch.ones_like(mask)
            for p, f in enumerate(window):
                if f in stored:
                    masked[:, :, p] = stored[f]
                    mask[:, :, p] = 0
                    uncond[:, :, p] = stored[f]
                    uncond_mask[:, :, p] = 0
            scheduler.set_timesteps(STEPS)
            timesteps = scheduler.timesteps
            seed = SEED + window_count if mutation == "no_reseed" else SEED
            noise = torch.randn(ori.shape, generator=torch.Generator().manual_seed(seed))
            latents = scheduler.add_noise(ori, noise, timesteps[1:2])
            cond_lat = torch.cat([uncond, masked, uncond, masked])
            cond_mask = torch.cat([uncond_mask, mask, uncond_mask, mask])
            for t in timesteps[1:]:
                x_in = torch.cat([latents.repeat(4, 1, 1, 1, 1), cond_lat, cond_mask], dim=1)
                with torch.no_grad():
                    e0, e1, _, e3 = unet(x_in, t, b=1, g=num_global, f=16, do_classfier=4,
                                         encoder_hidden_states=global_latents, fps=fps // stride).sample.chunk(4)
                eps = e0 + GUIDANCE * (e1 - e0) + PREVIOUS_GUIDANCE * (e3 - e1)
                latents = scheduler.step(eps, t, latents).prev_sample
            for p, f in enumerate(real):
                shown[f] = latents[0, :, p]  # later windows overwrite the frame files
            for p, f in enumerate(window):
                stored.setdefault(f, latents[:, :, p])  # first writer wins
            start += 15
            window_count += 1
    return torch.stack([shown[f] for f in range(total)])


@pytest.fixture(scope="module")
def official_folders(tmp_path_factory, tiny_pipeline) -> tuple[str, str]:
    """The tiny UNet and codec as separate folders, as the released checkpoint comes (``--unet DIR --vae DIR``)."""
    folder = tmp_path_factory.mktemp("official")
    tiny_pipeline.unet.save_pretrained(folder / "unet")
    tiny_pipeline.vae.save_pretrained(folder / "vae")
    return str(folder / "unet"), str(folder / "vae")


@pytest.fixture(scope="module")
def official_pipeline(official_folders) -> M3DDMPipeline:
    unet, vae = official_folders
    return M3DDMPipeline.load(unet=unet, vae=vae)


def _clip(total: int) -> np.ndarray:
    """A moving smooth pattern, 64 x 96 (landscape, so 9:16 grows it top and bottom)."""
    y, x = np.mgrid[0:64, 0:96].astype(np.float32)
    frames = [np.stack([127 + 120 * np.sin((x + 3 * t) / 9), 127 + 120 * np.cos((y - 2 * t) / 7),
                        127 + 100 * np.sin((x + y + t) / 13)], -1) for t in range(total)]
    return np.clip(frames, 0, 255).astype(np.uint8)


@functools.cache
def _pipeline_latents(pipe: M3DDMPipeline, total: int, fps: float) -> torch.Tensor:
    frames = _clip(total)
    options = OutpaintOptions(ratio=9 / 16, official_compat=True, canvas="square", scheduler="pndm", steps=STEPS,
                              size=SIDE, seed=SEED,
                              guidance_context=GUIDANCE, guidance_global=PREVIOUS_GUIDANCE, init="prefill",
                              strength=1.0, noise_share=0.0)
    _, latents, _ = pipe.outpaint_latents(ArraySource(frames, fps), options)
    return latents


@pytest.mark.parametrize("total", [20, 50, 100])
def test_official_compat_is_the_official_driver(official_pipeline, total):
    frames = _clip(total)
    fps = 29.97  # no snapping: the driver conditions on fps // stride = 29, 5, 1
    pipe = official_pipeline
    ours = _pipeline_latents(pipe, total, fps)
    reference = reference_driver(frames, fps, (9, 16), pipe.unet, pipe.vae, pipe.config.num_global_frames)
    assert ours.shape == reference.shape
    assert (ours - reference).abs().max().item() < 1e-4


@pytest.mark.parametrize("mutation", ["no_reseed", "posterior_mean", "area_resize"])
def test_the_reference_notices_a_changed_step(official_pipeline, mutation):
    """A test of the test: the reference with one step done differently no longer matches."""
    frames = _clip(20)
    pipe = official_pipeline
    ours = _pipeline_latents(pipe, 20, 29.97)
    changed = reference_driver(frames, 29.97, (9, 16), pipe.unet, pipe.vae, pipe.config.num_global_frames, mutation)
    assert (ours - changed).abs().max().item() > 1e-3


def test_guides_show_their_regeneration_and_a_resumed_run_keeps_it(official_pipeline, tmp_path):
    """Guide frames show the last window that wrote them (not the latents the later windows were guided by), and
    an interrupted run resumes to the same latents: the shown ones are saved with the generated ones."""
    from m3ddm.jobs import generate_job

    pipe = official_pipeline
    source = ArraySource(_clip(31), 24)
    options = OutpaintOptions(ratio=9 / 16, official_compat=True, canvas="square", scheduler="pndm", steps=STEPS,
                              size=SIDE, seed=SEED, strides=(15, 1), batch_windows=1)
    _, full, _ = pipe.outpaint_latents(source, options)
    seen = []

    def crash_after_two(window):  # the key-frame window and the first stride-1 window
        seen.append(window.id)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate_job(pipe, source, options, work_dir=tmp_path / "work", on_window=crash_after_two)
    _, resumed, _ = generate_job(pipe, source, options, work_dir=tmp_path / "work", resume=True)
    assert torch.equal(full, resumed)
    # frame 0 was a guide of the first stride-1 window: it shows that window's re-generation, not the key frame
    stored = {}
    hooks = GenerationHooks(after_batch=lambda generated, done, batch: stored.update(latents=generated.clone()))
    shown, _ = pipe.generate(pipe.prepare(source, options), hooks=hooks)
    assert torch.equal(shown, full)
    assert (full[0] - stored["latents"][0]).abs().max() > 1e-3
    fresh = [f for f in range(31) if f not in (0, 15, 30)]  # frames no later window re-generates
    assert torch.equal(full[fresh], stored["latents"][fresh])


@pytest.mark.slow
def test_an_interrupted_official_run_resumed_through_the_cli_writes_the_same_file(official_folders, tmp_path):
    """The user's file: an ``--official-compat`` run crashed after two windows and resumed with ``--resume`` is the
    same file, byte for byte, as the uninterrupted run (the frames shown by guide windows are in the saved state)."""
    unet, vae = official_folders
    video = tmp_path / "in.mp4"
    write_video(video, list(_clip(31)), 24, crf=12)
    common = [str(video), "--ratio", "9:16", "--unet", unet, "--vae", vae, "--official-compat", "--scheduler", "pndm",
              "--steps", str(STEPS), "--size", str(SIDE), "--seed", str(SEED), "--strides", "15,1",
              "--batch-windows", "1", "--quiet", "--threads", "1"]
    whole = run_cli("outpaint", *common, "-o", str(tmp_path / "whole.mp4"))
    assert whole.returncode == 0, whole.stderr
    seen = []

    def crash_after_two(window):  # the key-frame window and the first stride-1 window
        seen.append(window.id)
        if len(seen) == 2:
            raise Crash

    options = OutpaintOptions(ratio=9 / 16, official_compat=True, canvas="square", scheduler="pndm", steps=STEPS,
                              size=SIDE, seed=SEED, strides=(15, 1), batch_windows=1)
    pipe = M3DDMPipeline.load(unet=unet, vae=vae)
    crash_in_process(lambda: outpaint_file(pipe, video, tmp_path / "resumed.mp4", options, work_dir=tmp_path / "work",
                                           on_window=crash_after_two))
    assert not (tmp_path / "resumed.mp4").exists()
    resumed = run_cli("outpaint", *common, "--work-dir", str(tmp_path / "work"), "--resume",
                      "-o", str(tmp_path / "resumed.mp4"))
    assert resumed.returncode == 0, resumed.stderr
    assert (tmp_path / "resumed.mp4").read_bytes() == (tmp_path / "whole.mp4").read_bytes()

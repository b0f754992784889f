"""The training loop (paper section 3.2) on accelerate: one process or many (``accelerate launch``).

Determinism and exact resume: every random draw is derived from the config seed and counters, never from
history: data samples from ``(seed, sample number)`` (see ``data.py``), noise/timesteps/posterior samples from
``(seed, step, micro-step, rank)``. A checkpoint stores the model, optimizer, LR schedule, EMA, gradient scaler,
the python/numpy/torch RNG states of every process (accelerate's ``save_state``) and the step counter, so a run
interrupted and resumed reaches the same weights, bit for bit on CPU, as one that never stopped.

Non-finite losses: agreed on by all processes, the step is skipped (no optimizer/EMA update) with a warning;
``train.max_bad_steps`` such steps in a row abort the run with a ``UserError`` naming the last good checkpoint.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader, default_collate

from m3ddm.errors import UserError
from m3ddm.training import checkpoint as ckpt
from m3ddm.training.config import TrainConfig
from m3ddm.training.data import (
    ClipDataset,
    ClipSettings,
    LatentCache,
    LatentClipDataset,
    SampleNumberBatches,
    VideoEntry,
    build_latent_cache,
    discover_videos,
    index_videos,
    load_index,
    save_index,
    synthetic_entries,
    usable_entries,
)
from m3ddm.training.ema import EMA
from m3ddm.training.objective import (
    Denoiser,
    build_model_batch,
    diffusion_loss,
    draw_noise,
    make_noise_pool,
    step_generator,
    training_noise_scheduler,
)
from m3ddm.utils.pixels import signed_to_uint8, to_signed

logger = logging.getLogger("m3ddm.train")
PREVIEW_SAMPLE = 2**50  # sample number of the fixed validation clip, far beyond any training sample


@dataclass
class TrainResult:
    output_dir: Path
    step: int
    losses: list[float] = field(default_factory=list)  # mean loss of every step run in this call
    clips_per_second: float = 0.0
    skipped_videos: int = 0
    bad_steps: int = 0
    rank_weight_digests: list[str] = field(default_factory=list)


# --- building blocks ----------------------------------------------------------------------------------

def build_codec(config: TrainConfig):
    from m3ddm.codecs import LatentCodec

    codec = LatentCodec.from_pretrained(config.codec.path) if config.codec.path else LatentCodec.tiny(
        config.codec.seed)
    codec.requires_grad_(False)
    return codec.eval()


def build_unet(config: TrainConfig, latent_channels: int = 4):
    """A fresh preset, a fine-tuning checkpoint, or an inflated SD UNet, with the variant's global context.

    A fresh UNet takes the codec's latents: ``latent_channels`` out, noisy + masked context + mask in."""
    from m3ddm.models import M3DDMUNet

    m = config.model
    global_context = m.variant == "m3ddm"
    overrides = dict(m.overrides)
    channels = {"in_channels": 2 * latent_channels + 1, "out_channels": latent_channels}
    try:
        if m.init == "scratch":
            unet = M3DDMUNet.from_preset(m.preset, global_context=global_context, **{**channels, **overrides})
        elif m.init == "checkpoint":
            unet = M3DDMUNet.from_pretrained(m.path)
            if bool(unet.config.global_context) != global_context:
                raise UserError(f"model.path {m.path} was trained with global_context="
                                f"{unet.config.global_context}, which does not fit variant {m.variant}")
        else:
            unet = M3DDMUNet.from_sd_unet2d(m.path, global_context=global_context, **overrides)
    except (ValueError, TypeError) as exc:
        raise UserError(f"cannot build the UNet: {str(exc).splitlines()[0]}") from None
    if m.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    return unet


def clip_settings(config: TrainConfig) -> ClipSettings:
    d = config.data
    return ClipSettings(num_frames=d.num_frames, size=d.size, stride_range=d.stride_range,
                        crop_scale=d.crop_scale, crop_aspect=d.crop_aspect, num_global_frames=d.num_global_frames,
                        global_frames=config.model.variant == "m3ddm", short_videos=d.short_videos)


def collect_entries(config: TrainConfig) -> tuple[list[VideoEntry], list[tuple[str, str]]]:
    """Readable videos (or synthetic ones) and the unreadable files. UserError when nothing is usable."""
    d = config.data
    if d.root is None:
        s = d.synthetic
        if s is None:
            raise UserError("data: give data.root or data.synthetic")
        return synthetic_entries(s.num_videos, s.num_frames, s.height, s.width, s.fps), []
    saved = load_index(d.index_file, d.root) if d.index_file else None
    if saved is not None:
        entries, failures = saved
        paths = [e.path for e in entries] + [f[0] for f in failures]
    else:
        paths = discover_videos(d.root)
        if not paths:
            raise UserError(f"no videos (mp4, avi, mov, mkv, webm) or frame folders found under {d.root}")
        entries, failures = index_videos(paths, frame_folder_fps=d.frame_folder_fps,
                                         exact_count=d.exact_frame_counts)
        if d.index_file and entries:
            save_index(d.index_file, d.root, entries, failures)
    if not entries:
        path, reason = failures[0]
        raise UserError(f"none of the {len(paths)} videos under {d.root} could be read (e.g. {path}: {reason})")
    usable = usable_entries(entries, clip_settings(config))
    if not usable:
        raise UserError(f"every video under {d.root} is shorter than data.num_frames={d.num_frames} frames "
                        "(set data.short_videos: pad to use them)")
    return usable, failures


def check_sizes(config: TrainConfig, codec, unet) -> tuple[int, int]:
    """Latent (h, w) of the training size; UserError if the UNet or the global encoder cannot take it."""
    h, w = config.data.size
    f = codec.downsample_factor
    if h % f or w % f:
        raise UserError(f"data.size {h}x{w} must be a multiple of the codec's factor {f}")
    lh, lw = h // f, w // f
    m = getattr(unet, "latent_multiple", 1)  # the UNet's own constraint, when it declares one
    if lh % m or lw % m:
        raise UserError(f"data.size {h}x{w} gives {lh}x{lw} latents; this UNet needs multiples of {m} "
                        f"(pixel sizes that are multiples of {m * f})")
    if unet.config.global_context and min(lh, lw) < 5:
        raise UserError(f"data.size {h}x{w} gives {lh}x{lw} global latents; the global encoder needs >= 5x5")
    return lh, lw


def weight_digest(module: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, p in module.named_parameters():
        digest.update(name.encode())
        digest.update(p.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --- the loop -------------------------------------------------------------------------------------------

def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    max_steps: int | None = None,
    output_dir: str | os.PathLike | None = None,
    warm_start: str | os.PathLike | None = None,
    on_step_end: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Train (or continue training) and export an inference-ready folder. See the module docstring.

    ``warm_start``: a weights snapshot (``m3ddm.training.snapshot``) that a fresh run starts from; ignored when
    ``resume`` finds a checkpoint in the output folder (that checkpoint is newer).

    ``on_step_end(step, loss)`` is called on every process after each optimizer step (tests use it to simulate
    a crash).
    """
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration, gather_object, set_seed
    from diffusers.optimization import get_scheduler
    from tqdm.auto import tqdm

    config.validate()
    t = config.train
    out = Path(output_dir or t.output_dir)
    max_steps = int(max_steps if max_steps is not None else t.max_steps)
    if max_steps < 1:
        raise UserError("--max-steps must be >= 1")
    existing = ckpt.latest_checkpoint(out)
    if existing is not None and not resume:
        raise UserError(f"{out} already holds checkpoints (latest: {existing.name}); pass --resume to continue "
                        "or choose another --output-dir")

    if t.num_threads:
        torch.set_num_threads(t.num_threads)
    # Everything that can be a user mistake is checked before the first step.
    codec = build_codec(config)
    settings = clip_settings(config)
    probs = config.masking.for_variant(config.model.variant)
    entries, failures = ([], []) if config.data.latent_cache and _cache_ready(config) else collect_entries(config)
    set_seed(t.seed)
    unet = build_unet(config, codec.latent_channels)
    latent_hw = check_sizes(config, codec, unet)

    # accelerate keeps one process-wide state; a second train() call in the same process (tests, notebooks) with
    # another mixed-precision setting must not be refused. The process group (PartialState) is kept.
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()
    try:
        accelerator = Accelerator(
            mixed_precision=t.mixed_precision, cpu=t.cpu, log_with="tensorboard",
            project_config=ProjectConfiguration(project_dir=str(out), logging_dir=str(out / "logs")),
        )
    except ValueError as exc:
        raise UserError(f"cannot set up training (train.mixed_precision={t.mixed_precision}?): "
                        f"{_first_line(exc)}") from None
    main = accelerator.is_main_process
    rank, world = accelerator.process_index, accelerator.num_processes
    device = accelerator.device
    for path, reason in failures:
        if main:
            warnings.warn(f"skipping unreadable video {path}: {reason}", RuntimeWarning, stacklevel=2)

    if main:
        out.mkdir(parents=True, exist_ok=True)
        ckpt.clear_temporary(out)
        (out / "training_config.yaml").write_text(config.to_yaml())
    codec.to(device)
    dataset = _dataset(config, settings, probs, entries, codec, accelerator)
    black_latent = (dataset.black_latent() if isinstance(dataset, LatentClipDataset)
                    else codec.encode(-torch.ones(1, 3, *config.data.size, device=device))[0]).to(device)

    optimizer = torch.optim.AdamW(
        unet.parameters(), lr=config.optim.learning_rate, betas=(config.optim.adam_beta1, config.optim.adam_beta2),
        eps=config.optim.adam_epsilon, weight_decay=config.optim.weight_decay)
    ema = EMA(unet, t.ema_decay, t.ema_warmup) if t.ema_decay else None
    warm = None
    if warm_start is not None and not (resume and existing is not None):
        from m3ddm.training.snapshot import load_snapshot

        warm = load_snapshot(warm_start, unet, ema)  # in place: the optimizer keeps its parameters
        if warm.step >= max_steps:
            raise UserError(f"the snapshot {warm_start} is at step {warm.step}; max_steps={max_steps} leaves "
                            "nothing to train")
    # A warm start's fresh schedule spans the steps left (a decay reaches its end at max_steps); a resumed run
    # rebuilds the span its checkpoint started with.
    resumed = ckpt.TrainerState.from_file(existing / ckpt.STATE_FILE) if resume and existing is not None else None
    lr_origin = resumed.lr_origin if resumed is not None else warm.step if warm is not None else 0
    lr_scheduler = get_scheduler(config.optim.lr_scheduler, optimizer=optimizer,
                                 num_warmup_steps=config.optim.lr_warmup_steps,
                                 num_training_steps=max(1, max_steps - lr_origin))
    model, optimizer = accelerator.prepare(Denoiser(unet), optimizer)
    unet = accelerator.unwrap_model(model).unet
    if ema is not None:
        ema.to(device)
        accelerator.register_for_checkpointing(ema)
    accelerator.register_for_checkpointing(lr_scheduler)

    state = ckpt.TrainerState(world_size=world)
    if resumed is not None:
        try:
            accelerator.load_state(str(existing))
        except (RuntimeError, KeyError, ValueError) as exc:
            raise UserError(f"cannot resume from {existing}: it does not match this config "
                            f"({_first_line(exc)})") from None
        state = resumed
        if state.step > max_steps:
            raise UserError(f"cannot resume from {existing}: it is at step {state.step}, beyond max_steps="
                            f"{max_steps}")
        if state.world_size != world and main:
            warnings.warn(f"resuming a {state.world_size}-process run with {world} process(es): training goes on, "
                          "but not bit-identically to an uninterrupted run", RuntimeWarning, stacklevel=2)
        state.world_size = world
        if main:
            logger.info("resuming from %s (step %d)", existing, state.step)
    elif warm is not None:
        # the numbering goes on (sample numbers, checkpoint names); the optimizer and LR schedule start afresh
        state.step, state.clips_seen, state.lr_origin = warm.step, warm.clips_seen, warm.step
        if main:
            logger.info("warm start from %s (step %d; fresh optimizer, LR warm-up again)", warm_start, warm.step)
    elif resume and main:
        logger.info("no checkpoint in %s: starting from scratch", out)

    accum = t.gradient_accumulation_steps
    loader = DataLoader(
        dataset,
        batch_sampler=SampleNumberBatches(t.batch_size, state.step * accum, rank, world),
        num_workers=config.data.num_workers,
        persistent_workers=False,
    )
    pool = None
    if t.fixed_noise_pool:
        shape = (codec.latent_channels, config.data.num_frames, *latent_hw)
        pool = make_noise_pool(t.fixed_noise_pool, shape, t.seed)
    noise_scheduler = training_noise_scheduler(config.model.schedule())
    accelerator.init_trackers("m3ddm")

    def save(step: int) -> None:
        tmp = ckpt.temporary_checkpoint_dir(out, step)
        if main:
            shutil.rmtree(tmp, ignore_errors=True)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(tmp))
        accelerator.wait_for_everyone()
        if main:
            (tmp / "training_config.yaml").write_text(config.to_yaml())
            ckpt.finalize_checkpoint(tmp, step, state)
            ckpt.prune_checkpoints(out, t.checkpoints_to_keep)
        accelerator.wait_for_everyone()

    result = TrainResult(out, state.step)
    progress = tqdm(total=max_steps, initial=state.step, disable=not main, desc="train", dynamic_ncols=True)
    window: list[float] = []
    data_iter = iter(loader)
    clips_this_run = 0
    started = time.perf_counter()
    try:
        while state.step < max_steps:
            step = state.step
            model.train()
            bad = False
            step_loss = 0.0
            for micro in range(accum):
                batch = next(data_iter)
                gen = step_generator(t.seed, step, micro, rank)
                mb = build_model_batch(batch, codec, black_latent, device=device, generator=gen,
                                       sample_posterior=config.codec.sample_posterior,
                                       fill=config.model.fills_hidden_context,
                                       relative=config.model.relative_to_context)
                draw = draw_noise(mb.latents.shape, gen, pool, focus=config.model.timestep_focus())
                sync = accelerator.no_sync(model) if micro < accum - 1 else contextlib.nullcontext()
                with sync:
                    loss = diffusion_loss(model, noise_scheduler, mb, draw, config.model.min_snr_gamma)
                    # One collective per micro-step: every process learns every loss (for the NaN guard and
                    # logging) and the skipped-video count.
                    stats = torch.stack([loss.detach().float(), batch["skipped"].sum().float().to(device)])
                    stats = accelerator.gather(stats[None]).reshape(-1, 2)
                    finite = bool(torch.isfinite(stats[:, 0]).all())
                    state.skipped_videos += int(stats[:, 1].sum())
                    if finite:
                        accelerator.backward(loss / accum)
                    else:
                        bad = True
                step_loss += float(stats[:, 0].mean()) / accum
            if bad:
                state.bad_steps_total += 1
                state.bad_step_streak += 1
                if main:
                    warnings.warn(f"step {step + 1}: non-finite loss, update skipped "
                                  f"({state.bad_step_streak} in a row)", RuntimeWarning, stacklevel=2)
                if state.bad_step_streak >= t.max_bad_steps:
                    last = ckpt.latest_checkpoint(out)
                    raise UserError(f"training diverged: {state.bad_step_streak} non-finite losses in a row at step "
                                    f"{step + 1} (try a lower optim.learning_rate); last good checkpoint: "
                                    f"{last if last else 'none'}")
            else:
                state.bad_step_streak = 0
                if config.optim.max_grad_norm:
                    accelerator.clip_grad_norm_(model.parameters(), config.optim.max_grad_norm)
                optimizer.step()
                if ema is not None:
                    ema.update(unet)
            optimizer.zero_grad(set_to_none=True)
            with warnings.catch_warnings():  # a skipped first step makes torch warn about the call order
                warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler")
                lr_scheduler.step()
            state.step += 1
            state.clips_seen += t.batch_size * accum * world
            clips_this_run += t.batch_size * accum * world
            result.losses.append(step_loss)
            if math.isfinite(step_loss):
                window.append(step_loss)
            progress.update(1)

            if state.step % t.log_every == 0 or state.step == max_steps:
                elapsed = max(time.perf_counter() - started, 1e-9)
                logs = {"train/loss": sum(window) / max(1, len(window)), "train/lr": lr_scheduler.get_last_lr()[0],
                        "data/skipped_videos": state.skipped_videos, "train/clips_per_s": clips_this_run / elapsed}
                accelerator.log(logs, step=state.step)
                progress.set_postfix(loss=f"{logs['train/loss']:.4f}", lr=f"{logs['train/lr']:.2e}")
                window.clear()
            if state.step % t.checkpoint_every == 0 or state.step == max_steps:
                save(state.step)
            if t.sample_every and state.step % t.sample_every == 0 and main:
                _log_preview(config, accelerator, unet, ema, codec, dataset, black_latent, state.step, out)
            if on_step_end is not None:
                on_step_end(state.step, step_loss)
    finally:
        progress.close()

    elapsed = max(time.perf_counter() - started, 1e-9)
    result.step = state.step
    result.clips_per_second = clips_this_run / elapsed
    result.skipped_videos = state.skipped_videos
    result.bad_steps = state.bad_steps_total
    result.rank_weight_digests = list(gather_object([weight_digest(unet)]))
    if main:
        from m3ddm.training.export import export_model

        if len(set(result.rank_weight_digests)) > 1:
            warnings.warn("processes ended with different weights", RuntimeWarning, stacklevel=2)
        export_model(out, unet, codec, config.to_yaml(), ema, num_global_frames=config.data.num_global_frames,
                     schedule=config.model.schedule(), pipeline_settings=config.pipeline_settings())
        summary = {"step": result.step, "clips_per_second": result.clips_per_second,
                   "skipped_videos": result.skipped_videos, "bad_steps": result.bad_steps,
                   "num_processes": world, "rank_weight_digests": result.rank_weight_digests,
                   "ema_in_export": ema is not None}
        (out / "final_state.json").write_text(json.dumps(summary, indent=1))
    accelerator.wait_for_everyone()
    # A second barrier before the DDP model (and its gloo process group) is freed: gloo's worker thread may still be
    # releasing the first barrier's earlier work, which holds Python tensors and needs the GIL, while this thread
    # frees the group and joins that worker holding the GIL. Seen as a hang at exit under load (py-spy: the main
    # thread in ~ProcessGroupGloo's join, the worker in ~AsyncAllgatherWork waiting for the GIL). Waiting here
    # releases the GIL until the worker is past that work.
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return result


# --- helpers -------------------------------------------------------------------------------------------

def _cache_ready(config: TrainConfig) -> bool:
    return (Path(config.data.latent_cache) / "index.json").is_file()


def _dataset(config: TrainConfig, settings: ClipSettings, probs, entries, codec, accelerator):
    d = config.data
    seed = config.train.seed
    if d.latent_cache:
        cache_size = tuple(d.latent_cache_size or d.size)
        if not _cache_ready(config):
            if accelerator.is_main_process:
                logger.info("building the latent cache in %s", d.latent_cache)
                synthetic_seed = d.synthetic.seed if d.synthetic else 0
                build_latent_cache(d.latent_cache, entries, codec, cache_size, synthetic_seed=synthetic_seed)
            accelerator.wait_for_everyone()
        cache = LatentCache(d.latent_cache)
        if tuple(cache.size) != cache_size or cache.factor != codec.downsample_factor:
            raise UserError(f"latent cache {d.latent_cache} was built for size {cache.size} with factor "
                            f"{cache.factor}; this config needs {cache_size} and {codec.downsample_factor}")
        return LatentClipDataset(d.latent_cache, settings, probs, seed=seed)
    synthetic_seed = d.synthetic.seed if d.synthetic else 0
    return ClipDataset(entries, settings, probs, seed=seed, synthetic_seed=synthetic_seed)


@torch.no_grad()
def _log_preview(config, accelerator, unet, ema, codec, dataset, black_latent, step: int, out: Path) -> None:
    """Denoise the fixed validation clip with the EMA weights; log it to TensorBoard and write an mp4."""
    import copy

    from m3ddm.training.preview import denoise_preview, preview_grid

    batch = default_collate([dataset[PREVIEW_SAMPLE]])
    gen = step_generator(config.train.seed, PREVIEW_SAMPLE, 0, 0)
    mb = build_model_batch(batch, codec, black_latent, device=accelerator.device, generator=gen,
                           fill=config.model.fills_hidden_context, relative=config.model.relative_to_context)
    model = unet
    if ema is not None:
        model = copy.deepcopy(unet)
        ema.copy_to(model)
    was_training = model.training
    model.eval()
    generated = denoise_preview(model, codec, mb, steps=config.train.sample_steps, seed=config.train.seed,
                                schedule=config.model.schedule())
    model.train(was_training)
    if "frames" in batch:  # show the real pixels, not their round trip through the codec
        original = to_signed(batch["frames"][0]).to(generated.device)
        masked = torch.where(batch["mask"][0].to(original.device) > 0.5, -1.0, original)
        guides = batch["guides"][0].to(original.device)
        masked[guides] = original[guides]  # guide frames are given whole
    else:
        original = codec.decode(mb.latents[0].transpose(0, 1)).float()
        masked = codec.decode(mb.context[0].transpose(0, 1)).float()
    grid = preview_grid(original, masked, generated)
    try:
        writer = accelerator.get_tracker("tensorboard", unwrap=True)
        writer.add_image("preview", grid, step, dataformats="CHW")
    except Exception as exc:  # a logging hiccup must not stop training
        warnings.warn(f"could not log the preview: {_first_line(exc)}", RuntimeWarning, stacklevel=2)
    try:
        from m3ddm.io import write_video
        from m3ddm.utils.atomic import atomic_path

        frames = torch.cat([masked, generated], dim=-1)
        frames = signed_to_uint8(frames)
        with atomic_path(out / "samples" / f"step-{step:08d}.mp4") as tmp:
            write_video(tmp, list(frames), fps=max(1.0, float(mb.fps[0])))
    except Exception as exc:
        warnings.warn(f"could not write the preview video: {_first_line(exc)}", RuntimeWarning, stacklevel=2)

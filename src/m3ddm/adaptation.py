"""Per-video adaptation (input-specific tuning): teach a copy of the UNet the clip at hand before painting it.

The idea is MOTIA's ("Be-Your-Outpainter", Wang et al. 2024): the input's own known region is training data.
Random crops inside the known region have random borders hidden by the paper's mask strategies
(``training.masking.sample_mask_plan``), and the model learns to fill them back with the training objective
(``training.objective``), so it paints this video's textures, colours and motion into the new border instead of
an average of its training data. Only the data source differs from training:

    the video's canvas latents (encoded once by the pipeline) ──known cells──► random 16-frame clips at the plan's
    strides ──random crop of the known block──► mask plan inside the crop (latent-space masking, as the latent cache)
    ──build_model_batch / diffusion_loss──► a LoRA adapter (peft) or a full fine-tune of a copy of the UNet

The base UNet is never changed. Every random draw is a pure function of (seed, step), and the trainable tensors and
the optimizer state are checkpointed in the work folder, so the same seed gives the same adapter and a run resumed
after a crash continues where it stopped with the same result.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from m3ddm.errors import UserError
from m3ddm.planning import DEFAULT_WINDOW, conditioning_fps, global_frame_indices
from m3ddm.schedule import NUM_TRAIN_TIMESTEPS, NoiseSchedule
from m3ddm.training.data import latent_clip_sample, sample_clip_indices
from m3ddm.training.masking import MaskProbabilities, plan_pixel_mask, sample_mask_plan
from m3ddm.training.objective import (
    Denoiser,
    build_model_batch,
    diffusion_loss,
    draw_noise,
    step_generator,
    training_noise_scheduler,
)
from m3ddm.utils.atomic import atomic_path

if TYPE_CHECKING:
    from m3ddm.models import M3DDMUNet
    from m3ddm.progress import Reporter

ADAPT_METHODS = ("lora", "full")
ADAPTER_FORMAT = "m3ddm-adapter/1"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter.safetensors"
# LoRA goes on every attention projection and on the spatial and temporal convolutions of the resnets.
LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "spatial_conv", "temporal_conv")
# The crops' borders hidden while adapting: the paper's strategies, with a lower share of dropped context than
# training (the model already knows the unconditional task; this pass is about the video's content).
ADAPT_MASKS = MaskProbabilities(ratio_range=(0.15, 0.6), p_drop_context=0.1, p_drop_global=0.1)
_ADAPT_SALT = 0xADA9
# The smallest crop side in latent cells: the UNet's deepest level still gets a 3x3 neighbourhood (as inference's
# smallest canvas, 6 cells on the short side).
MIN_CROP_CELLS = 6


@dataclass(frozen=True)
class AdaptSettings:
    """How to tune the model on the input video (``steps`` 0 = off)."""

    steps: int = 0
    method: str = "lora"
    learning_rate: float | None = None  # None = the method's default (DEFAULT_LEARNING_RATES)
    rank: int = 8  # LoRA rank (alpha = rank)
    batch_size: int = 1
    min_crop: float = 0.6  # crops cover this share of the known block's side, up to all of it
    min_snr_gamma: float | None = 5.0

    def __post_init__(self) -> None:
        if self.steps < 0:
            raise UserError(f"--adapt takes a number of steps >= 0, got {self.steps}")
        if self.method not in ADAPT_METHODS:
            raise UserError(f"--adapt-method must be one of {', '.join(ADAPT_METHODS)}, got {self.method!r}")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise UserError(f"--adapt-lr must be positive, got {self.learning_rate}")
        if self.rank < 1:
            raise UserError(f"--adapt-rank must be at least 1, got {self.rank}")
        if self.batch_size < 1:
            raise UserError(f"--adapt-batch must be at least 1, got {self.batch_size}")
        if not 0 < self.min_crop <= 1:
            raise UserError(f"the adaptation crop share must be in (0, 1], got {self.min_crop}")

    @property
    def lr(self) -> float:
        return self.learning_rate if self.learning_rate is not None else DEFAULT_LEARNING_RATES[self.method]

    @property
    def unet_call_equivalents(self) -> int:
        """The tuning's work in UNet calls of one window: a forward and a backward pass (about two forwards) per
        clip. An upper bound: the clips are crops of the known region, smaller than the canvas."""
        return 3 * self.steps * self.batch_size


DEFAULT_LEARNING_RATES = {"lora": 1e-3, "full": 1e-4}


@dataclass
class VideoLatents:
    """What adaptation reads of the encoded video: the canvas latents and where the known cells are."""

    latents: torch.Tensor  # [N, C, h, w] canvas latents (their known cells are the source's content)
    latent_mask: torch.Tensor  # [h, w], 1 = to generate
    black: torch.Tensor  # [C, h, w] the black-frame latent (masked cells of the context)
    fps: float
    strides: tuple[int, ...]
    num_global: int
    global_context: bool
    fill_hidden: bool = False  # the model's context has its hidden cells filled (context_encoding: latent_fill)
    relative: bool = False  # the model denoises relative to its context (m3ddm.conditioning.to_relative)


def known_block(latent_mask: torch.Tensor) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the known cells' bounding box, less one cell on each side that borders the
    mask: those cells were encoded beside the letterbox or the pre-fill and do not show the source alone."""
    known = (latent_mask < 0.5).nonzero()
    if known.numel() == 0:
        raise UserError("--adapt needs a known region, but the whole canvas is to be generated")
    top, left = (int(v) for v in known.min(0).values)
    bottom, right = (int(v) + 1 for v in known.max(0).values)
    h, w = latent_mask.shape
    top += top > 0
    left += left > 0
    bottom -= bottom < h
    right -= right < w
    if min(bottom - top, right - left) < MIN_CROP_CELLS:
        raise UserError(f"--adapt: the known region is too small to learn from (under {MIN_CROP_CELLS} latent "
                        "cells on a side); use a larger --size")
    return top, left, bottom - top, right - left


def draw_clip(video: VideoLatents, seed: int, step: int, batch_size: int, min_crop: float) -> dict[str, torch.Tensor]:
    """One adaptation batch in ``LatentClipDataset``'s format: a pure function of (seed, step)."""
    rng = np.random.default_rng([seed, step, _ADAPT_SALT])
    top, left, kh, kw = known_block(video.latent_mask)
    ch = int(rng.integers(max(MIN_CROP_CELLS, math.ceil(min_crop * kh)), kh + 1))
    cw = int(rng.integers(max(MIN_CROP_CELLS, math.ceil(min_crop * kw)), kw + 1))
    y, x = int(rng.integers(top, top + kh - ch + 1)), int(rng.integers(left, left + kw - cw + 1))
    crop = video.latents[:, :, y: y + ch, x: x + cw]
    black = video.black[:, y: y + ch, x: x + cw].float()
    n = video.latents.shape[0]
    rows = []
    for _ in range(batch_size):
        stride = int(rng.choice(video.strides))  # one of the plan's strides (shortened to fit a short video)
        indices, stride = sample_clip_indices(rng, n, DEFAULT_WINDOW, (stride, stride))
        plan = sample_mask_plan(rng, DEFAULT_WINDOW, ADAPT_MASKS)
        cells = torch.from_numpy(plan_pixel_mask(plan, ch, cw))  # the plan drawn directly on latent cells
        glob = crop[global_frame_indices(n, video.num_global)] if video.global_context else None
        rows.append(latent_clip_sample(crop[indices], cells, plan, conditioning_fps(video.fps, stride), black, glob))
    batch = {key: torch.stack([row[key] for row in rows]) for key in rows[0]}
    batch["black"] = black  # one crop box for the whole batch (rows differ in frames, stride and mask)
    return batch


# ------------------------------------------------------------------------------------------------ adapters
def _base_digest(unet: torch.nn.Module) -> str:
    from m3ddm.training.loop import weight_digest

    return weight_digest(unet)


def _with_lora(unet: M3DDMUNet, rank: int, seed: int) -> M3DDMUNet:
    """A copy of ``unet`` with LoRA layers (initialised from ``seed``: B = 0, so it starts as the base model)."""
    from peft import LoraConfig, inject_adapter_in_model

    model = copy.deepcopy(unet)
    config = LoraConfig(r=rank, lora_alpha=rank, target_modules=list(LORA_TARGETS), lora_dropout=0.0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = inject_adapter_in_model(config, model)
    return model


def trainable_tensors(model: torch.nn.Module, method: str) -> dict[str, torch.nn.Parameter]:
    if method == "full":
        return dict(model.named_parameters())
    return {name: p for name, p in model.named_parameters() if "lora_" in name}


def prepare(unet: M3DDMUNet, method: str, rank: int, seed: int) -> M3DDMUNet:
    """The model adaptation trains: a copy of the base (the base's parameters are never touched)."""
    model = _with_lora(unet, rank, seed) if method == "lora" else copy.deepcopy(unet)
    trainable = trainable_tensors(model, method)
    for p in model.parameters():
        p.requires_grad_(False)
    for p in trainable.values():
        p.requires_grad_(True)
    return model.eval()  # no dropout; normalisation keeps its statistics: the task is the base model's


@dataclass
class Adapter:
    """The result of adaptation: which method, and the tensors that differ from the base model."""

    method: str
    rank: int
    tensors: dict[str, torch.Tensor]
    base: str  # digest of the base UNet it was tuned from
    steps: int

    def apply(self, unet: M3DDMUNet, check_base: bool = True) -> M3DDMUNet:
        """A copy of ``unet`` with this adapter (``unet`` itself is unchanged). ``check_base`` False skips hashing
        the base weights, for an adapter just tuned from ``unet``."""
        if check_base and _base_digest(unet) != self.base:
            raise UserError("the adapter was tuned from another model: use it with the model it was made for")
        model = prepare(unet, self.method, self.rank, seed=0)
        expected = trainable_tensors(model, self.method)
        if set(expected) != set(self.tensors):
            raise UserError("the adapter does not fit this model (its tensors have other names)")
        with torch.no_grad():
            for name, p in expected.items():
                if p.shape != self.tensors[name].shape:
                    raise UserError(f"the adapter does not fit this model ({name}: {tuple(self.tensors[name].shape)}"
                                    f" vs {tuple(p.shape)})")
                p.copy_(self.tensors[name].to(p))
        for p in model.parameters():
            p.requires_grad_(False)
        return model

    def save(self, folder: str | Path) -> None:
        """``adapter_config.json`` + ``adapter.safetensors``, written as a whole or not at all."""
        with atomic_path(Path(folder)) as tmp:
            tmp.mkdir(parents=True)
            save_file({k: v.detach().contiguous().cpu() for k, v in self.tensors.items()}, str(tmp / ADAPTER_WEIGHTS))
            meta = {"format": ADAPTER_FORMAT, "method": self.method, "rank": self.rank, "base": self.base,
                    "steps": self.steps, "targets": list(LORA_TARGETS) if self.method == "lora" else "all"}
            (tmp / ADAPTER_CONFIG).write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, folder: str | Path) -> Adapter:
        folder = Path(folder)
        config_file, weights_file = folder / ADAPTER_CONFIG, folder / ADAPTER_WEIGHTS
        if not config_file.is_file() or not weights_file.is_file():
            raise UserError(f"not an adapter folder (needs {ADAPTER_CONFIG} and {ADAPTER_WEIGHTS}): {folder}")
        try:
            meta = json.loads(config_file.read_text())
            tensors = load_file(str(weights_file))
        except (OSError, ValueError) as exc:
            raise UserError(f"unreadable adapter in {folder}: {str(exc).splitlines()[0]}") from None
        if meta.get("format") != ADAPTER_FORMAT or meta.get("method") not in ADAPT_METHODS:
            raise UserError(f"{config_file} is not an m3ddm adapter ({ADAPTER_FORMAT})")
        return cls(meta["method"], int(meta["rank"]), tensors, str(meta["base"]), int(meta["steps"]))


# ------------------------------------------------------------------------------------------- the tuning loop
class AdaptState:
    """The adaptation's checkpoint in the work folder: trainable tensors, optimizer state, steps done."""

    def __init__(self, folder: Path, fingerprint: str):
        self.folder, self.fingerprint = Path(folder), fingerprint

    @property
    def meta_file(self) -> Path:
        return self.folder / "adapt.json"

    def load(self) -> tuple[int, dict[str, torch.Tensor], dict] | None:
        if not self.meta_file.is_file():
            return None
        meta = json.loads(self.meta_file.read_text())
        if meta.get("fingerprint") != self.fingerprint:
            raise UserError(f"--resume: the work folder {self.folder} belongs to a run with other settings, input "
                            "or model; rerun without --resume to start over")
        tensors = load_file(str(self.folder / meta["tensors"]))
        optimizer = torch.load(self.folder / meta["optimizer"], weights_only=True)
        return int(meta["step"]), tensors, optimizer

    def save(self, step: int, tensors: dict[str, torch.Tensor], optimizer: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        names = {"tensors": f"adapt-{step:06d}.safetensors", "optimizer": f"adapt-{step:06d}-optimizer.pt"}
        with atomic_path(self.folder / names["tensors"]) as tmp:
            save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp))
        with atomic_path(self.folder / names["optimizer"]) as tmp:
            torch.save(optimizer, tmp)
        with atomic_path(self.meta_file) as tmp:
            tmp.write_text(json.dumps({"fingerprint": self.fingerprint, "step": step, **names}))
        for old in self.folder.glob("adapt-*"):
            if old.name not in names.values():
                old.unlink(missing_ok=True)


def adapt(
    unet: M3DDMUNet,
    video: VideoLatents,
    settings: AdaptSettings,
    schedule: NoiseSchedule,
    *,
    seed: int = 0,
    max_timestep: int = NUM_TRAIN_TIMESTEPS,
    state: AdaptState | None = None,
    resume: bool = False,
    checkpoint_every: int = 10,
    progress: Reporter | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> Adapter:
    """Tune a copy of ``unet`` on ``video`` for ``settings.steps`` steps; returns the adapter.

    ``max_timestep`` limits the noise levels to those the sampler will visit (image-to-image from a pre-fill at
    strength s only denoises from s * T). ``on_step(step, loss)`` runs after each optimizer step."""
    device = unet.device
    model = prepare(unet, settings.method, settings.rank, seed)
    trainable = trainable_tensors(model, settings.method)
    optimizer = torch.optim.AdamW(list(trainable.values()), lr=settings.lr, weight_decay=0.0)
    scheduler = training_noise_scheduler(schedule)
    denoiser = Denoiser(model)
    start = 0
    loaded = state.load() if state is not None and resume else None
    if loaded is not None:
        start, tensors, optimizer_state = loaded
        with torch.no_grad():
            for name, p in trainable.items():
                p.copy_(tensors[name].to(p))
        optimizer.load_state_dict(optimizer_state)
    counter = progress.adapting(settings.steps, start, settings.method) if progress is not None else None
    with torch.enable_grad():
        for step in range(start, settings.steps):
            batch = draw_clip(video, seed, step, settings.batch_size, settings.min_crop)
            mb = build_model_batch(batch, None, batch["black"], device=device, fill=video.fill_hidden,
                                   relative=video.relative)
            draw = draw_noise(mb.latents.shape, step_generator(seed, step, 0, _ADAPT_SALT),
                              max_timestep=max_timestep)
            loss = diffusion_loss(denoiser, scheduler, mb, draw, settings.min_snr_gamma)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(list(trainable.values()), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            done = step + 1
            if state is not None and (done % checkpoint_every == 0 or done == settings.steps):
                state.save(done, trainable, optimizer.state_dict())
            if counter is not None:
                counter.adapt_step(done, loss.item())
            if on_step is not None:
                on_step(done, loss.item())
    if counter is not None:
        counter.close()
    tensors = {name: p.detach().clone() for name, p in trainable.items()}
    return Adapter(settings.method, settings.rank, tensors, _base_digest(unet), settings.steps)


"""Training configuration: nested dataclasses loaded from YAML with strict checking.

Unknown keys, wrong types and impossible values raise one ``UserError`` naming the key, before anything is
built. Shipped configs (package data ``m3ddm/configs/<name>.yaml``) are addressed by name: ``tiny-cpu``,
``official``.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from m3ddm.errors import UserError
from m3ddm.schedule import NUM_TRAIN_TIMESTEPS, PREDICTION_TYPES, TIMESTEP_SPACINGS, NoiseSchedule
from m3ddm.training.masking import VARIANTS, MaskProbabilities

SHIPPED_CONFIGS = ("tiny-cpu", "official", "default")
INITS = ("scratch", "checkpoint", "sd")
SHORT_VIDEO_POLICIES = ("pad", "skip")
MIXED_PRECISION = ("no", "fp16", "bf16")
# What the UNet's context holds in its hidden cells: "black" (the black frame's latent, the paper) or "smooth" (a
# smooth fill from the frame's known part, m3ddm.conditioning.fill_hidden: of the latent cells with a latent cache,
# of the pixels before encoding without one, which is what the pipeline's latent_prefill gives at inference).
HIDDEN_CONTEXTS = ("black", "smooth")
LR_SCHEDULERS = ("constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial")


@dataclass
class SyntheticDataConfig:
    """In-memory synthetic videos (``m3ddm.training.synthetic``), regenerated on demand by data workers."""

    num_videos: int = 64
    num_frames: int = 48
    height: int = 96
    width: int = 96
    fps: float = 24.0
    seed: int = 0


@dataclass
class DataConfig:
    root: str | None = None  # folder tree of videos and frame folders
    synthetic: SyntheticDataConfig | None = None  # used when root is null
    latent_cache: str | None = None  # folder of pre-encoded latents (built from root/synthetic when missing)
    # Pixel size the cache encodes each frame at (null: size). Larger than size, each sample is a random size-sized
    # window of the cached latents (the latent path's random crop; windows move by whole latent cells).
    latent_cache_size: tuple[int, int] | None = None
    num_frames: int = 16  # F
    size: tuple[int, int] = (256, 256)  # training (height, width) in pixels
    stride_range: tuple[int, int] = (1, 30)  # frame interval s, uniform within what the video allows
    crop_scale: tuple[float, float] = (0.5, 1.0)  # random-resized crop: share of the frame area
    crop_aspect: tuple[float, float] = (0.8, 1.25)  # crop aspect relative to the training aspect
    num_global_frames: int = 16  # g
    short_videos: str = "pad"  # videos shorter than F frames: "pad" (stride 1, last frame repeated) or "skip"
    frame_folder_fps: float | None = None  # fps of frame folders (null: what m3ddm.io reports)
    exact_frame_counts: bool = True  # count frames by decoding at indexing; false trusts headers (large sets)
    index_file: str | None = None  # JSON index of the probed videos, written once and reused (large sets)
    num_workers: int = 2


@dataclass
class ModelConfig:
    variant: str = "m3ddm"  # m3ddm | msdm (no global prompt) | sdm (first/last guides only, no global prompt)
    # scratch (a preset) | checkpoint (an M3DDM unet folder) | sd (inflate a Stable Diffusion 2D UNet folder)
    init: str = "scratch"
    preset: str = "small"
    path: str | None = None  # for init checkpoint / sd
    overrides: dict[str, Any] = field(default_factory=dict)  # extra M3DDMUNet config keys
    gradient_checkpointing: bool = False
    # What the UNet predicts: "epsilon" (the paper, SD) or "v_prediction" (v = sqrt(a) eps - sqrt(1-a) x0). With
    # epsilon a small model learns to ignore the context at the noisiest steps (predicting eps ~ x_t is nearly
    # free there), so samples started from noise drift; v makes those steps predict the clean latent.
    prediction_type: str = "epsilon"
    # Rescale the betas to zero terminal SNR (training then sees pure noise at t = 999, where sampling starts) and
    # sample with "trailing" timestep spacing; use with v_prediction (m3ddm.schedule).
    zero_terminal_snr: bool = False
    timestep_spacing: str = "leading"
    min_snr_gamma: float | None = None  # Min-SNR loss weighting (null: unweighted, as the paper)
    # Timesteps drawn more often than the uniform draw gives them: a pipeline that always samples at the same few
    # (one step at strength 0.2, one from noise) can be trained there; focus_share of the samples take one of them.
    focus_timesteps: tuple[int, ...] = ()
    focus_share: float = 0.0
    hidden_context: str = "black"  # one of HIDDEN_CONTEXTS
    # Diffuse x0 - context rather than x0 (m3ddm.conditioning.to_relative; needs hidden_context: smooth): where the
    # model is unsure its estimate falls back to the smooth fill of the context, not to the data's mean colour.
    relative_to_context: bool = False

    @property
    def fills_hidden_context(self) -> bool:
        return self.hidden_context == "smooth"

    def timestep_focus(self) -> tuple[tuple[int, ...], float] | None:
        return (self.focus_timesteps, self.focus_share) if self.focus_timesteps and self.focus_share else None

    def schedule(self) -> NoiseSchedule:
        return NoiseSchedule(prediction_type=self.prediction_type, rescale_betas_zero_snr=self.zero_terminal_snr,
                             timestep_spacing=self.timestep_spacing)


@dataclass
class CodecConfig:
    path: str | None = None  # a diffusers AutoencoderKL folder; null: the random tiny codec (tests, smoke)
    seed: int = 0  # for the tiny codec
    sample_posterior: bool = True  # posterior samples (as the official pipeline) rather than the mean


@dataclass
class OptimConfig:
    learning_rate: float = 1e-4
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    weight_decay: float = 1e-2
    max_grad_norm: float | None = 1.0
    lr_scheduler: str = "constant_with_warmup"
    lr_warmup_steps: int = 1000


@dataclass
class TrainSection:
    output_dir: str = "runs/m3ddm"
    seed: int = 0
    max_steps: int = 1000
    batch_size: int = 1  # clips per process per micro-step
    gradient_accumulation_steps: int = 1
    mixed_precision: str = "no"
    cpu: bool = False  # force CPU even when an accelerator is present
    num_threads: int | None = None  # torch CPU threads per process (null: torch's default)
    ema_decay: float | None = 0.9999  # null: no EMA (the export then holds the raw weights)
    ema_warmup: bool = True  # decay grows as (1 + n) / (10 + n) up to ema_decay
    checkpoint_every: int = 500
    checkpoints_to_keep: int = 2
    log_every: int = 10
    sample_every: int = 0  # 0: no sample previews
    sample_steps: int = 20
    max_bad_steps: int = 5  # consecutive non-finite losses before aborting
    fixed_noise_pool: int = 0  # >0: draw (noise, timestep) from that many fixed pairs (overfit tests only)


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    codec: CodecConfig = field(default_factory=CodecConfig)
    masking: MaskProbabilities = field(default_factory=MaskProbabilities)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainSection = field(default_factory=TrainSection)

    def to_dict(self) -> dict:
        return _to_plain(dataclasses.asdict(self))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def problems(self) -> list[str]:
        return _problems(self)

    def pipeline_settings(self) -> dict:
        """Settings an exported pipeline needs to feed the model as it was trained: a latent cache masks the context
        in latent space (black-frame latents in hidden cells, or their smooth fill); without one a filled context is
        the latent of a pre-filled canvas; inference must do the same."""
        if self.data.latent_cache:
            settings = {"context_encoding": "latent_fill" if self.model.fills_hidden_context else "latent_mask"}
        elif self.model.fills_hidden_context:
            settings = {"context_encoding": "latent_prefill"}
        else:
            return {}
        if self.model.relative_to_context:
            settings["relative_to_context"] = True
        return settings

    def validate(self) -> TrainConfig:
        issues = self.problems()
        if issues:
            more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
            raise UserError(f"invalid training config: {issues[0]}{more}")
        return self


# --- loading ----------------------------------------------------------------------------------------

def _to_plain(value):
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    return value


def _convert(value, hint, where: str):
    """Check/convert a YAML value against a type hint; raise UserError naming ``where``."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None:
            if type(None) in args:
                return None
            raise UserError(f"invalid training config: {where} must not be null")
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, where)
            except UserError as exc:
                errors.append(exc)
        raise errors[0]
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise UserError(f"invalid training config: {where} must be a mapping")
        return _build(hint, value, where)
    if origin is tuple and typing.get_args(hint)[-1] is Ellipsis:  # tuple[T, ...]: a list of any length
        if not isinstance(value, (list, tuple)):
            raise UserError(f"invalid training config: {where} must be a list")
        return tuple(_convert(v, typing.get_args(hint)[0], f"{where}[{i}]") for i, v in enumerate(value))
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise UserError(f"invalid training config: {where} must be a list of {len(args)} values")
        pairs = enumerate(zip(value, args, strict=True))
        return tuple(_convert(v, a, f"{where}[{i}]") for i, (v, a) in pairs)
    if origin is dict:
        if not isinstance(value, dict):
            raise UserError(f"invalid training config: {where} must be a mapping")
        _, value_type = typing.get_args(hint)
        return {str(k): (v if value_type is Any else _convert(v, value_type, f"{where}.{k}")) for k, v in
                value.items()}
    if hint is bool:
        if not isinstance(value, bool):
            raise UserError(f"invalid training config: {where} must be true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"invalid training config: {where} must be an integer")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserError(f"invalid training config: {where} must be a number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise UserError(f"invalid training config: {where} must be a string")
        return value
    if hint is Any:
        return value
    raise TypeError(f"unsupported config type {hint!r} at {where}")


def _build(cls, data: dict, where: str = ""):
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in data if k not in names]
    if unknown:
        prefix = f"{where}." if where else ""
        raise UserError(f"invalid training config: unknown key '{prefix}{unknown[0]}' "
                        f"(known here: {', '.join(names)})")
    kwargs = {}
    for name in names:
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], f"{where}.{name}" if where else name)
    return cls(**kwargs)


def config_from_dict(data: dict | None) -> TrainConfig:
    """Build and validate a config from plain data (missing keys take the defaults)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError("invalid training config: the top level must be a mapping")
    return _build(TrainConfig, data).validate()


def resolve_config_path(name_or_path: str | os.PathLike) -> Path:
    """A YAML file path, or the name of a shipped config (``tiny-cpu``, ``official``)."""
    text = str(name_or_path)
    if text in SHIPPED_CONFIGS:
        resource = importlib.resources.files("m3ddm") / "configs" / f"{text}.yaml"
        return Path(str(resource))
    path = Path(text)
    if not path.is_file():
        raise UserError(f"config not found: {text} (give a YAML file or one of {', '.join(SHIPPED_CONFIGS)})")
    return path


def load_config(name_or_path: str | os.PathLike, overrides: dict | None = None) -> TrainConfig:
    """Load, merge ``overrides`` (nested dict) and validate a training config."""
    path = resolve_config_path(name_or_path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UserError(f"config {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    data = data or {}
    if overrides:
        data = merge_dicts(data, overrides)
    return config_from_dict(data)


def merge_dicts(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_dicts(out[key], value)
        else:
            out[key] = value
    return out


# --- value checks -----------------------------------------------------------------------------------

def _problems(cfg: TrainConfig) -> list[str]:
    out: list[str] = []
    d, m, c, o, t = cfg.data, cfg.model, cfg.codec, cfg.optim, cfg.train

    def need(cond: bool, message: str) -> None:
        if not cond:
            out.append(message)

    need(d.root is not None or d.synthetic is not None or d.latent_cache is not None,
         "data: give data.root (a video folder), data.synthetic or data.latent_cache")
    if d.root is not None:
        need(Path(d.root).is_dir(), f"data.root is not a folder: {d.root}")
    if d.synthetic is not None:
        s = d.synthetic
        need(s.num_videos >= 1, "data.synthetic.num_videos must be >= 1")
        need(s.num_frames >= 1, "data.synthetic.num_frames must be >= 1")
        need(s.height >= 8 and s.width >= 8, "data.synthetic.height and width must be >= 8")
        need(s.fps > 0, "data.synthetic.fps must be > 0")
    need(d.num_frames >= 2, "data.num_frames must be >= 2")
    need(d.size[0] >= 8 and d.size[1] >= 8, "data.size must be at least 8x8")
    if d.latent_cache_size is not None:
        need(d.latent_cache is not None, "data.latent_cache_size needs data.latent_cache")
        need(d.latent_cache_size[0] >= d.size[0] and d.latent_cache_size[1] >= d.size[1],
             "data.latent_cache_size must be at least data.size")
    need(1 <= d.stride_range[0] <= d.stride_range[1], "data.stride_range must satisfy 1 <= low <= high")
    need(0 < d.crop_scale[0] <= d.crop_scale[1] <= 1, "data.crop_scale must satisfy 0 < low <= high <= 1")
    need(0 < d.crop_aspect[0] <= d.crop_aspect[1], "data.crop_aspect must satisfy 0 < low <= high")
    need(d.num_global_frames >= 1, "data.num_global_frames must be >= 1")
    need(d.short_videos in SHORT_VIDEO_POLICIES, f"data.short_videos must be one of {SHORT_VIDEO_POLICIES}")
    need(d.frame_folder_fps is None or d.frame_folder_fps > 0, "data.frame_folder_fps must be > 0")
    need(d.num_workers >= 0, "data.num_workers must be >= 0")

    need(m.variant in VARIANTS, f"model.variant must be one of {VARIANTS} (got {m.variant!r})")
    need(m.init in INITS, f"model.init must be one of {INITS} (got {m.init!r})")
    need(m.prediction_type in PREDICTION_TYPES,
         f"model.prediction_type must be one of {PREDICTION_TYPES} (got {m.prediction_type!r})")
    need(m.timestep_spacing in TIMESTEP_SPACINGS,
         f"model.timestep_spacing must be one of {TIMESTEP_SPACINGS} (got {m.timestep_spacing!r})")
    need(m.min_snr_gamma is None or m.min_snr_gamma > 0, "model.min_snr_gamma must be > 0 or null")
    need(all(isinstance(t, int) and 0 <= t < NUM_TRAIN_TIMESTEPS for t in m.focus_timesteps),
         f"model.focus_timesteps must be whole timesteps in [0, {NUM_TRAIN_TIMESTEPS - 1}]")
    need(0 <= m.focus_share <= 1, "model.focus_share must be in [0, 1]")
    need(not (m.focus_share and not m.focus_timesteps), "model.focus_share needs model.focus_timesteps")
    need(m.hidden_context in HIDDEN_CONTEXTS,
         f"model.hidden_context must be one of {HIDDEN_CONTEXTS} (got {m.hidden_context!r})")
    need(not m.relative_to_context or m.fills_hidden_context,
         "model.relative_to_context needs model.hidden_context: smooth (the diffusion is relative to the filled "
         "context)")
    need(not (m.zero_terminal_snr and m.prediction_type == "epsilon"),
         "model.zero_terminal_snr needs prediction_type: v_prediction (epsilon is undefined at zero SNR)")
    if m.init in ("checkpoint", "sd"):
        need(m.path is not None, f"model.path is required with model.init: {m.init}")
        if m.path is not None:
            need(Path(m.path).is_dir(), f"model.path is not a folder: {m.path}")
    if "global_context" in m.overrides:
        out.append("model.overrides.global_context is set by model.variant; remove it")
    if c.path is not None:
        need(Path(c.path).is_dir(), f"codec.path is not a folder: {c.path}")

    out.extend(cfg.masking.problems())

    need(o.learning_rate > 0, "optim.learning_rate must be > 0")
    need(0 <= o.adam_beta1 < 1 and 0 <= o.adam_beta2 < 1, "optim.adam_beta1/2 must be within [0, 1)")
    need(o.adam_epsilon > 0, "optim.adam_epsilon must be > 0")
    need(o.weight_decay >= 0, "optim.weight_decay must be >= 0")
    need(o.max_grad_norm is None or o.max_grad_norm > 0, "optim.max_grad_norm must be > 0 or null")
    need(o.lr_scheduler in LR_SCHEDULERS, f"optim.lr_scheduler must be one of {LR_SCHEDULERS}")
    need(o.lr_warmup_steps >= 0, "optim.lr_warmup_steps must be >= 0")

    need(t.max_steps >= 1, "train.max_steps must be >= 1")
    need(t.batch_size >= 1, "train.batch_size must be >= 1")
    need(t.gradient_accumulation_steps >= 1, "train.gradient_accumulation_steps must be >= 1")
    need(t.mixed_precision in MIXED_PRECISION, f"train.mixed_precision must be one of {MIXED_PRECISION}")
    need(t.ema_decay is None or 0 < t.ema_decay < 1, "train.ema_decay must be within (0, 1) or null")
    need(t.checkpoint_every >= 1, "train.checkpoint_every must be >= 1")
    need(t.checkpoints_to_keep >= 1, "train.checkpoints_to_keep must be >= 1")
    need(t.log_every >= 1, "train.log_every must be >= 1")
    need(t.sample_every >= 0, "train.sample_every must be >= 0")
    need(t.sample_steps >= 1, "train.sample_steps must be >= 1")
    need(t.max_bad_steps >= 1, "train.max_bad_steps must be >= 1")
    need(t.fixed_noise_pool >= 0, "train.fixed_noise_pool must be >= 0")
    need(t.num_threads is None or t.num_threads >= 1, "train.num_threads must be >= 1 or null")
    return out

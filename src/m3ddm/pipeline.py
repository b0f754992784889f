"""``M3DDMPipeline``: a video in, an outpainted video out, with the hybrid coarse-to-fine schedule (paper 3.3).

Data flow (one module per step):

    source frames ──canvas.build_canvas──► letterboxed canvases ──pre-fill (canvas.prefill_telea per frame, or
        propagation.propagate_border: what other frames saw, by the camera's motion)
        ──codec.encode (once per frame)──► latents
    g global frames ──(their latents, or stretched frames for the official weights)──► unet.encode_global (once)
    num_frames + strides ──planning.coarse_to_fine_plan──► windows (frames, guides, depends_on)
    for each batch of independent windows: sampling.sample_windows ──► generated latents (saved for --resume)
    generated latents ──codec.decode──► canvases ──propagation.steady_canvases (--steady: along the camera's motion)
        ──canvas.compose with the source (full resolution; canvas.add_texture: --texture lends the picture's grain)
        ──propagation.keep_seen (--keep-seen)──► video + audio
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from diffusers import AutoencoderKL, DiffusionPipeline
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from m3ddm.adaptation import Adapter, AdaptSettings, AdaptState, VideoLatents, adapt
from m3ddm.canvas import build_canvas, compose, prefill_smooth, prefill_telea, resize
from m3ddm.codecs import LatentCodec
from m3ddm.conditioning import fill_hidden, local_condition, null_condition
from m3ddm.errors import UserError
from m3ddm.geometry import Geometry, Pad, TargetRatio, bounding_pads, latent_mask, plan_geometry
from m3ddm.io.arrays import ArraySource
from m3ddm.io.prefetch import prefetch
from m3ddm.models import GlobalContext, M3DDMUNet
from m3ddm.planning import (
    Plan,
    Window,
    coarse_to_fine_plan,
    conditioning_fps,
    default_strides,
    global_frame_indices,
    validate_strides,
)
from m3ddm.propagation import CameraMotion, keep_seen, propagate_border, steady_canvases
from m3ddm.sampling import (
    Guidance,
    WindowBatch,
    check_noise_share,
    check_strength,
    make_scheduler,
    sample_windows,
    steps_run,
)
from m3ddm.schedule import NUM_TRAIN_TIMESTEPS, NoiseSchedule
from m3ddm.utils.pixels import signed_to_uint8, to_signed

if TYPE_CHECKING:
    from m3ddm.jobs import OutpaintResult
    from m3ddm.progress import Reporter

DEFAULT_MODEL_DIR = Path(__file__).parent / "weights" / "default"


@dataclass
class OutpaintOptions:
    """Everything that decides the output (and so the resume fingerprint)."""

    ratio: float | None = None  # width / height
    # several target ratios (9:16 and 1:1): one generation on the canvas that bounds them, one output each
    ratios: tuple[TargetRatio, ...] = ()
    pad: Pad | None = None
    size: int | None = None  # working long side; None = the model's default
    canvas: str = "target"  # "target" or "square" (official)
    output_size: tuple[int, int] | None = None
    official_output: bool = False
    scheduler: str | None = None  # None = the model's default
    steps: int | None = None
    strides: tuple[int, ...] | None = None  # None = 15,5,1 for >= 50 frames, else 1
    seed: int = 0
    guidance_context: float | None = None  # s1 of eq. 4; None = the model's (the paper's 2)
    guidance_global: float | None = None  # s2 of eq. 4; None = the model's (the paper's 4)
    batch_windows: int = 4
    init: str = "prefill"  # "prefill" (the pre-fill + noise, official) or "noise"
    # the pre-fill of the border: "telea" (per frame, official), "smooth" (per frame, push-pull), "propagate" (other
    # frames' pixels brought in by global motion, TELEA for the rest) or "propagate-smooth"; None = the model's
    prefill: str | None = None
    # paste the border pixels that other frames of the shot saw over the model's border, at the output's
    # resolution (m3ddm.propagation.keep_seen); None = the model's
    keep_seen: bool | None = None
    # average each frame's decoded canvas with this many frames' canvases on either side, along the camera's motion
    # (less shimmer, no jump between windows; m3ddm.propagation.steady_canvases); 0 = off, None = the model's
    steady: int | None = None
    # lend the source's fine grain to the band of the border next to it, 0 = off, 1 = full weight
    # (m3ddm.canvas.add_texture); None = the model's
    texture: float | None = None
    strength: float | None = None  # < 1: start from the pre-fill noised part-way (image-to-image); None = model's
    # share of the start noise common to all frames (less flicker); None = the model's below strength 1, else 0
    noise_share: float | None = None
    replace_known: bool = False  # RePaint-style: keep the known cells on the context's noisy trajectory
    official_compat: bool = False
    num_global_frames: int | None = None
    feather: int = 4  # canvas pixels (scaled by the upscale to the output); --official-output pastes hard (0)
    colour_match: bool = True  # shift the border's low frequencies to continue the source's colour at the seam
    # Read, prepare and decode frames on a background thread, overlapping the model. The output does not change.
    background_io: bool = True
    # Frames per VAE encode/decode call (VAE slicing): lower bounds the codec's peak memory. Output unchanged.
    vae_batch: int = 8
    # Encode/decode each frame in overlapping tiles of the VAE's sample_size (diffusers' tiling): bounds memory at
    # large working sizes; the tiles are blended, so the output changes slightly.
    vae_tiling: bool = False
    # Per-video adaptation (issue 17): tune a copy of the UNet on this video's known region first (steps 0 = off).
    adapt: AdaptSettings = field(default_factory=AdaptSettings)
    adapter: str | None = None  # an adapter folder saved by an earlier run (--save-adapter): used, not re-tuned


# How the masked context is encoded: "letterbox" encodes the canvas with masked pixels black (the official driver);
# "latent_mask" encodes the TELEA-pre-filled canvas and puts the black-frame latent into the masked latent cells,
# which is what training from a latent cache shows the model (masking in latent space); "latent_fill" encodes it the
# same way and fills the masked cells smoothly from the known ones (m3ddm.conditioning.fill_hidden), for a model
# trained with model.hidden_context: smooth; "latent_prefill" keeps the pre-filled canvas's own latents in the masked
# cells too, for the same models: the pre-fill is smooth in pixels, where the latent fill of TAEF2's latents decodes
# to a checkered mosaic (model card, fortieth rule).
CONTEXT_ENCODINGS = ("letterbox", "latent_mask", "latent_fill", "latent_prefill")
# the encodings whose hidden cells hold a fill (models trained with model.hidden_context: smooth)
FILLED_CONTEXTS = ("latent_fill", "latent_prefill")
# The border's pre-fill (the start of image-to-image sampling; the context's edge cells under latent_mask, all its
# hidden cells under latent_prefill): per frame ("telea", "smooth"), or the pixels other frames saw with one of those
# for the rest ("propagate" is TELEA for the rest).
PREFILLS = ("telea", "smooth", "propagate", "propagate-smooth")
# --prefill propagate looks this many frames away at most: it bounds the cost on a long static shot.
PROPAGATION_REACH = 120


def prefill_parts(prefill: str) -> tuple[bool, Callable[[np.ndarray, np.ndarray], np.ndarray]]:
    """Whether a pre-fill brings in what other frames saw, and the fill (canvas, mask) -> canvas of the rest."""
    return prefill.startswith("propagate"), prefill_smooth if prefill.endswith("smooth") else prefill_telea


# Eq. 4's scales as the paper uses them (s1, s2): the default of a model folder that does not set its own.
PAPER_GUIDANCE = (Guidance.context_scale, Guidance.global_scale)


@dataclass
class EncodedVideo:
    """Per-frame latents of a video's canvases (computed once) and the global-frame latents."""

    masked: torch.Tensor  # [N, C, h, w] letterboxed canvases
    prefilled: torch.Tensor | None  # [N, C, h, w] TELEA pre-filled canvases (init "prefill")
    black: torch.Tensor  # [C, h, w] an all-black canvas (null local context)
    global_latents: torch.Tensor | None  # [g, C, hg, wg]
    latent_mask: torch.Tensor  # [1, 1, 1, h, w]
    fps: Fraction  # the source's frame rate (the UNet's fps conditioning)
    motion: CameraMotion | None = None  # the camera's motion, when the pre-fill or the border's stages use it


@dataclass
class PreparedVideo:
    """A video ready to generate: its resolved options, geometry, coarse-to-fine plan and latents."""

    options: OutpaintOptions
    geometry: Geometry
    plan: Plan
    encoded: EncodedVideo


@dataclass(frozen=True)
class GenerationCost:
    """What generating a plan takes, in UNet calls (one window, one step, one guidance branch each)."""

    windows: int
    levels: int
    steps: int  # denoising steps run per window
    branches: int  # guidance branches per step

    @property
    def unet_calls(self) -> int:
        return self.windows * self.steps * self.branches


@dataclass
class GenerationHooks:
    """How a caller steers ``generate`` (resume, several processes, progress, benchmarks) while the pipeline
    knows nothing of files or processes. Every hook is optional; without any, every window is generated."""

    done: set[int] = field(default_factory=set)  # windows already generated (a resumed run): skipped
    generated: torch.Tensor | None = None  # their latents [N, C, h, w]
    owns: Callable[[int, Window], bool] | None = None  # (index in its level, window) -> run it here?
    on_start: Callable[[list[Window], int, int], None] | None = None  # (windows to run, steps each, branches)
    on_step: Callable[[int], None] | None = None  # one sampler step done for this many windows
    after_batch: Callable[[torch.Tensor, set[int], list[Window]], None] | None = None  # (latents, done, batch)
    # after each level: (latents, the level's windows, those run here) -> latents with every process's results
    after_level: Callable[[torch.Tensor, list[Window], list[Window]], torch.Tensor] | None = None
    # benchmarks: the global context to use for this batch (the official driver recomputes it per window)
    before_batch: Callable[[list[Window]], GlobalContext | None] | None = None
    branches: tuple[str, ...] | None = None  # benchmarks: force a guidance-branch set; None = the needed ones
    # --official-compat: the latents each frame shows (its last writer; guides re-generated later). Given: a resumed
    # run's; updated in place as windows finish, so a caller can save it with the generated latents.
    shown: torch.Tensor | None = None


def window_generator(seed: int, window_id: int | str) -> torch.Generator:
    """The window's own random stream: results do not depend on batching or resuming."""
    digest = hashlib.sha256(f"m3ddm:{seed}:{window_id}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))


def stretched_global_frame(frame: np.ndarray, side: int, official: bool = False) -> torch.Tensor:
    """A global frame stretched to ``side x side`` (aspect ignored, as the official weights see them), ``[3, side,
    side]`` in [-1, 1]. ``official``: the driver's antialiased bilinear on float pixels, never rounded to uint8."""
    if not official:
        return to_signed(resize(frame, side, side))
    pixels = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None].float() / 255
    pixels = torch.nn.functional.interpolate(pixels, size=(side, side), mode="bilinear", antialias=True,
                                             align_corners=False)
    return pixels[0] * 2 - 1


def _check_settings(**settings) -> None:
    """The pipeline's saved settings (``model_index.json``) or ValueError naming the first one that is impossible."""
    def whole(value, low: int) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= low

    def number(value) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    rules = {
        "global_frames": (lambda v: v in ("canvas", "stretch"), "'canvas' or 'stretch'"),
        "context_encoding": (lambda v: v in CONTEXT_ENCODINGS, f"one of {CONTEXT_ENCODINGS}"),
        "default_prefill": (lambda v: v in PREFILLS, f"one of {PREFILLS}"),
        "num_global_frames": (lambda v: whole(v, 1), "a whole number of at least 1"),
        "default_size": (lambda v: whole(v, 8), "a whole number of pixels of at least 8"),
        "default_steps": (lambda v: whole(v, 1), "a whole number of at least 1"),
        "default_noise_steps": (lambda v: v is None or whole(v, 1), "null or a whole number of at least 1"),
        "default_strength": (lambda v: number(v) and 0 < v <= 1, "in (0, 1]"),
        "default_noise_share": (lambda v: number(v) and 0 <= v < 1, "in [0, 1)"),
        "default_guidance": (lambda v: isinstance(v, (list, tuple)) and len(v) == 2 and all(map(number, v)),
                             "two numbers (s1, s2)"),
        "default_keep_seen": (lambda v: isinstance(v, bool), "true or false"),
        "default_steady": (lambda v: whole(v, 0), "a whole number of frames (0 = off)"),
        "default_texture": (lambda v: number(v) and 0 <= v <= 1, "in [0, 1]"),
        "relative_to_context": (lambda v: isinstance(v, bool), "true or false"),
    }
    for key, value in settings.items():
        valid, wanted = rules[key]
        if not valid(value):
            raise ValueError(f"{key} must be {wanted}, got {value!r}")


class M3DDMPipeline(DiffusionPipeline):
    """Video outpainting with a masked 3D diffusion UNet, a latent codec and a diffusers scheduler.

    Settings saved with the pipeline (``model_index.json``): how global frames enter the model
    ("canvas": placed in the canvas and masked like the clip, as our models are trained; "stretch": the source
    frame stretched to a square, as the official driver feeds the official weights), how many, and the default
    working size, scheduler, number of steps and strength (1 = start from noise, as the paper). A model may run
    another number of steps from pure noise (``default_noise_steps``; None = ``default_steps``).
    """

    model_cpu_offload_seq = "unet->vae"

    def __init__(
        self,
        unet: M3DDMUNet,
        vae: AutoencoderKL,
        scheduler: SchedulerMixin,
        global_frames: str = "canvas",
        num_global_frames: int = 16,
        default_size: int = 256,
        default_scheduler: str = "dpmpp",
        default_steps: int = 25,
        default_noise_steps: int | None = None,
        default_strength: float = 1.0,
        default_noise_share: float = 0.0,
        default_guidance: tuple[float, float] = PAPER_GUIDANCE,
        context_encoding: str = "letterbox",
        default_prefill: str = "telea",
        default_keep_seen: bool = False,
        default_steady: int = 0,
        default_texture: float = 0.0,
        relative_to_context: bool = False,
    ):
        super().__init__()
        _check_settings(global_frames=global_frames, context_encoding=context_encoding, default_prefill=default_prefill,
                        num_global_frames=num_global_frames, default_size=default_size, default_steps=default_steps,
                        default_noise_steps=default_noise_steps, default_strength=default_strength,
                        default_noise_share=default_noise_share, default_guidance=default_guidance,
                        default_keep_seen=default_keep_seen, default_steady=default_steady,
                        default_texture=default_texture, relative_to_context=relative_to_context)
        if relative_to_context and context_encoding not in FILLED_CONTEXTS:
            raise ValueError(f"relative_to_context needs a context_encoding in {FILLED_CONTEXTS} (the diffusion is "
                             "relative to the filled context)")
        self.register_modules(unet=unet, vae=vae, scheduler=scheduler)
        self.register_to_config(
            global_frames=global_frames, num_global_frames=num_global_frames, default_size=default_size,
            default_scheduler=default_scheduler, default_steps=default_steps,
            default_noise_steps=default_noise_steps, default_strength=default_strength,
            default_noise_share=default_noise_share, default_guidance=list(default_guidance),
            context_encoding=context_encoding, default_prefill=default_prefill,
            default_keep_seen=default_keep_seen, default_steady=default_steady, default_texture=default_texture,
            relative_to_context=relative_to_context,
        )

    @property
    def fills_hidden_context(self) -> bool:
        """Whether the model was trained with the hidden cells of its context filled (``latent_fill``, and
        ``latent_prefill`` which fills them otherwise at inference)."""
        return self.config.get("context_encoding") in FILLED_CONTEXTS

    @property
    def relative_to_context(self) -> bool:
        """Whether the model denoises relative to its context (``m3ddm.conditioning.to_relative``)."""
        return bool(self.config.get("relative_to_context", False))

    # ------------------------------------------------------------------------------------------ loading
    @classmethod
    def load(
        cls,
        model: str | os.PathLike | None = None,
        unet: str | os.PathLike | None = None,
        vae: str | os.PathLike | None = None,
        torch_dtype: torch.dtype | None = None,
    ) -> M3DDMPipeline:
        """A pipeline folder (``--model``), the official layout as two folders (``--unet`` + ``--vae``: an SD
        ``vae`` folder), or, with neither, the shipped default model."""
        if unet is not None or vae is not None:
            if unet is None or vae is None or model is not None:
                raise UserError("give --unet and --vae together (the official layout), or --model alone")
            return cls.from_official(unet, vae, torch_dtype=torch_dtype)
        folder = Path(model) if model is not None else DEFAULT_MODEL_DIR
        if model is None and not (folder / "model_index.json").is_file():
            raise UserError("no trained default model is shipped in this install; pass --model DIR "
                            "(a pipeline folder) or --unet DIR --vae DIR (official weights)")
        return cls.from_folder(folder, torch_dtype=torch_dtype)

    @classmethod
    def from_folder(cls, folder: str | os.PathLike, torch_dtype: torch.dtype | None = None) -> M3DDMPipeline:
        folder = Path(folder)
        if not folder.is_dir():
            raise UserError(f"model folder not found: {folder}")
        if not (folder / "model_index.json").is_file():
            raise UserError(f"incomplete model folder {folder}: no model_index.json")
        for part in ("unet", "vae", "scheduler"):
            if not (folder / part).is_dir():
                raise UserError(f"incomplete model folder {folder}: no {part}/")
        try:
            index = json.loads((folder / "model_index.json").read_text())
        except json.JSONDecodeError as exc:
            raise UserError(f"unreadable {folder / 'model_index.json'}: {exc}") from None
        components = ("unet", "vae", "scheduler")  # [library, class] entries, loaded below
        settings = {k: v for k, v in index.items() if not k.startswith("_") and k not in components}
        unet = M3DDMUNet.from_pretrained(folder / "unet", torch_dtype=torch_dtype)
        codec = LatentCodec.from_pretrained(folder / "vae")
        scheduler_name = settings.get("default_scheduler", "dpmpp")
        scheduler_config = folder / "scheduler" / "scheduler_config.json"
        base = json.loads(scheduler_config.read_text()) if scheduler_config.is_file() else None
        scheduler = make_scheduler(scheduler_name, base)
        try:  # a hand-edited or newer model_index.json: its settings are checked in __init__
            return cls(unet=unet, vae=codec.vae, scheduler=scheduler, **settings)
        except (TypeError, ValueError) as exc:
            raise UserError(f"unusable settings in {folder / 'model_index.json'}: {exc}") from None

    @classmethod
    def from_official(cls, unet_dir, vae_dir, torch_dtype: torch.dtype | None = None) -> M3DDMPipeline:
        """The released weights: UNet folder + SD VAE folder; PNDM 50 steps, global frames stretched."""
        unet = M3DDMUNet.from_pretrained(unet_dir, torch_dtype=torch_dtype)
        codec = LatentCodec.from_pretrained(vae_dir)
        return cls(unet=unet, vae=codec.vae, scheduler=make_scheduler("pndm"), global_frames="stretch",
                   default_size=256, default_scheduler="pndm", default_steps=50)

    @property
    def codec(self) -> LatentCodec:
        return LatentCodec(self.vae)

    # ---------------------------------------------------------------------------------------- main entry
    def outpaint_video(
        self,
        input_path: str | os.PathLike,
        output_path: str | os.PathLike,
        options: OutpaintOptions,
        *,
        work_dir: str | os.PathLike | None = None,
        resume: bool = False,
        crf: int = 18,
        progress: bool | Reporter = False,
        on_window: Callable[[Window], None] | None = None,
        **job,
    ) -> OutpaintResult:
        """Outpaint a video file, frame folder or image to ``output_path`` (video file, image, or folder).

        The file side (paths, time range, writing, previews, progress) lives in ``m3ddm.jobs.outpaint_file``,
        which takes the further keywords (``start``, ``end``, ``preview``, ``side_by_side``)."""
        from m3ddm.jobs import outpaint_file

        return outpaint_file(self, input_path, output_path, options, work_dir=work_dir, resume=resume, crf=crf,
                             progress=progress, on_window=on_window, **job)

    def outpaint_array(
        self, frames: np.ndarray, fps: float = 24, pad_px: tuple[int, int, int, int] | None = None,
        seed: int = 0, hooks: GenerationHooks | None = None, **options,
    ) -> np.ndarray:
        """Outpaint frames ``[F, H, W, 3]`` uint8 in memory; ``pad_px`` = (left, top, right, bottom) pixels of the
        output border. Returns ``[F, H + top + bottom, W + left + right, 3]`` (for evaluation)."""
        source = ArraySource(frames, fps)
        # flat keys from evaluation's --option (adapt=200, adapt_method=full, ...) -> the adaptation settings
        tuning = {key.removeprefix("adapt_") if key != "adapt" else "steps": options.pop(key)
                  for key in [k for k in options if k == "adapt" or k.startswith("adapt_")]}
        if tuning:
            tuning = {"learning_rate" if key == "lr" else "batch_size" if key == "batch" else key: value
                      for key, value in tuning.items()}
            options["adapt"] = AdaptSettings(**tuning)
        opts = OutpaintOptions(seed=seed, **options)
        if pad_px is not None:
            left, top, right, bottom = pad_px
            opts = replace(opts, pad=Pad(int(left), int(top), int(right), int(bottom), unit="pixel"), ratio=None)
            src_h, src_w = source.info.height, source.info.width
            if opts.output_size is None and not opts.official_output:
                opts = replace(opts, output_size=(src_w + left + right, src_h + top + bottom))
        video, latents, _ = self.outpaint_latents(source, opts, hooks=hooks)
        return np.stack(list(self.decode_frames(source, latents, video.geometry, video.options,
                                                video.encoded.motion)))

    def outpaint_latents(self, source, options: OutpaintOptions, *, hooks: GenerationHooks | None = None
                         ) -> tuple[PreparedVideo, torch.Tensor, dict]:
        """Prepare, adapt (if asked) and generate a video in memory: no work folder, no progress, no files."""
        video = self.prepare(source, options)
        unet, adapter = self.adapted_unet(video)
        latents, stats = self.generate(video, unet=unet, hooks=hooks)
        return video, latents, {**stats, "adapter": adapter}

    # -------------------------------------------------------------------------------------- the stages
    def steps_for(self, strength: float) -> int:
        """The model's number of denoising steps at ``strength`` (when the user gives none)."""
        # default_steps is chosen where the pipeline starts from the pre-fill (one step runs at strength 0.2); from
        # pure noise another number may do better (the shipped model's one step: model card, twenty-seventh rule)
        noise_steps = self.config.get("default_noise_steps")
        return int(noise_steps) if strength >= 1.0 and noise_steps is not None else int(self.config.default_steps)

    def resolve(self, options: OutpaintOptions, num_frames: int) -> OutpaintOptions:
        """Fill the model-dependent defaults in."""
        strides = default_strides(num_frames) if options.strides is None else validate_strides(options.strides)
        strength = options.strength if options.strength is not None else self.config.get("default_strength", 1.0)
        check_strength(strength, options.init)  # before the video is read and encoded
        # the model's share is for starts from the pre-fill: from pure noise a pattern common to every frame is out of
        # what the model was trained on (independent noise per frame), and it paints it as structure
        noise_share = options.noise_share if options.noise_share is not None \
            else self.config.get("default_noise_share", 0.0) if strength < 1.0 else 0.0
        check_noise_share(noise_share)
        if options.vae_batch < 1:
            raise UserError(f"the VAE batch must be at least 1 frame, got {options.vae_batch}")
        if options.adapter is not None and options.adapt.steps:
            raise UserError("give either --adapt STEPS (tune on this video) or --adapter DIR (use a saved adapter)")
        if options.prefill is not None and options.prefill not in PREFILLS:
            raise UserError(f"the pre-fill must be one of {', '.join(PREFILLS)}, got {options.prefill!r}")
        if options.prefill not in (None, "telea") and options.official_compat:
            raise UserError("--official-compat reproduces the official TELEA pre-fill: drop --prefill")
        # --official-compat takes the official pre-fill whatever the model's default
        prefill = options.prefill or ("telea" if options.official_compat
                                      else self.config.get("default_prefill", "telea"))
        official = options.official_compat or options.official_output
        if options.keep_seen and official:
            raise UserError("--keep-seen changes the border after composing: drop --official-output/--official-compat")
        keep = False if official else bool(self.config.get("default_keep_seen", False)
                                           if options.keep_seen is None else options.keep_seen)
        if options.steady is not None and (int(options.steady) != options.steady or options.steady < 0):
            raise UserError(f"--steady is a number of frames (0 = off), got {options.steady}")
        if options.steady and official:
            raise UserError("--steady changes the border the model painted: drop --official-output/--official-compat")
        steady = 0 if official else int(self.config.get("default_steady", 0) if options.steady is None
                                        else options.steady)
        if options.texture is not None and not 0 <= options.texture <= 1:
            raise UserError(f"--texture is a weight in [0, 1] (0 = off), got {options.texture:g}")
        if options.texture and official:
            raise UserError("--texture changes the border after composing: drop --official-output/--official-compat")
        texture = 0.0 if official else float(self.config.get("default_texture", 0.0) if options.texture is None
                                             else options.texture)
        scheduler = options.scheduler or self.config.default_scheduler
        if options.official_compat and scheduler != "pndm":  # before the video is read and encoded
            raise UserError("--official-compat reproduces the official PNDM start: use --scheduler pndm")
        s1, s2 = self.config.get("default_guidance", PAPER_GUIDANCE)
        return replace(
            options,
            size=options.size or self.config.default_size,
            scheduler=scheduler,
            steps=options.steps or self.steps_for(strength),
            strength=strength,
            noise_share=noise_share,
            prefill=prefill,
            keep_seen=keep,
            steady=steady,
            texture=texture,
            guidance_context=s1 if options.guidance_context is None else options.guidance_context,
            guidance_global=s2 if options.guidance_global is None else options.guidance_global,
            strides=strides,
            num_global_frames=options.num_global_frames or self.config.num_global_frames,
        )

    def prepare(self, source, options: OutpaintOptions) -> PreparedVideo:
        """Resolve the options for this video, plan its windows and encode its canvases (once per frame)."""
        options = self.resolve(options, source.info.num_frames)
        geometry = self.geometry_for(source, options)
        factor = self.codec.downsample_factor
        if min(geometry.canvas_h, geometry.canvas_w) < 6 * factor:
            raise UserError(f"the working canvas {geometry.canvas_w}x{geometry.canvas_h} is too small for the model "
                            f"(short side at least {6 * factor} pixels); raise --size")
        plan = coarse_to_fine_plan(source.info.num_frames, options.strides)
        # set on every run (not toggled back): the decoding that follows runs with the same setting
        if options.vae_tiling:
            self.vae.enable_tiling()
        else:
            self.vae.disable_tiling()
        return PreparedVideo(options, geometry, plan, self.encode_video(source, geometry, options))

    def geometry_for(self, source, options: OutpaintOptions) -> Geometry:
        info = source.info
        pad = options.pad
        if options.ratios:
            if options.ratio is not None or options.pad is not None:
                raise UserError("give one target ratio, several ratios, or pads: not more than one of them")
            if options.output_size is not None or options.official_output:
                raise UserError("several target ratios write full-resolution outputs: drop --output-size and "
                                "--official-output")
            pad = Pad(*bounding_pads(info.height, info.width, options.ratios), unit="pixel")
        return plan_geometry(
            info.height, info.width, ratio=options.ratio, pad=pad, size=options.size,
            canvas=options.canvas, output="official" if options.official_output else "full",
            output_size=options.output_size, official=options.official_compat and options.canvas == "square",
        )

    @torch.no_grad()
    def encode_video(self, source, geometry: Geometry, options: OutpaintOptions) -> EncodedVideo:
        """Stream the source once: every frame's canvas latent (and pre-filled latent) is encoded exactly once.

        Latents are kept in float32 whatever the model's dtype: the sampler's arithmetic stays exact and the model
        casts its inputs."""
        codec = self.codec
        n = source.info.num_frames
        g_indices = set(global_frame_indices(n, options.num_global_frames))
        stretch = self.config.global_frames == "stretch" and self.unet.config.global_context
        masked, prefilled, stretched = [], [], []
        pending: list[np.ndarray] = []
        pending_fill: list[np.ndarray] = []
        official = options.official_compat

        def encode(images, kind: str, frames: Sequence[int]) -> torch.Tensor:
            pixels = images if torch.is_tensor(images) else to_signed(images)
            if not official:
                return codec.encode(pixels).cpu().float()
            # the official driver samples the posterior (unseeded); we sample it from one seeded stream per image
            streams = [window_generator(options.seed, f"posterior:{kind}:{f}") for f in frames]
            return codec.encode(pixels, sample=True, generator=streams).cpu().float()

        encoded_frames = 0  # frames already encoded: the next batch's first index (its posterior streams)

        def flush():
            nonlocal encoded_frames
            if pending:
                frames = range(encoded_frames, encoded_frames + len(pending))
                encoded_frames += len(pending)
                if not latent_masked:  # (latent_mask: the context comes from the pre-fill's latents below)
                    masked.append(encode(pending, "letterbox", frames))
                if pending_fill:
                    prefilled.append(encode(pending_fill, "prefill", frames))
                pending.clear()
                pending_fill.clear()

        encoding = self.config.get("context_encoding", "letterbox")
        latent_masked = encoding != "letterbox"
        need_fill = options.init == "prefill" or latent_masked
        # propagation needs the other frames of a shot: its pre-fills are made and encoded after the stream
        propagates, fill = prefill_parts(options.prefill)
        propagated = need_fill and propagates
        # the camera's motion, measured once here for the pre-fill and for the border's stages after decoding
        motion = CameraMotion() if propagated or options.keep_seen or options.steady else None
        known = geometry.known
        known_images: list[np.ndarray] = []

        def prepared():  # decoding, canvas, pre-fill or motion: CPU work that can run ahead of the encoder
            for frame in source.iter_frames():
                canvas, mask = build_canvas(frame, geometry)
                if motion is not None:
                    motion.add(frame)
                yield frame, canvas, fill(canvas, mask) if need_fill and not propagated else None

        frames = prefetch(prepared()) if options.background_io else prepared()
        count = 0
        for i, (frame, canvas, filled) in enumerate(frames):
            pending.append(canvas)
            if filled is not None:
                pending_fill.append(filled)
            if propagated:
                known_images.append(canvas[known.slices].copy())
            if stretch and i in g_indices:
                stretched.append(stretched_global_frame(frame, options.size, official))
            if len(pending) == options.vae_batch:
                flush()
            count += 1
        flush()
        if count != n:
            raise UserError(f"the input announced {n} frames but {count} could be decoded")
        if propagated:
            pads = (known.x0, known.y0, geometry.canvas_w - known.x1, geometry.canvas_h - known.y1)
            fills = propagate_border(np.stack(known_images), pads, motion.scaled(known.w, known.h),
                                     max_distance=PROPAGATION_REACH, fill=fill)
            for start in range(0, n, options.vae_batch):
                stop = min(n, start + options.vae_batch)
                prefilled.append(encode(list(fills[start:stop]), "prefill", range(start, stop)))
        black = encode([np.zeros_like(canvas)], "black", [0])[0]
        # the codec's own factor: our factor-4 codecs have latents twice as fine as SD's
        cells = latent_mask(geometry.mask, codec.downsample_factor)
        latent_mask_t = torch.from_numpy(cells.astype(np.float32))[None, None, None]
        if encoding == "latent_prefill":
            # a tensor of its own, not the pre-fill's start latents: the work state's safetensors refuses shared memory
            masked_t = torch.cat(prefilled)
        elif latent_masked:
            masked_t = torch.where(latent_mask_t[0, 0] > 0.5, black[None], torch.cat(prefilled))
            if encoding == "latent_fill":
                masked_t = fill_hidden(masked_t, latent_mask_t[0, 0])
        else:
            masked_t = torch.cat(masked)
        if options.init != "prefill":
            prefilled = []
        if not self.unet.config.global_context:
            global_latents = None
        elif stretch:
            # repeat as the driver does when the video has fewer frames than g
            order = global_frame_indices(n, options.num_global_frames)
            unique = sorted(g_indices)
            # (streams by position in the global list, so a clip of just the global frames draws the same)
            enc = encode(torch.stack(stretched), "global", range(len(unique)))
            global_latents = enc[[unique.index(i) for i in order]]
        else:
            global_latents = masked_t[global_frame_indices(n, options.num_global_frames)]
        # contiguous like everything the work state saves and loads (the codec may hand back channels-last)
        masked_t = masked_t.contiguous()
        prefilled_t = torch.cat(prefilled).contiguous() if prefilled else None
        global_latents = global_latents.contiguous() if global_latents is not None else None
        return EncodedVideo(masked_t, prefilled_t, black.contiguous(), global_latents,
                            latent_mask_t, source.info.fps, motion)

    def adapted_unet(self, video: PreparedVideo, *, state: AdaptState | None = None, resume: bool = False,
                     progress: Reporter | None = None,
                     on_adapt_step: Callable[[int, float], None] | None = None) -> tuple[M3DDMUNet, Adapter | None]:
        """The UNet that generates this video: the base model, or a copy tuned on the video (``options.adapt``;
        ``state`` keeps the tuning resumable) or carrying a saved adapter (``options.adapter``). The base model is
        never changed."""
        options, encoded = video.options, video.encoded
        if options.adapter is not None:
            adapter = Adapter.load(options.adapter)
            return adapter.apply(self.unet), adapter
        if options.adapt.steps == 0:
            return self.unet, None
        latents = encoded.prefilled if encoded.prefilled is not None else encoded.masked
        clip = VideoLatents(latents, encoded.latent_mask[0, 0, 0], encoded.black, float(encoded.fps),
                            options.strides, options.num_global_frames, bool(self.unet.config.global_context),
                            fill_hidden=self.fills_hidden_context, relative=self.relative_to_context)
        # image-to-image from the pre-fill only visits the noise levels below strength * T: tune on those
        max_t = NUM_TRAIN_TIMESTEPS if options.init != "prefill" else \
            max(1, math.ceil(options.strength * NUM_TRAIN_TIMESTEPS))
        adapter = adapt(self.unet, clip, options.adapt, NoiseSchedule.from_config(self.scheduler.config),
                        seed=options.seed, max_timestep=max_t, state=state, resume=resume,
                        progress=progress if progress is not None and progress.enabled else None,
                        on_step=on_adapt_step)
        return adapter.apply(self.unet, check_base=False), adapter

    @torch.no_grad()
    def global_context(self, encoded: EncodedVideo, unet: M3DDMUNet | None = None) -> GlobalContext | None:
        """Tokens [null, real] computed once per video; key/values cached across windows and steps."""
        if encoded.global_latents is None:
            return None
        unet = unet if unet is not None else self.unet
        g = encoded.global_latents.shape[0]
        device = unet.device
        real = unet.encode_global(encoded.global_latents.to(device), g)
        null = unet.encode_global(torch.zeros_like(encoded.global_latents).to(device), g)
        return GlobalContext(torch.cat([null, real]), cache_kv=True)

    def window_batch(self, windows: list[Window], encoded: EncodedVideo, generated: torch.Tensor,
                     official_fps: bool = False) -> WindowBatch:
        device = self.unet.device
        contexts, masks, nulls, null_masks, inits, rates = [], [], [], [], [], []

        def as_clip(per_frame: torch.Tensor, idx: list[int]) -> torch.Tensor:  # [N, C, h, w] -> [1, C, F, h, w]
            return per_frame[idx].permute(1, 0, 2, 3)[None].to(device)

        for window in windows:
            idx = list(window.model_frames)
            # padded copies of the last frame are guides once it exists (every level after the first)
            flags = torch.tensor([[f in window.guides or (j >= len(window.frames) and window.level > 1)
                                   for j, f in enumerate(idx)]], device=device)
            guides = as_clip(generated, idx)
            ctx, mask = local_condition(as_clip(encoded.masked, idx), encoded.latent_mask.to(device), guides, flags)
            null, null_mask = null_condition(encoded.black.to(device), ctx.shape, guides, flags)
            contexts.append(ctx)
            masks.append(mask)
            nulls.append(null)
            null_masks.append(null_mask)
            inits.append(as_clip(encoded.prefilled, idx) if encoded.prefilled is not None else torch.zeros_like(ctx))
            rates.append(int(conditioning_fps(float(encoded.fps), window.stride, at_least_one=not official_fps)))
        context = torch.cat(contexts)
        return WindowBatch(context, torch.cat(masks), torch.cat(nulls), torch.cat(null_masks),
                           torch.cat(inits), torch.tensor(rates, device=device),
                           context_rows=torch.ones(len(windows), dtype=torch.long),
                           base=context if self.relative_to_context else None)

    def generation_cost(self, options: OutpaintOptions, plan: Plan) -> GenerationCost:
        """The cost of generating ``plan`` with resolved ``options`` (before any work)."""
        guidance = Guidance(options.guidance_context, options.guidance_global)
        branches = len(guidance.coefficients(bool(self.unet.config.global_context)))
        return GenerationCost(len(plan.windows), len(plan.levels), steps_run(options.steps, options.strength),
                              branches)

    @torch.no_grad()
    def generate(self, video: PreparedVideo, *, unet: M3DDMUNet | None = None,
                 hooks: GenerationHooks | None = None) -> tuple[torch.Tensor, dict]:
        """Generated canvas latents ``[N, C, h, w]`` for every frame, window batch by window batch along the
        coarse-to-fine plan. ``unet`` replaces the base model (an adapted copy); ``hooks`` skip, share and report
        windows. The returned stats hold the number of windows and of UNet calls."""
        options, encoded = video.options, video.encoded
        hooks = hooks if hooks is not None else GenerationHooks()
        unet = unet if unet is not None else self.unet
        scheduler = make_scheduler(options.scheduler, self.scheduler)
        guidance = Guidance(options.guidance_context, options.guidance_global)
        context = self.global_context(encoded, unet)
        # One draw per video (not per window), so the shared part of the noise is the same in every window.
        shared_noise = None if options.noise_share == 0 else torch.randn(
            (encoded.masked.shape[1], 1, *encoded.masked.shape[-2:]), generator=window_generator(options.seed, -1))
        # One memory layout (contiguous) whether the latents were generated here or loaded by a resume: convolutions
        # round differently on channels-last tensors, and the written file must not depend on the path taken.
        generated = (hooks.generated.clone(memory_format=torch.contiguous_format) if hooks.generated is not None
                     else torch.zeros(encoded.masked.shape, dtype=encoded.masked.dtype))
        # --official-compat: what each frame finally shows is the last window that wrote it (the driver's files are
        # overwritten), while guides stay the first writer's latents; otherwise every frame shows its first writer
        shown = None
        if options.official_compat:
            shown = hooks.shown if hooks.shown is not None else generated.clone()
            hooks.shown = shown
        # the shared noise is a pattern fixed to the canvas: it stays with the content only where the camera holds
        # still, so a window where it moves (or cuts) gets no share (half a latent cell of drift is "still")
        known, factor = video.geometry.known, self.codec.downsample_factor
        motion = encoded.motion

        def share(window: Window) -> float:
            if options.noise_share == 0 or motion is None:
                return options.noise_share
            still = motion.still(min(window.frames), max(window.frames), known.w / factor, known.h / factor, 0.5)
            return options.noise_share if still else 0.0

        done = set(hooks.done)
        cost = self.generation_cost(options, video.plan)
        steps, branches = cost.steps, cost.branches if hooks.branches is None else len(hooks.branches)
        if hooks.on_start is not None:
            hooks.on_start([w for w in video.plan.windows if w.id not in done], steps, branches)
        stats = {"windows": len(video.plan.windows), "unet_calls": 0}
        for level in video.plan.levels:
            mine = [w for i, w in enumerate(level) if w.id not in done and (hooks.owns is None or hooks.owns(i, w))]
            for batch_windows in _batches(mine, options.batch_windows):
                if hooks.before_batch is not None:
                    context = hooks.before_batch(batch_windows)
                batch = self.window_batch(batch_windows, encoded, generated, official_fps=options.official_compat)
                on_step = None if hooks.on_step is None else _count_steps(hooks.on_step, len(batch_windows))
                out = sample_windows(
                    unet, scheduler, batch, steps=options.steps,
                    # --official-compat: the driver re-seeds one generator per window, so all start from one noise
                    generators=[torch.Generator().manual_seed(options.seed) if options.official_compat
                                else window_generator(options.seed, w.id) for w in batch_windows],
                    guidance=guidance, context=context, init=options.init, strength=options.strength,
                    official_compat=options.official_compat, branches=hooks.branches, on_step=on_step,
                    noise_share=[share(w) for w in batch_windows], shared_noise=shared_noise,
                    replace_known=options.replace_known,
                )
                stats["unet_calls"] += steps * branches * len(batch_windows)
                for row, window in enumerate(batch_windows):
                    fresh = [j for j, f in enumerate(window.frames) if f not in window.guides]
                    frames = [window.frames[j] for j in fresh]
                    generated[frames] = out[row, :, fresh].permute(1, 0, 2, 3).cpu().float()
                    if shown is not None:  # every real frame of the window, guides included
                        real = len(window.frames)
                        shown[list(window.frames)] = out[row, :, :real].permute(1, 0, 2, 3).cpu().float()
                    done.add(window.id)
                if hooks.after_batch is not None:
                    hooks.after_batch(generated, done, batch_windows)
            if hooks.after_level is not None:
                generated = hooks.after_level(generated, level, mine)
                done.update(w.id for w in level)
        return (generated if shown is None else shown), stats

    @torch.no_grad()
    def decode_frames(self, source, latents: torch.Tensor, geometry: Geometry, options: OutpaintOptions,
                      motion: CameraMotion | None = None) -> Iterator[np.ndarray]:
        """Decode the generated canvases in small batches and compose each with its source frame (streaming);
        ``motion``: the camera's, measured while encoding (``EncodedVideo.motion``), for the border's stages."""
        codec = self.codec
        frames = source.iter_frames()
        step = options.vae_batch
        # --official-output is the official hard paste: no feather, no colour correction
        official = options.official_output
        feather, colour_match = (0, False) if official else (options.feather, options.colour_match)

        def decoded() -> Iterator[tuple[np.ndarray, np.ndarray]]:  # (source frame, canvas)
            for start in range(0, latents.shape[0], step):
                # contiguous: the same decoded pixels whatever layout the caller's latents have (see generate)
                for canvas in signed_to_uint8(codec.decode(latents[start: start + step].contiguous())):
                    yield next(frames), canvas

        pairs = decoded()
        if options.steady:
            pairs = steady_canvases(pairs, geometry.known, options.steady, motion=motion)
        composed = ((frame, compose(frame, canvas, geometry, feather=feather, colour_match=colour_match,
                                     texture=options.texture or 0.0))
                    for frame, canvas in pairs)
        if options.keep_seen:
            yield from keep_seen(composed, geometry.output_known, motion=motion)
        else:
            yield from (output for _, output in composed)


def _batches(windows: list[Window], limit: int) -> Iterator[list[Window]]:
    """Consecutive batches of windows that depend on no window in the same batch and have equal length."""
    batch: list[Window] = []
    for window in windows:
        fits = (
            batch and len(batch) < max(1, limit) and window.level == batch[0].level
            and len(window.model_frames) == len(batch[0].model_frames)
            and not set(window.depends_on) & {w.id for w in batch}
        )
        if batch and not fits:
            yield batch
            batch = []
        batch.append(window)
    if batch:
        yield batch


def _count_steps(on_step: Callable[[int], None], windows: int) -> Callable[[int, int], None]:
    """The sampler's per-step callback (step, total) as "one step done for this many windows"."""
    return lambda step, total: on_step(windows)

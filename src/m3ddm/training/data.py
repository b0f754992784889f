"""Training data: video discovery, clip sampling, random-resized crops, mask plans, DataLoader plumbing.

Every random choice for training sample number ``k`` comes from ``numpy.random.default_rng([seed, k])``:
which video, stride, start frame, crop and mask plan. A sample is thus a pure function of ``(seed, k)``,
independent of worker count, batch composition and interruptions, and resuming only needs the step counter
(the "data sampling state"). Process ``r`` of ``W`` takes, at micro-step ``m``, the samples
``(m * W + r) * B`` to ``(m * W + r) * B + B - 1``.

Clips: ``F`` frames at stride ``s`` uniform in ``stride_range`` (capped so the clip fits); fps conditioning =
``floor(source_fps / s)`` (at least 1), the value inference passes (``fps // stride``). Videos shorter than
``F`` frames are, by default, used at stride 1 with their last frame repeated (``short_videos: pad``), or
skipped (``short_videos: skip``). Global frames: ``g`` frames at ``floor(linspace(0, T - 1, g))`` over the
whole video, cropped like the clip and blacked out (-1) where the clip's mask is 1 before any encoding: they
never show the region to generate.

An unreadable video met while training is skipped with a warning and counted (``skipped`` in the batch); the
sample is redrawn from the same generator, so the run goes on and stays deterministic.
"""

from __future__ import annotations

import functools
import json
import math
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from m3ddm.errors import UserError
from m3ddm.io.frames import IMAGE_SUFFIXES
from m3ddm.planning import conditioning_fps, global_frame_indices
from m3ddm.training.masking import (
    MaskPlan,
    MaskProbabilities,
    latent_mask_from_pixels,
    plan_pixel_mask,
    sample_mask_plan,
)
from m3ddm.utils.pixels import to_signed

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm")
# DAVIS and YouTube-VOS keep segmentation masks beside the frames; they are not videos to learn from.
_IGNORED_DIR_PREFIXES = ("Annotations",)
SYNTHETIC_PREFIX = "synthetic:"
MAX_READ_ATTEMPTS = 20


@dataclass(frozen=True)
class VideoEntry:
    """One readable video: a file, a frame folder, or ``synthetic:<index>``."""

    path: str
    num_frames: int
    fps: float
    height: int
    width: int


@dataclass(frozen=True)
class ClipSettings:
    num_frames: int = 16
    size: tuple[int, int] = (256, 256)  # (height, width)
    stride_range: tuple[int, int] = (1, 30)
    crop_scale: tuple[float, float] = (0.5, 1.0)
    crop_aspect: tuple[float, float] = (0.8, 1.25)
    num_global_frames: int = 16
    global_frames: bool = True  # False for the msdm / sdm variants: nothing is read or returned
    short_videos: str = "pad"


# --- discovery and indexing ----------------------------------------------------------------------------

def _is_ignored(path: Path, root: Path) -> bool:
    parts = path.relative_to(root).parts
    return any(part.startswith(_IGNORED_DIR_PREFIXES) or part.startswith(".") for part in parts)


def discover_videos(root: str | os.PathLike) -> list[Path]:
    """Video files (mp4, avi, mov, mkv, webm) and frame folders under ``root``, sorted.

    A frame folder is any folder holding image files directly (DAVIS ``JPEGImages/480p/<seq>/``, YouTube-VOS
    ``JPEGImages/<id>/``); folders named ``Annotations*`` and hidden ones are ignored, and DAVIS's
    ``Full-Resolution`` copies are skipped where a ``480p`` sibling holds the same sequences.
    """
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"data folder not found: {root}")
    found: list[Path] = []
    for folder, dirs, files in os.walk(root):
        folder_path = Path(folder)
        if folder_path != root and _is_ignored(folder_path, root):
            dirs[:] = []
            continue
        if "480p" in dirs and "Full-Resolution" in dirs:
            dirs.remove("Full-Resolution")
        dirs.sort()
        if any(name.lower().endswith(IMAGE_SUFFIXES) for name in files):
            found.append(folder_path)
        found.extend(folder_path / name for name in sorted(files)
                     if name.lower().endswith(VIDEO_EXTENSIONS) and not name.startswith("."))
    return sorted(found)


def _open_source(path: str):
    from m3ddm.io import open_video_source

    return open_video_source(path, exact_count=False)  # reading only: the count was taken at indexing


def probe_entry(
    path: str | os.PathLike, frame_folder_fps: float | None = None, exact_count: bool = True
) -> VideoEntry:
    """Open a video or frame folder and read its size, length and fps (raises on unreadable input).

    ``exact_count`` counts a file's frames by decoding it (slow, always right); otherwise the container's
    header is trusted (fast; a wrong count makes clips near the end fail to read, and they are skipped).
    """
    from m3ddm.io import open_video_source

    fps_override = frame_folder_fps if Path(path).is_dir() else None
    source = open_video_source(str(path), fps=fps_override, exact_count=exact_count)
    try:
        info = source.info
        entry = VideoEntry(str(path), int(info.num_frames), float(info.fps), int(info.height), int(info.width))
    finally:
        _close(source)
    usable_fps = math.isfinite(entry.fps) and entry.fps > 0
    if min(entry.num_frames, entry.width, entry.height) < 1 or not usable_fps:
        raise ValueError(f"no usable frames (frames={entry.num_frames}, fps={entry.fps})")
    return entry


def _close(source) -> None:
    close = getattr(source, "close", None)
    if callable(close):
        close()


def index_videos(
    paths: Sequence[str | os.PathLike], *, frame_folder_fps: float | None = None, exact_count: bool = True
) -> tuple[list[VideoEntry], list[tuple[str, str]]]:
    """Probe every path; unreadable ones are returned as ``(path, reason)`` instead of raising."""
    entries, failures = [], []
    for path in paths:
        try:
            entries.append(probe_entry(path, frame_folder_fps, exact_count))
        except Exception as exc:  # any decoder error: skip this one video, never the whole run
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            failures.append((str(path), reason))
    return entries, failures


def save_index(path: str | os.PathLike, root: str, entries: Sequence[VideoEntry],
               failures: Sequence[tuple[str, str]]) -> None:
    from m3ddm.utils.atomic import atomic_path

    data = {"root": str(root), "entries": [asdict(e) for e in entries], "failures": [list(f) for f in failures]}
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(data))


def load_index(path: str | os.PathLike, root: str) -> tuple[list[VideoEntry], list[tuple[str, str]]] | None:
    """A saved index for ``root``, or None when there is none (or it was made for another folder)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        if data.get("root") != str(root):
            return None
        return [VideoEntry(**e) for e in data["entries"]], [tuple(f) for f in data["failures"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"data.index_file {path} is unreadable ({exc}); delete it to rebuild it") from None


def synthetic_entries(
    num_videos: int, num_frames: int, height: int, width: int, fps: float
) -> list[VideoEntry]:
    return [VideoEntry(f"{SYNTHETIC_PREFIX}{i}", num_frames, float(fps), height, width)
            for i in range(num_videos)]


def usable_entries(entries: Sequence[VideoEntry], settings: ClipSettings) -> list[VideoEntry]:
    if settings.short_videos == "skip":
        return [e for e in entries if e.num_frames >= settings.num_frames]
    return list(entries)


# --- pure sampling pieces ----------------------------------------------------------------------------------

def sample_clip_indices(
    rng: np.random.Generator, num_video_frames: int, num_frames: int, stride_range: tuple[int, int]
) -> tuple[list[int], int]:
    """Frame indices of one clip and its stride. Short videos: stride 1, last frame repeated."""
    if num_video_frames < num_frames:
        return [min(i, num_video_frames - 1) for i in range(num_frames)], 1
    max_stride = (num_video_frames - 1) // (num_frames - 1)
    lo, hi = stride_range
    hi = min(hi, max_stride)
    lo = min(lo, hi)
    stride = int(rng.integers(lo, hi + 1))
    start = int(rng.integers(0, num_video_frames - (num_frames - 1) * stride))
    return [start + i * stride for i in range(num_frames)], stride


def sample_crop(
    rng: np.random.Generator,
    source_hw: tuple[int, int],
    out_hw: tuple[int, int],
    scale: tuple[float, float],
    aspect: tuple[float, float],
) -> tuple[int, int, int, int]:
    """A random-resized crop box ``(top, left, height, width)`` in source pixels.

    Area share uniform in ``scale``; aspect (width / height) log-uniform in ``aspect`` times the output's
    aspect; a box larger than the frame is shrunk to fit, keeping its aspect.
    """
    sh, sw = source_hw
    oh, ow = out_hw
    area = sh * sw * rng.uniform(*scale)
    log_lo, log_hi = math.log(aspect[0]), math.log(aspect[1])
    ratio = (ow / oh) * math.exp(rng.uniform(log_lo, log_hi))
    ch, cw = math.sqrt(area / ratio), math.sqrt(area * ratio)
    fit = min(1.0, sh / ch, sw / cw)  # too big for the frame: shrink, keeping the aspect
    ch, cw = max(1, min(sh, int(round(ch * fit)))), max(1, min(sw, int(round(cw * fit))))
    top = int(rng.integers(0, sh - ch + 1))
    left = int(rng.integers(0, sw - cw + 1))
    return top, left, ch, cw


def crop_resize(frame: np.ndarray, box: tuple[int, int, int, int], out_hw: tuple[int, int]) -> np.ndarray:
    top, left, h, w = box
    crop = frame[top: top + h, left: left + w]
    oh, ow = out_hw
    interp = cv2.INTER_AREA if (h > oh or w > ow) else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(crop), (ow, oh), interpolation=interp)


def center_box(source_hw: tuple[int, int], out_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """The largest centred box with the output's aspect (used by the latent cache)."""
    sh, sw = source_hw
    oh, ow = out_hw
    scale = min(sh / oh, sw / ow)
    h, w = max(1, int(round(oh * scale))), max(1, int(round(ow * scale)))
    return (sh - h) // 2, (sw - w) // 2, h, w


# --- reading -------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=4)
def _synthetic_frames(index: int, seed: int, frames: int, height: int, width: int, fps: float) -> np.ndarray:
    from m3ddm.training.synthetic import synthetic_video

    return synthetic_video(index, seed=seed, num_frames=frames, height=height, width=width, fps=fps).frames


def read_entry_frames(
    entry: VideoEntry, indices: Sequence[int], synthetic_seed: int = 0
) -> dict[int, np.ndarray]:
    """RGB uint8 frames of ``entry`` at ``indices`` (a dict index -> frame)."""
    wanted = sorted(set(int(i) for i in indices))
    if entry.path.startswith(SYNTHETIC_PREFIX):
        frames = _synthetic_frames(int(entry.path[len(SYNTHETIC_PREFIX):]), synthetic_seed, entry.num_frames,
                                   entry.height, entry.width, entry.fps)
        return {i: frames[i] for i in wanted}
    source = _open_source(entry.path)
    try:
        got = source.read(wanted)
    finally:
        _close(source)
    got = list(got)
    if len(got) != len(wanted):
        raise ValueError(f"asked for {len(wanted)} frames, got {len(got)}")
    return {i: np.asarray(f) for i, f in zip(wanted, got, strict=True)}


# --- datasets --------------------------------------------------------------------------------------------

def _warn_unreadable(path: str, exc: BaseException) -> None:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    warnings.warn(f"skipping unreadable video {path}: {reason}", RuntimeWarning, stacklevel=3)


class ClipDataset(Dataset):
    """Training sample number ``k`` -> one clip with its mask plan, decoded and cropped (runs in workers).

    Returns a dict of tensors: ``frames`` uint8 ``[F, H, W, 3]``; ``mask`` float32 ``[1, H, W]`` (1 = to
    generate; one mask for all frames); ``guides`` bool ``[F]``; ``drop_context`` / ``drop_global`` bool;
    ``fps`` float32; ``skipped`` int64 (unreadable videos met while drawing this sample); ``sample_id`` int64;
    and, when global frames are on, ``global_frames`` uint8 ``[g, H, W, 3]``, already blacked out (0, i.e. -1
    after normalisation) where ``mask`` is 1.
    """

    def __init__(
        self,
        entries: Sequence[VideoEntry],
        settings: ClipSettings,
        mask_probs: MaskProbabilities,
        seed: int = 0,
        synthetic_seed: int = 0,
        read_frames: Callable[[VideoEntry, Sequence[int]], dict[int, np.ndarray]] | None = None,
    ):
        if not entries:
            raise UserError("no usable videos to train on")
        self.entries = list(entries)
        self.settings = settings
        self.mask_probs = mask_probs
        self.seed = seed
        self.synthetic_seed = synthetic_seed
        self._read = read_frames

    def __len__(self) -> int:  # samples are addressed by number; this is only the size of one "pass"
        return len(self.entries)

    def read(self, entry: VideoEntry, indices: Sequence[int]) -> dict[int, np.ndarray]:
        if self._read is not None:
            return self._read(entry, indices)
        return read_entry_frames(entry, indices, self.synthetic_seed)

    def draw(self, rng: np.random.Generator) -> tuple[VideoEntry, list[int], int, MaskPlan, tuple, list[int]]:
        """All random choices for one sample, in a fixed order (before any decoding)."""
        s = self.settings
        entry = self.entries[int(rng.integers(len(self.entries)))]
        indices, stride = sample_clip_indices(rng, entry.num_frames, s.num_frames, s.stride_range)
        plan = sample_mask_plan(rng, s.num_frames, self.mask_probs)
        box = sample_crop(rng, (entry.height, entry.width), s.size, s.crop_scale, s.crop_aspect)
        global_idx = global_frame_indices(entry.num_frames, s.num_global_frames) if s.global_frames else []
        return entry, indices, stride, plan, box, global_idx

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, int(k)])
        skipped = 0
        for _ in range(MAX_READ_ATTEMPTS):
            entry, indices, stride, plan, box, global_idx = self.draw(rng)
            try:
                frames = self.read(entry, [*indices, *global_idx])
            except Exception as exc:  # a bad file must never kill a long run
                _warn_unreadable(entry.path, exc)
                skipped += 1
                continue
            return self._assemble(k, entry, indices, stride, plan, box, global_idx, frames, skipped)
        raise RuntimeError(f"{MAX_READ_ATTEMPTS} videos in a row could not be read (sample {k}): is the data "
                           "intact?")

    def _assemble(self, k, entry, indices, stride, plan, box, global_idx, frames, skipped) -> dict:
        s = self.settings
        h, w = s.size
        mask = plan_pixel_mask(plan, h, w)
        clip = np.stack([crop_resize(_rgb(frames[i]), box, s.size) for i in indices])
        out = {
            "frames": torch.from_numpy(clip),
            "mask": torch.from_numpy(mask)[None],
            "guides": torch.tensor(plan.guide_frames, dtype=torch.bool),
            "drop_context": torch.tensor(plan.drop_context),
            "drop_global": torch.tensor(plan.drop_global),
            "fps": torch.tensor(conditioning_fps(entry.fps, stride), dtype=torch.float32),
            "skipped": torch.tensor(skipped, dtype=torch.int64),
            "sample_id": torch.tensor(int(k), dtype=torch.int64),
        }
        if s.global_frames:
            known = (mask < 0.5)[None, :, :, None]
            glob = np.stack([crop_resize(_rgb(frames[i]), box, s.size) for i in global_idx])
            out["global_frames"] = torch.from_numpy(np.where(known, glob, 0).astype(np.uint8))
        return out


def _rgb(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.ndim == 2:
        frame = np.repeat(frame[..., None], 3, axis=2)
    return np.ascontiguousarray(frame[..., :3]).astype(np.uint8, copy=False)


class LatentClipDataset(Dataset):
    """Like ``ClipDataset`` but over a pre-encoded latent cache (no decoding, no codec in the loop).

    The cache holds each video's frames centre-cropped to the training aspect and encoded once (posterior
    mean). A cache encoded larger than ``settings.size`` gives each sample a random window of it (whole latent
    cells: the random crop, without re-encoding); one at ``settings.size`` has no random crop. The masked context is
    built in latent space (latent cells under the mask become the black-frame latent) rather than by encoding
    letterboxed frames; inference does the same for such a model (``context_encoding: latent_mask``). Returns
    ``latents`` float32 ``[C, F, h, w]``, ``latent_mask`` ``[1, h, w]``, (with global frames) ``global_latents``
    ``[g, C, h, w]`` masked the same way, and the plan fields of ``ClipDataset``.
    """

    def __init__(self, cache_dir: str | os.PathLike, settings: ClipSettings, mask_probs: MaskProbabilities,
                 seed: int = 0):
        self.cache = LatentCache(cache_dir)
        self.entries = self.cache.entries
        if not self.entries:
            raise UserError(f"latent cache {cache_dir} holds no videos")
        self.settings = settings
        self.mask_probs = mask_probs
        self.seed = seed

    def __len__(self) -> int:
        return len(self.entries)

    def black_latent(self) -> torch.Tensor:
        """The black frame's latent at the samples' size ``[C, h, w]`` (what masked cells are filled with)."""
        return self.cache.black_latent(tuple(side // self.cache.factor for side in self.settings.size))

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        s = self.settings
        rng = np.random.default_rng([self.seed, int(k)])
        position = int(rng.integers(len(self.entries)))
        entry = self.entries[position]
        indices, stride = sample_clip_indices(rng, entry.num_frames, s.num_frames, s.stride_range)
        plan = sample_mask_plan(rng, s.num_frames, self.mask_probs)
        pixel_mask = plan_pixel_mask(plan, *s.size)
        lmask = torch.from_numpy(np.ascontiguousarray(latent_mask_from_pixels(pixel_mask, self.cache.factor)))
        window = self.cache.window(rng, lmask.shape)
        latents = self.cache.latents(position)[..., window[0], window[1]]  # [T, C, h, w]
        black = self.cache.black_latent()[..., window[0], window[1]]  # [C, h, w]
        glob = latents[global_frame_indices(entry.num_frames, s.num_global_frames)] if s.global_frames else None
        out = latent_clip_sample(latents[indices], lmask, plan, conditioning_fps(entry.fps, stride), black, glob)
        out["skipped"] = torch.tensor(0, dtype=torch.int64)
        out["sample_id"] = torch.tensor(int(k), dtype=torch.int64)
        return out


def latent_clip_sample(clip: torch.Tensor, latent_mask: torch.Tensor, plan: MaskPlan, fps: float,
                       black: torch.Tensor, global_latents: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """One latent-space training sample: ``clip`` ``[F, C, h, w]``, ``latent_mask`` ``[h, w]`` (1 = hidden), the
    plan's guides and dropouts; global frames ``[g, C, h, w]`` are masked like the clip (hidden cells black)."""
    out = {
        "latents": clip.permute(1, 0, 2, 3).float().contiguous(),
        "latent_mask": latent_mask[None],
        "guides": torch.tensor(plan.guide_frames, dtype=torch.bool),
        "drop_context": torch.tensor(plan.drop_context),
        "drop_global": torch.tensor(plan.drop_global),
        "fps": torch.tensor(fps, dtype=torch.float32),
    }
    if global_latents is not None:
        out["global_latents"] = torch.where(latent_mask[None, None] > 0.5, black[None].float(), global_latents.float())
    return out


# --- latent cache ------------------------------------------------------------------------------------------

CACHE_INDEX = "index.json"


class LatentCache:
    """A latent cache folder: ``index.json``, ``black.safetensors``, ``videos/<n>.safetensors``."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        index_file = self.folder / CACHE_INDEX
        if not index_file.is_file():
            raise UserError(f"not a latent cache (no {CACHE_INDEX}): {self.folder}")
        meta = json.loads(index_file.read_text())
        self.size = tuple(meta["size"])
        self.factor = int(meta["downsample_factor"])
        self.entries = [VideoEntry(**e) for e in meta["entries"]]
        self._black: torch.Tensor | None = None

    def latents(self, position: int) -> torch.Tensor:
        from safetensors.torch import load_file

        return load_file(str(self.folder / "videos" / f"{position:06d}.safetensors"))["latents"]

    def black_latent(self, latent_hw: tuple[int, int] | None = None) -> torch.Tensor:
        """The black frame's latent ``[C, h, w]``; with ``latent_hw``, its central window of that size."""
        if self._black is None:
            from safetensors.torch import load_file

            self._black = load_file(str(self.folder / "black.safetensors"))["latent"]
        if latent_hw is None:
            return self._black
        h, w = self._black.shape[-2:]
        top, left = (h - latent_hw[0]) // 2, (w - latent_hw[1]) // 2
        return self._black[:, top : top + latent_hw[0], left : left + latent_hw[1]]

    def window(self, rng: np.random.Generator, latent_hw: tuple[int, int]) -> tuple[slice, slice]:
        """A random ``latent_hw`` window of the cached latents (rows, columns); the whole latent when equal."""
        h, w = (side // self.factor for side in self.size)
        if latent_hw[0] > h or latent_hw[1] > w:
            raise UserError(f"latent cache {self.folder} holds {h}x{w} latents; a sample needs {latent_hw}")
        top = int(rng.integers(h - latent_hw[0] + 1))
        left = int(rng.integers(w - latent_hw[1] + 1))
        return slice(top, top + latent_hw[0]), slice(left, left + latent_hw[1])


@torch.no_grad()
def build_latent_cache(
    folder: str | os.PathLike,
    entries: Sequence[VideoEntry],
    codec,
    size: tuple[int, int],
    *,
    synthetic_seed: int = 0,
    batch_size: int = 16,
    progress: Callable[[int, int], None] | None = None,
) -> list[tuple[str, str]]:
    """Encode every frame of ``entries`` (centre crop to ``size``) into ``folder``; returns unreadable videos.

    Each file is written atomically and ``index.json`` last: an interrupted build leaves no usable cache.
    """
    from safetensors.torch import save_file

    from m3ddm.utils.atomic import atomic_path

    folder = Path(folder)
    (folder / "videos").mkdir(parents=True, exist_ok=True)
    h, w = size
    kept: list[VideoEntry] = []
    failures: list[tuple[str, str]] = []
    for n, entry in enumerate(entries):
        try:
            frames = read_entry_frames(entry, range(entry.num_frames), synthetic_seed)
        except Exception as exc:
            failures.append((entry.path, str(exc).splitlines()[0] if str(exc) else type(exc).__name__))
            continue
        box = center_box((entry.height, entry.width), size)
        pixels = np.stack([crop_resize(_rgb(frames[i]), box, size) for i in range(entry.num_frames)])
        tensor = to_signed(pixels)
        latents = codec.encode(tensor, batch_size=batch_size).to("cpu", torch.float16)
        with atomic_path(folder / "videos" / f"{len(kept):06d}.safetensors") as tmp:
            save_file({"latents": latents.contiguous()}, str(tmp))
        kept.append(entry)
        if progress:
            progress(n + 1, len(entries))
    black = codec.encode(-torch.ones(1, 3, h, w))[0].to("cpu", torch.float32)
    with atomic_path(folder / "black.safetensors") as tmp:
        save_file({"latent": black.contiguous()}, str(tmp))
    meta = {"size": list(size), "downsample_factor": int(codec.downsample_factor),
            "scaling_factor": codec.scaling_factor, "entries": [asdict(e) for e in kept]}
    with atomic_path(folder / CACHE_INDEX) as tmp:
        tmp.write_text(json.dumps(meta, indent=1))
    return failures


# --- sampler ---------------------------------------------------------------------------------------------

class SampleNumberBatches(Sampler[list[int]]):
    """Endless batches of sample numbers for one process, starting at a micro-step (see module docstring)."""

    def __init__(self, batch_size: int, first_micro_step: int = 0, rank: int = 0, world_size: int = 1):
        self.batch_size = batch_size
        self.first_micro_step = first_micro_step
        self.rank = rank
        self.world_size = world_size

    def __iter__(self) -> Iterator[list[int]]:
        micro = self.first_micro_step
        while True:
            base = (micro * self.world_size + self.rank) * self.batch_size
            yield list(range(base, base + self.batch_size))
            micro += 1

    def __len__(self) -> int:  # endless; DataLoader only needs this for its own length
        return 2**62

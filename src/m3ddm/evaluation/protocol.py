"""The outpainting evaluation protocol: cut the border off ground-truth videos, outpaint it back, compare.

For each clip and mask ratio, ``ratio`` of the width (``horizontal``, the paper's setting; 0.25 and 0.666)
or of the height (``vertical``) is removed, split equally between the two sides (odd pixel on the
right/bottom). Each method restores the full frame from the cropped video; the result is scored against
the ground truth on the full frame and on the generated region only. Per-frame scores are averaged per
video, and per-video scores over clips; FVD compares the set of predictions with the set of ground truths
(for the region variant, the known rectangle is painted mid-grey in both, so only generated pixels differ).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from m3ddm.errors import UserError
from m3ddm.evaluation.baselines import Method, resolve_method
from m3ddm.evaluation.fvd import I3DFeatures, fvd_from_features
from m3ddm.evaluation.metrics import frame_scores, region_mask, seam_ratio, seam_steps
from m3ddm.evaluation.temporal import FLOW_ESTIMATED_ON, temporal_scores

DIRECTIONS = ("horizontal", "vertical", "all", "left", "right", "top", "bottom")
DEFAULT_RATIOS = (0.25, 0.666)
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".ts")
IMAGE_METRICS = ("mse", "psnr", "ssim", "detail")
TEMPORAL_METRICS = ("warp_error", "flicker")
SEAM_METRICS = ("ratio", "step", "inside")  # score_video's "seam": the seam metric and its two halves
SCOPES = ("full", "region")
REGION_FILL = 128  # the known rectangle's value in region-only FVD inputs

PROTOCOL_NOTES = {
    "mask": "ratio = fraction of the width (horizontal) or height (vertical) removed, split equally between "
    "the two sides (odd pixel right/bottom); 'all' removes it on both axes",
    "ranges": "MSE, PSNR, SSIM and FVD on frames in [0, 1] (I3D input mapped to [-1, 1]); LPIPS on [-1, 1]",
    "averaging": "per-frame scores averaged per video, then per-video scores averaged over clips "
    "(PSNR is the mean of per-frame PSNRs)",
    "psnr": "10 log10(1 / MSE) per frame, capped at 100 dB for exact frames",
    "ssim": "Gaussian window sigma 1.5, 11 taps, K1 0.01, K2 0.03, data range 1, per RGB channel then "
    "averaged (= scikit-image gaussian_weights=True, use_sample_covariance=False); full frame excludes the "
    "5-px border, region = mean of the SSIM map over the region",
    "detail": "detail ratio = mean fine detail (|frame - its Gaussian blur|, sigma 1.5, averaged over channels) "
    "of the prediction / of the ground truth over the scope's pixels, per frame; about 1 = as much texture as "
    "the truth, below = smoother (a blur is near 0), above = noisier",
    "lpips": "AlexNet LPIPS (v0.1 linear heads); region = per-layer distance maps averaged with the region "
    "mask area-resampled to each layer",
    "fvd": "Kinetics-400 I3D, 16 uniformly sampled frames per video, TF1 bilinear resize to 224x224, "
    "features = the 400 logits; Frechet distance in float64; region FVD paints the known rectangle "
    "mid-grey in prediction and ground truth",
    "seam": "seam ratio = mean absolute step across the seam line (first known row/column vs the generated "
    "one next to it) / mean absolute step between neighbouring rows/columns in the 4 just inside the known "
    "region, pooled over the sides with a border, the positions along them, the channels and the frames "
    "(values in [0, 1]; no ground truth needed); about 1 = no visible seam, above = a visible seam, below = "
    "a border flatter than the image (replicate: 0); 'gt' is the same statistic of the ground truth",
    "temporal": "warp error = mean squared difference between frame t and frame t-1 warped by Farneback "
    f"flow estimated on the {FLOW_ESTIMATED_ON} (occlusions removed by a forward-backward check); "
    "flicker = mean absolute difference of consecutive frames",
}


# ------------------------------------------------------------------------------------------------ masking


def parse_ratios(text: str | Sequence[float]) -> list[float]:
    """``"0.25,0.666"`` -> [0.25, 0.666]; each in (0, 1)."""
    parts = text.split(",") if isinstance(text, str) else list(text)
    try:
        ratios = [float(p) for p in parts if str(p).strip()]
    except ValueError:
        raise UserError(f"cannot read mask ratios {text!r}; use numbers such as 0.25,0.666") from None
    if not ratios or not all(0 < r < 1 for r in ratios):
        raise UserError(f"mask ratios must be between 0 and 1 (exclusive), got {text!r}")
    return ratios


def crop_pads(height: int, width: int, ratio: float, direction: str = "horizontal") -> tuple[int, int, int, int]:
    """Pixels ``(left, top, right, bottom)`` removed from a ``height`` x ``width`` frame."""
    if direction not in DIRECTIONS:
        raise UserError(f"unknown direction {direction!r}; use one of {', '.join(DIRECTIONS)}")
    if not 0 < ratio < 1:
        raise UserError(f"mask ratio must be between 0 and 1, got {ratio}")
    cut_w, cut_h = int(round(ratio * width)), int(round(ratio * height))
    left = top = right = bottom = 0
    if direction in ("horizontal", "all"):
        left, right = cut_w // 2, cut_w - cut_w // 2
    if direction in ("vertical", "all"):
        top, bottom = cut_h // 2, cut_h - cut_h // 2
    left, right = (cut_w if direction == "left" else left), (cut_w if direction == "right" else right)
    top, bottom = (cut_h if direction == "top" else top), (cut_h if direction == "bottom" else bottom)
    if left + right + top + bottom == 0:
        raise UserError(f"mask ratio {ratio} removes no pixel from a {width}x{height} frame")
    if left + right >= width or top + bottom >= height:
        raise UserError(f"mask ratio {ratio} leaves no known pixel in a {width}x{height} frame")
    return left, top, right, bottom


def crop_known(frames: np.ndarray, pad_px: Sequence[int]) -> np.ndarray:
    left, top, right, bottom = pad_px
    h, w = frames.shape[1:3]
    return np.ascontiguousarray(frames[:, top : h - bottom, left : w - right])


# ------------------------------------------------------------------------------------------------ datasets


@dataclass(frozen=True)
class Clip:
    name: str
    path: Path


def discover_clips(data_dir: str | os.PathLike) -> list[Clip]:
    """Videos in ``data_dir``, or its frame-folder sequences (DAVIS ``JPEGImages/480p``, YouTube-VOS
    ``[valid|train]/JPEGImages``, or plain subfolders of images), or ``data_dir`` itself as one sequence."""
    from m3ddm.io import find_sequence_folders
    from m3ddm.io.frames import is_image

    root = Path(data_dir)
    if not root.is_dir():
        raise UserError(f"data folder not found: {root}")
    videos = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
    folders = find_sequence_folders(root)
    if not folders and any(is_image(p) for p in root.iterdir()):
        folders = [root]
    clips, seen = [], set()
    for path in [*videos, *folders]:
        name = path.stem if path.is_file() else path.name
        while name in seen:
            name += "_"
        seen.add(name)
        clips.append(Clip(name, path))
    if not clips:
        raise UserError(f"no videos ({'/'.join(e[1:] for e in VIDEO_EXTENSIONS[:5])}...) or frame folders in {root}")
    return clips


def _resize_short_side(frames: np.ndarray, size: int) -> np.ndarray:
    h, w = frames.shape[1:3]
    scale = size / min(h, w)
    new_w, new_h = max(2, int(round(w * scale / 2)) * 2), max(2, int(round(h * scale / 2)) * 2)
    if (new_w, new_h) == (w, h):
        return frames
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return np.stack([cv2.resize(f, (new_w, new_h), interpolation=interp) for f in frames])


def read_video(path: str | os.PathLike, max_frames: int | None = None) -> tuple[np.ndarray, float]:
    """All frames (uint8 ``[F, H, W, 3]``, at most ``max_frames``) and the frame rate of a file or folder."""
    from m3ddm.io import open_video_source

    try:
        source = open_video_source(path)
        frames = list(islice(source.iter_frames(), max_frames))
    except UserError:
        raise
    except Exception as exc:  # PyAV/OpenCV errors: a broken or unsupported file
        raise UserError(f"cannot read video {path}: {exc}") from exc
    if not frames:
        raise UserError(f"no frames in {path}")
    return np.stack(frames), float(source.info.fps)


def load_clip(clip: Clip, max_frames: int | None = None, size: int | None = None) -> tuple[np.ndarray, float]:
    """A clip's frames, cut to ``max_frames`` and resized so the short side is ``size`` (even sides)."""
    frames, fps = read_video(clip.path, max_frames)
    if size:
        frames = _resize_short_side(frames, size)
    return frames, fps


# ------------------------------------------------------------------------------------------------- scoring


def finite_mean(values: Sequence[float]) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def score_video(
    pred: np.ndarray, gt: np.ndarray, pad_px: Sequence[int], lpips_model: Any | None = None
) -> dict[str, Any]:
    """Scores of one predicted video: ``{"full": {...}, "region": {...}, "seam": {...}, "frames": F,
    "per_frame": ...}``; ``seam`` is :func:`seam_scores` of the prediction plus ``gt``, the ground truth's ratio."""
    if pred.shape != gt.shape:
        raise UserError(f"prediction {tuple(pred.shape)} and ground truth {tuple(gt.shape)} differ in size or length")
    if len(gt) == 0:
        raise UserError("no frames to score")
    mask = region_mask(gt.shape[1], gt.shape[2], pad_px)
    if not mask.any():
        raise UserError(f"pad {tuple(pad_px)} leaves no generated region")
    if mask.all():
        raise UserError(f"pad {tuple(pad_px)} leaves no known region")
    per_frame: dict[str, dict[str, list[float]]] = {s: {m: [] for m in IMAGE_METRICS} for s in SCOPES}
    for p, g in zip(pred, gt, strict=True):
        scores = frame_scores(p, g, mask)
        for scope in SCOPES:
            for metric in IMAGE_METRICS:
                per_frame[scope][metric].append(scores[scope][metric])
    if lpips_model is not None:
        from m3ddm.evaluation.lpips import lpips_per_frame

        values = lpips_per_frame(lpips_model, pred, gt, mask)
        for scope in SCOPES:
            per_frame[scope]["lpips"] = [float(v) for v in values[scope]]
    temporal = temporal_scores(pred, gt, mask)
    result: dict[str, Any] = {"frames": int(len(gt))}
    for scope in SCOPES:
        result[scope] = {metric: finite_mean(values) for metric, values in per_frame[scope].items()}
        result[scope].update(temporal[scope])
    seam = seam_scores(pred, pad_px)
    per_frame["seam"] = seam.pop("per_frame")
    result["seam"] = {**seam, "gt": seam_scores(gt, pad_px)["ratio"]}
    result["per_frame"] = per_frame
    return result


def seam_scores(frames: np.ndarray, pad_px: Sequence[int]) -> dict[str, Any]:
    """The seam metric of a video ``[F, H, W, C]`` whose known rectangle is inside ``pad_px``:
    ``{"ratio", "step", "inside", "per_frame": {"ratio": [...], "step": [...], "inside": [...]}}``.

    ``step`` and ``inside`` are means over frames; the video's ``ratio`` is ``step / inside`` (pooled, so a
    nearly flat frame does not dominate it); the per-frame ratios are each frame's own."""
    steps = [seam_steps(frame, pad_px) for frame in frames]
    per_frame = {
        "ratio": [seam_ratio(s, i) for s, i in steps],
        "step": [s for s, _ in steps],
        "inside": [i for _, i in steps],
    }
    step, inside = finite_mean(per_frame["step"]), finite_mean(per_frame["inside"])
    return {"ratio": seam_ratio(step, inside), "step": step, "inside": inside, "per_frame": per_frame}


def per_frame_rows(
    per_frame: dict[str, dict[str, list[float]]], *, clip: str, ratio: str, method: str
) -> list[dict[str, Any]]:
    """``score_video``'s per-frame scores as flat rows ``{clip, ratio, method, frame, full_mse, ..., region_ssim}``
    (the columns are ``<scope>_<metric>`` for every scope and metric present), for plots over time."""
    lengths = {len(values) for metrics in per_frame.values() for values in metrics.values()}
    if len(lengths) > 1:
        raise ValueError(f"per-frame score lists differ in length: {sorted(lengths)}")
    count = lengths.pop() if lengths else 0
    rows = []
    for t in range(count):
        row: dict[str, Any] = {"clip": clip, "ratio": ratio, "method": method, "frame": t}
        for scope, metrics in per_frame.items():
            for metric, values in metrics.items():
                row[f"{scope}_{metric}"] = float(values[t])
        rows.append(row)
    return rows


def paint_known(frames: np.ndarray, pad_px: Sequence[int], value: int = REGION_FILL) -> np.ndarray:
    """A copy with the known rectangle set to ``value``: what region-only FVD sees."""
    left, top, right, bottom = pad_px
    h, w = frames.shape[1:3]
    out = frames.copy()
    out[:, top : h - bottom, left : w - right] = value
    return out


# -------------------------------------------------------------------------------------------- evaluation


@dataclass
class EvalConfig:
    data: Path
    out: Path
    methods: list[str]
    ratios: list[float] = field(default_factory=lambda: list(DEFAULT_RATIOS))
    direction: str = "horizontal"
    max_frames: int | None = None
    size: int | None = None
    lpips_weights: Path | None = None
    i3d_weights: Path | None = None
    fvd: bool = True
    visuals: bool = True
    seed: int = 0
    device: str | None = None
    method_options: dict[str, Any] = field(default_factory=dict)


def _lpips_or_reason(weights: Path | None, device: str | None) -> tuple[Any | None, str | None]:
    if weights is None:
        return None, "n/a (no weights: pass --lpips-weights PATH)"
    if not Path(weights).exists():
        return None, f"n/a (no weights at {weights})"
    import torch

    from m3ddm.evaluation.lpips import load_lpips

    return load_lpips(weights, device or ("cuda" if torch.cuda.is_available() else "cpu")), None


def _ratio_key(ratio: float) -> str:
    return f"{ratio:g}"


def run_evaluation(config: EvalConfig, log: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Run every method on every clip and ratio; return the results (see :mod:`report` for the files)."""
    from m3ddm.evaluation import report

    if not config.methods:
        raise UserError("no --method given")
    if config.direction not in DIRECTIONS:
        raise UserError(f"unknown direction {config.direction!r}; use one of {', '.join(DIRECTIONS)}")
    methods: dict[str, Method] = {}
    for spec in config.methods:
        name, method = resolve_method(spec, seed=config.seed, options=config.method_options, device=config.device)
        methods[name] = method
    clips = discover_clips(config.data)
    lpips_model, lpips_reason = _lpips_or_reason(config.lpips_weights, config.device)
    i3d = I3DFeatures(config.i3d_weights, device=config.device, batch_size=8) if config.fvd else None
    if i3d is None:
        fvd_reason = "n/a (FVD disabled)"
    else:
        fvd_reason = None if i3d.available else f"n/a ({i3d.reason})"
    ratio_keys = [_ratio_key(r) for r in config.ratios]
    # features[scope][(method, ratio)] and gt_features[scope][ratio]
    features: dict[str, dict[tuple[str, str], list[np.ndarray]]] = {s: {} for s in SCOPES}
    gt_features: dict[str, dict[str, list[np.ndarray]]] = {s: {} for s in SCOPES}
    records: list[dict[str, Any]] = []
    per_frame: list[dict[str, Any]] = []  # one row per (clip, ratio, method, frame): report's per_frame.csv
    visuals: list[dict[str, str]] = []

    for index, clip in enumerate(clips):
        gt, fps = load_clip(clip, config.max_frames, config.size)
        size_text = f"{gt.shape[2]}x{gt.shape[1]}"
        log(f"[{index + 1}/{len(clips)}] {clip.name}: {len(gt)} frames {size_text} at {fps:g} fps")
        gt_full_feature = None
        for ratio, rkey in zip(config.ratios, ratio_keys, strict=True):
            pads = crop_pads(gt.shape[1], gt.shape[2], ratio, config.direction)
            known = crop_known(gt, pads)
            # I3D inputs of this clip and ratio, run as one batch at the end (much faster than one by one).
            fvd_inputs: list[tuple[dict, Any, np.ndarray]] = []
            if fvd_reason is None:
                if gt_full_feature is None:
                    fvd_inputs.append((gt_features["full"], "clip", gt))
                fvd_inputs.append((gt_features["region"], rkey, paint_known(gt, pads)))
            outputs: dict[str, np.ndarray] = {}
            for name, method in methods.items():
                start = time.perf_counter()
                pred = np.asarray(method(known, pads, fps))
                seconds = time.perf_counter() - start
                if pred.shape != gt.shape or pred.dtype != np.uint8:
                    raise UserError(
                        f"method {name} returned {pred.dtype} {tuple(pred.shape)}, expected uint8 {tuple(gt.shape)}"
                    )
                scores = score_video(pred, gt, pads, lpips_model)
                per_frame.extend(per_frame_rows(scores.pop("per_frame"), clip=clip.name, ratio=rkey, method=name))
                if fvd_reason is None:
                    fvd_inputs.append((features["full"], (name, rkey), pred))
                    fvd_inputs.append((features["region"], (name, rkey), paint_known(pred, pads)))
                record = {"clip": clip.name, "ratio": ratio, "method": name, "pad_px": list(pads)}
                record.update(size=[int(gt.shape[2]), int(gt.shape[1])], fps=fps, seconds=round(seconds, 3))
                records.append({**record, **scores})
                log(
                    f"    ratio {rkey} {name}: region PSNR {scores['region']['psnr']:.2f} dB, "
                    f"SSIM {scores['region']['ssim']:.4f}, seam {scores['seam']['ratio']:.2f} ({seconds:.1f} s)"
                )
                outputs[name] = pred
            if fvd_inputs:
                for (store, key, _), feature in zip(fvd_inputs, i3d([v for _, _, v in fvd_inputs]), strict=True):
                    if key == "clip":
                        gt_full_feature = feature
                    else:
                        store.setdefault(key, []).append(feature)
                gt_features["full"].setdefault(rkey, []).append(gt_full_feature)
            if config.visuals:
                visuals.append(report.write_clip_visuals(config.out, clip.name, rkey, gt, pads, outputs, fps))

    summary = summarise(records, methods, config.ratios, features, gt_features, fvd_reason, lpips_reason)
    return {
        "protocol": PROTOCOL_NOTES,
        "config": {
            "data": str(config.data),
            "methods": list(methods),
            "ratios": config.ratios,
            "direction": config.direction,
            "max_frames": config.max_frames,
            "size": config.size,
            "lpips_weights": str(config.lpips_weights) if config.lpips_weights else None,
            "i3d_weights": str(i3d.weights) if i3d is not None and i3d.weights else None,
            "seed": config.seed,
            "clips": [c.name for c in clips],
        },
        "summary": summary,
        "clips": records,
        "visuals": visuals,
        "per_frame": per_frame,
    }


def summarise(
    records: list[dict[str, Any]],
    methods: Sequence[str],
    ratios: Sequence[float],
    features: dict[str, dict[tuple[str, str], list[np.ndarray]]],
    gt_features: dict[str, dict[str, list[np.ndarray]]],
    fvd_reason: str | None,
    lpips_reason: str | None,
) -> list[dict[str, Any]]:
    """One row per (method, ratio or "all", scope): clip means, FVD, and "n/a (...)" where unavailable. The
    full-frame rows also carry the seam metric: ``seam_ratio``, ``seam_step``, ``seam_inside`` and ``seam_gt``
    (the ground truth's ratio), NaN on the region rows."""
    rows = []
    groups = [(_ratio_key(r), [r]) for r in ratios] + ([("all", list(ratios))] if len(ratios) > 1 else [])
    for method in methods:
        for rkey, members in groups:
            chosen = [r for r in records if r["method"] == method and r["ratio"] in members]
            for scope in SCOPES:
                row: dict[str, Any] = {"method": method, "ratio": rkey, "scope": scope, "clips": len(chosen)}
                for metric in (*IMAGE_METRICS, "lpips", *TEMPORAL_METRICS):
                    values = [r[scope].get(metric) for r in chosen]
                    row[metric] = lpips_reason if metric == "lpips" and lpips_reason else finite_mean(values)
                row["fvd"] = fvd_reason or _fvd_for(
                    features[scope], gt_features[scope], method, [_ratio_key(r) for r in members]
                )
                # the seam lies on the frame, not in a scope: its columns are filled on the full-frame rows
                for metric in (*SEAM_METRICS, "gt"):
                    values = [r["seam"][metric] for r in chosen if "seam" in r] if scope == "full" else []
                    row[f"seam_{metric}"] = finite_mean(values)
                rows.append(row)
    return rows


def _fvd_for(features, gt_features, method: str, rkeys: Sequence[str]) -> float | str:
    pred = [f for k in rkeys for f in features.get((method, k), [])]
    real = [f for k in rkeys for f in gt_features.get(k, [])]
    if len(pred) < 2 or len(real) < 2:
        return "n/a (FVD needs at least 2 videos)"
    return fvd_from_features(np.stack(pred), np.stack(real))


# ------------------------------------------------------------------------------------- scoring two files


def border_to_px(border: Sequence[float], height: int, width: int) -> tuple[int, int, int, int]:
    """A generated border (L, T, R, B) as fractions of the output frame (or whole pixels, when any value is >= 1)
    -> whole pixels; UserError when no region or no known pixel is left."""
    fractions = tuple(border)
    if len(fractions) != 4 or not all(math.isfinite(v) and v >= 0 for v in fractions):
        raise UserError(f"the border needs four numbers >= 0 (LEFT, TOP, RIGHT, BOTTOM), got {fractions}")
    left, top, right, bottom = fractions
    if any(v >= 1 for v in fractions):
        pads = (int(left), int(top), int(right), int(bottom))
    else:
        pads = (
            int(round(left * width)),
            int(round(top * height)),
            int(round(right * width)),
            int(round(bottom * height)),
        )
    if sum(pads) == 0:
        raise UserError(f"the pad {tuple(fractions)} leaves no generated region in a {width}x{height} frame")
    if pads[0] + pads[2] >= width or pads[1] + pads[3] >= height:
        raise UserError(f"the pad {tuple(fractions)} leaves no known region in a {width}x{height} frame")
    return pads


def score_files(
    pred_path: str | os.PathLike,
    gt_path: str | os.PathLike | None,
    border: Sequence[float],
    *,
    lpips_weights: str | os.PathLike | None = None,
    max_frames: int | None = None,
    device: str | None = None,
) -> dict[str, Any]:
    """Score an existing prediction (video file or frame folder) against its ground truth.

    Returns ``{"full": {...}, "region": {...}, "seam": {...}, "frames": N, "pad_px": [...], "unavailable":
    {...}}``. Without a ground truth (``gt_path`` None) only the seam metric is computed: ``{"seam": {...},
    "frames": N, "pad_px": [...], "unavailable": {...}}``.
    """
    pred, _ = read_video(pred_path, max_frames)
    if gt_path is None:
        pads = border_to_px(border, pred.shape[1], pred.shape[2])
        seam = seam_scores(pred, pads)
        seam.pop("per_frame")
        reason = "n/a (no ground truth given)"
        return {
            "seam": seam,
            "frames": int(len(pred)),
            "pad_px": list(pads),
            "unavailable": {name: reason for name in (*IMAGE_METRICS, "lpips", *TEMPORAL_METRICS, "fvd")},
        }
    gt, _ = read_video(gt_path, max_frames)
    if len(pred) != len(gt):
        raise UserError(f"prediction has {len(pred)} frames but ground truth has {len(gt)}")
    if pred.shape[1:3] != gt.shape[1:3]:
        raise UserError(
            f"prediction is {pred.shape[2]}x{pred.shape[1]} but ground truth is {gt.shape[2]}x{gt.shape[1]}"
        )
    pads = border_to_px(border, gt.shape[1], gt.shape[2])
    lpips_model, lpips_reason = _lpips_or_reason(Path(lpips_weights) if lpips_weights else None, device)
    scores = score_video(pred, gt, pads, lpips_model)
    scores.pop("per_frame")
    unavailable = {"fvd": "n/a (FVD compares sets of at least 2 videos; use m3ddm evaluate)"}
    if lpips_reason:
        unavailable["lpips"] = lpips_reason
    return {
        "full": scores["full"],
        "region": scores["region"],
        "seam": scores["seam"],
        "frames": scores["frames"],
        "pad_px": list(pads),
        "unavailable": unavailable,
    }

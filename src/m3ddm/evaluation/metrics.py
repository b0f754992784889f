"""Per-frame image metrics on frames in [0, 1]: MSE, PSNR, SSIM and the detail ratio, on the full frame or a region,
and the seam metric (how much the step across the edge of the known region stands out from the image's own steps).

Conventions (stated in every report):

* frames are RGB, ``float64`` in [0, 1] (uint8 / 255); a frame's score averages all pixels and channels;
* PSNR = 10 log10(1 / MSE) per frame (data range 1); an exact frame (MSE < 1e-10) is capped at 100 dB;
* SSIM follows Wang et al. (2004) with a Gaussian window: sigma 1.5, 11 taps (radius 5), K1 0.01, K2 0.03,
  data range 1, population (not sample) covariances, computed per RGB channel and averaged over channels --
  the same as scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=1, channel_axis=-1)``. The filters mirror the image at its edges
  (scipy "reflect"). The full-frame SSIM is the mean of the SSIM map without its 5-pixel border (the
  window's "valid" part, as scikit-image); the region SSIM is the mean of the map over the region's pixels,
  border included, because generated strips touch the frame edge.
* the detail ratio (:func:`detail_ratio`): the mean fine detail (image minus its Gaussian blur, sigma 1.5) of the
  prediction over the ground truth's, on the same pixels; about 1 = as much texture as the truth, below = smoother;
* the seam metric (:func:`seam_steps`, :func:`seam_ratio`) needs no ground truth: the mean absolute step across
  the seam line (between the first known and the last generated row or column) over the mean absolute step
  between neighbouring rows/columns in the 4 rows/columns just inside the known region; about 1 = no visible seam.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from m3ddm.utils.pixels import PSNR_CAP_DB, psnr, to_unit

SSIM_SIGMA = 1.5
SSIM_RADIUS = 5  # 11 taps: int(3.5 * 1.5 + 0.5), scikit-image's truncate=3.5
SSIM_K1, SSIM_K2 = 0.01, 0.03

PadPx = tuple[int, int, int, int]  # (left, top, right, bottom) in pixels


def region_mask(height: int, width: int, pad_px: Sequence[int]) -> np.ndarray:
    """Boolean ``[H, W]`` mask of the generated border given ``(left, top, right, bottom)`` pixels."""
    left, top, right, bottom = (int(p) for p in pad_px)
    if min(left, top, right, bottom) < 0:
        raise ValueError(f"negative pad {tuple(pad_px)}")
    mask = np.ones((height, width), dtype=bool)
    mask[top : height - bottom, left : width - right] = False  # the known (kept) rectangle
    return mask


def _masked_mean(values: np.ndarray, mask: np.ndarray | None) -> float:
    """Mean of ``[H, W]`` or ``[H, W, C]`` values, over the pixels where ``mask`` is set (all if None)."""
    if mask is None:
        return float(values.mean())
    return float(values[mask].mean())


def mse(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean squared error of one frame pair (``[H, W, C]`` in [0, 1]) over ``mask`` pixels."""
    return _masked_mean((to_unit(pred) - to_unit(gt)) ** 2, mask)


def psnr_from_mse(value: float | np.ndarray, data_range: float = 1.0) -> float | np.ndarray:
    """PSNR in dB for a mean squared error on data of the given range; capped at 100 dB for exact frames."""
    result = np.minimum(psnr(value, data_range), PSNR_CAP_DB)
    return float(result) if np.ndim(result) == 0 else result


def gaussian_window(sigma: float = SSIM_SIGMA, radius: int = SSIM_RADIUS) -> np.ndarray:
    """Normalised 1-D Gaussian taps (``2 * radius + 1`` of them)."""
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    taps = np.exp(-(x**2) / (2.0 * sigma**2))
    return taps / taps.sum()


def _blur(image: np.ndarray, taps: np.ndarray) -> np.ndarray:
    out = ndimage.correlate1d(image, taps, axis=0, mode="reflect")
    return ndimage.correlate1d(out, taps, axis=1, mode="reflect")


def ssim_map(pred: np.ndarray, gt: np.ndarray, data_range: float = 1.0) -> np.ndarray:
    """Per-pixel SSIM of one frame pair, averaged over channels: ``[H, W(, C)]`` -> ``[H, W]``."""
    x, y = to_unit(pred), to_unit(gt)
    if x.shape != y.shape:
        raise ValueError(f"SSIM needs equal shapes, got {x.shape} and {y.shape}")
    taps = gaussian_window()
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    mu_x, mu_y = _blur(x, taps), _blur(y, taps)
    var_x = _blur(x * x, taps) - mu_x**2
    var_y = _blur(y * y, taps) - mu_y**2
    cov = _blur(x * y, taps) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    s = num / den
    return s.mean(axis=-1) if s.ndim == 3 else s


def ssim(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> float:
    """SSIM of one frame pair: full frame (``mask`` None, 5-px border excluded) or mean over ``mask``."""
    smap = ssim_map(pred, gt)
    if mask is not None:
        return _masked_mean(smap, mask)
    r = SSIM_RADIUS
    if smap.shape[0] > 2 * r and smap.shape[1] > 2 * r:
        smap = smap[r:-r, r:-r]
    return float(smap.mean())


def fine_detail(image: np.ndarray) -> np.ndarray:
    """Per-pixel amount of fine detail ``[H, W]``: the absolute difference between the image and its Gaussian blur
    (SSIM's window, sigma 1.5), averaged over channels."""
    x = to_unit(image)
    high = np.abs(x - _blur(x, gaussian_window()))
    return high.mean(axis=-1) if high.ndim == 3 else high


def detail_ratio(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> float:
    """How much fine detail (texture) the prediction has against the ground truth over ``mask`` (all if None):
    about 1 = as much as the truth, below = smoother (a blur: near 0), above = noisier. NaN on a flat truth."""
    return _ratio_of_means(fine_detail(pred), fine_detail(gt), mask)


def _ratio_of_means(values: np.ndarray, reference: np.ndarray, mask: np.ndarray | None) -> float:
    denominator = _masked_mean(reference, mask)
    return float(_masked_mean(values, mask) / denominator) if denominator > 1e-12 else float("nan")


def frame_scores(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> dict[str, dict[str, float]]:
    """MSE, PSNR, SSIM and the detail ratio of one frame pair on the full frame and on the region ``mask``."""
    x, y = to_unit(pred), to_unit(gt)
    sq = (x - y) ** 2
    smap = ssim_map(x, y)
    full_mse, region_mse = float(sq.mean()), _masked_mean(sq, mask)
    r = SSIM_RADIUS
    inner = smap[r:-r, r:-r] if smap.shape[0] > 2 * r and smap.shape[1] > 2 * r else smap
    detail_x, detail_y = fine_detail(x), fine_detail(y)
    return {
        "full": {"mse": full_mse, "psnr": psnr_from_mse(full_mse), "ssim": float(inner.mean()),
                 "detail": _ratio_of_means(detail_x, detail_y, None)},
        "region": {"mse": region_mse, "psnr": psnr_from_mse(region_mse), "ssim": _masked_mean(smap, mask),
                   "detail": _ratio_of_means(detail_x, detail_y, mask)},
    }


# ------------------------------------------------------------------------------------------------- the seam

SEAM_DEPTH = 4  # steps between neighbouring rows/columns just inside the known region, per side


def seam_steps(frame: np.ndarray, pad_px: Sequence[int], depth: int = SEAM_DEPTH) -> tuple[float, float]:
    """The two halves of the seam metric of one frame ``[H, W(, C)]``, in [0, 1] units.

    For every side with a generated border (pad > 0), along the known rectangle's edge:

    * *seam step*: the absolute difference between the first known row (column) and the generated row (column)
      next to it, e.g. ``|f[y, L] - f[y, L - 1]|`` for the left side and every known row ``y``;
    * *inside step*: the absolute difference between neighbouring rows (columns) just inside the known region,
      ``|f[y, L + k + 1] - f[y, L + k]|`` for ``k = 0 .. depth - 1`` (fewer when the known region is narrower).

    Returns (mean seam step, mean inside step), each pooled over sides, positions and channels. Their ratio is
    the seam metric (:func:`seam_ratio`).
    """
    f = to_unit(np.asarray(frame))
    if f.ndim == 2:
        f = f[..., None]
    height, width = f.shape[:2]
    left, top, right, bottom = (int(p) for p in pad_px)
    x0, x1, y0, y1 = left, width - right, top, height - bottom
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise ValueError(f"pad {tuple(pad_px)} leaves no known region in a {width}x{height} frame")
    # every side as (the known region seen from that side, rows = distance from its edge)
    known = f[y0:y1, x0:x1]
    sides = []
    if top > 0:
        sides.append((f[y0 - 1, x0:x1], known))
    if bottom > 0:
        sides.append((f[y1, x0:x1], known[::-1]))
    if left > 0:
        sides.append((f[y0:y1, x0 - 1], known.transpose(1, 0, 2)))
    if right > 0:
        sides.append((f[y0:y1, x1], known.transpose(1, 0, 2)[::-1]))
    seam_sum = seam_count = inside_sum = inside_count = 0.0
    for outside, inward in sides:
        seam = np.abs(inward[0] - outside)
        seam_sum, seam_count = seam_sum + float(seam.sum()), seam_count + seam.size
        steps = np.abs(np.diff(inward[: depth + 1], axis=0))
        inside_sum, inside_count = inside_sum + float(steps.sum()), inside_count + steps.size
    if not seam_count:
        raise ValueError(f"pad {tuple(pad_px)} has no generated border")
    inside = inside_sum / inside_count if inside_count else float("nan")
    return seam_sum / seam_count, inside


def seam_ratio(seam_step: float, inside_step: float) -> float:
    """Seam step / inside step: about 1 when the seam cannot be told from any other row or column of the image,
    above 1 for a visible seam, below 1 when the border starts flatter than the image (``replicate``: 0). NaN when
    the inside is flat (no step to compare with)."""
    if not math.isfinite(inside_step) or inside_step < 1e-12:
        return float("nan")
    return float(seam_step / inside_step)

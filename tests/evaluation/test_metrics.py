"""MSE / PSNR / SSIM, region masks, and the Frechet distance."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from m3ddm.evaluation.fvd import frechet_distance, fvd_from_features, gaussian_stats
from m3ddm.evaluation.metrics import (
    detail_ratio,
    frame_scores,
    gaussian_window,
    mse,
    psnr_from_mse,
    region_mask,
    ssim,
)


def test_psnr_from_known_mse() -> None:
    assert psnr_from_mse(0.01) == pytest.approx(20.0)
    assert psnr_from_mse(1e-4) == pytest.approx(40.0)
    assert psnr_from_mse(0.25, data_range=1.0) == pytest.approx(10 * np.log10(4))
    assert psnr_from_mse(0.0) == pytest.approx(100.0)  # exact frames are capped, not infinite
    # An image off by a constant 0.1 everywhere has MSE 0.01, so PSNR 20 dB.
    gt = np.full((8, 8, 3), 0.5)
    assert mse(gt + 0.1, gt) == pytest.approx(0.01)
    assert psnr_from_mse(mse(gt + 0.1, gt)) == pytest.approx(20.0)


def test_uint8_frames_are_scaled_to_unit_range() -> None:
    a = np.zeros((4, 4, 3), np.uint8)
    b = np.full((4, 4, 3), 255, np.uint8)
    assert mse(a, b) == pytest.approx(1.0)


def test_gaussian_window_has_11_normalised_taps() -> None:
    taps = gaussian_window()
    assert taps.shape == (11,)
    assert taps.sum() == pytest.approx(1.0)
    assert taps[5] == taps.max() and taps[0] == pytest.approx(taps[10])


def test_ssim_is_one_for_identical_frames() -> None:
    frame = np.random.default_rng(0).random((40, 50, 3))
    assert ssim(frame, frame) == pytest.approx(1.0)
    assert ssim(frame, frame, mask=region_mask(40, 50, (5, 0, 5, 0))) == pytest.approx(1.0)


@pytest.mark.parametrize("noise", [None, 0.05, 0.3])
def test_ssim_matches_scikit_image_gaussian_ssim(noise: float | None) -> None:
    rng = np.random.default_rng(1)
    a = rng.random((48, 64, 3))
    b = rng.random((48, 64, 3)) if noise is None else np.clip(a + noise * rng.standard_normal(a.shape), 0, 1)
    reference = structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1, channel_axis=-1
    )
    assert abs(ssim(a, b) - reference) < 1e-3
    # Smooth images, where structure matters more than noise.
    ys, xs = np.mgrid[0:48, 0:64] / 10.0
    smooth = np.stack([np.sin(xs), np.cos(ys), np.sin(xs + ys)], axis=-1) * 0.4 + 0.5
    shifted = np.roll(smooth, 2, axis=1)
    reference = structural_similarity(
        smooth,
        shifted,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=1,
        channel_axis=-1,
    )
    assert abs(ssim(smooth, shifted) - reference) < 1e-3


def test_region_mask_marks_the_border() -> None:
    mask = region_mask(6, 10, (2, 1, 3, 0))
    assert mask[:, :2].all() and mask[:, 7:].all() and mask[0].all()
    assert not mask[1:, 2:7].any()
    assert mask.sum() == 6 * 10 - 5 * 5


def test_region_scores_ignore_changes_inside_the_known_region() -> None:
    rng = np.random.default_rng(2)
    gt = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    pads = (8, 0, 8, 0)
    mask = region_mask(32, 48, pads)
    pred = gt.copy()
    pred[mask] = rng.integers(0, 256, (int(mask.sum()), 3), dtype=np.uint8)  # a (bad) generated border
    tampered = pred.copy()
    tampered[:, 8:40] = 255 - tampered[:, 8:40]  # wreck the known region
    a, b = frame_scores(pred, gt, mask), frame_scores(tampered, gt, mask)
    assert a["region"]["mse"] == b["region"]["mse"]
    assert a["region"]["psnr"] == b["region"]["psnr"]
    # SSIM's window reaches 5 px into the known area, so only pixels further away are fully independent.
    assert a["full"]["mse"] < b["full"]["mse"]
    far = region_mask(32, 48, (3, 0, 3, 0))
    far_a, far_b = ssim(pred, gt, far), ssim(tampered, gt, far)
    assert far_a == pytest.approx(far_b)


def test_frechet_distance_is_zero_for_identical_features() -> None:
    feats = np.random.default_rng(3).standard_normal((10, 400))
    assert fvd_from_features(feats, feats) == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_matches_closed_form_for_diagonal_gaussians() -> None:
    rng = np.random.default_rng(4)
    mu1, mu2 = rng.standard_normal(16), rng.standard_normal(16)
    s1, s2 = rng.uniform(0.1, 3.0, 16), rng.uniform(0.1, 3.0, 16)
    expected = ((mu1 - mu2) ** 2).sum() + (s1 + s2 - 2 * np.sqrt(s1 * s2)).sum()
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-10)


def test_frechet_distance_for_rotated_full_covariances() -> None:
    # Same Gaussian seen in a rotated basis: a mean shift only.
    rng = np.random.default_rng(5)
    q, _ = np.linalg.qr(rng.standard_normal((8, 8)))
    sigma = q @ np.diag(rng.uniform(0.5, 2.0, 8)) @ q.T
    mu = rng.standard_normal(8)
    assert frechet_distance(mu, sigma, mu + 1.0, sigma) == pytest.approx(8.0, rel=1e-9)


def test_frechet_distance_stays_real_and_finite_for_singular_covariances() -> None:
    rng = np.random.default_rng(6)
    a, b = rng.standard_normal((5, 400)), rng.standard_normal((5, 400)) + 0.5  # rank-4 covariances
    value = fvd_from_features(a, b)
    assert np.isfinite(value) and value > 0
    with pytest.raises(ValueError):
        gaussian_stats(a[:1])


def test_the_detail_ratio_tells_a_blur_from_texture() -> None:
    rng = np.random.default_rng(0)
    texture = rng.uniform(0, 1, (32, 48, 3))
    mask = region_mask(32, 48, (12, 0, 12, 0))
    assert detail_ratio(texture, texture, mask) == pytest.approx(1.0)
    blurred = texture.copy()
    blurred[mask] = texture.mean()  # a flat border: no detail there, the picture's own untouched
    scores = frame_scores(blurred, texture, mask)
    assert scores["region"]["detail"] == pytest.approx(0.0, abs=0.2)  # the flat border's edge still steps once
    assert 0.4 < scores["full"]["detail"] < 0.8
    assert detail_ratio(np.clip(texture * 2 - 0.5, 0, 1), texture, mask) > 1.3  # a stronger texture: above 1
    assert np.isnan(detail_ratio(texture, np.full_like(texture, 0.5), mask))  # nothing to compare with

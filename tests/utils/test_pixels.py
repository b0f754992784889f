"""The pixel ranges and PSNR of ``m3ddm.utils.pixels``: exact round trips, the official rounding, PSNR's edge cases."""

import math

import numpy as np
import pytest
import torch

from m3ddm.utils.pixels import PSNR_CAP_DB, psnr, signed_to_uint8, to_signed, to_unit, unit_to_uint8


def _frames(n: int = 2, h: int = 3, w: int = 5) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def test_signed_round_trip_is_exact_for_every_uint8_value():
    values = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1).repeat(3, axis=-1)
    pixels = to_signed(values)
    assert pixels.shape == (1, 3, 16, 16) and pixels.dtype == torch.float32
    assert float(pixels.min()) == -1.0 and float(pixels.max()) == 1.0
    assert np.array_equal(signed_to_uint8(pixels), values)


def test_to_signed_takes_arrays_lists_and_tensors_alike():
    frames = _frames()
    from_array = to_signed(frames)
    assert torch.equal(from_array, to_signed(list(frames)))
    assert torch.equal(from_array, to_signed(torch.from_numpy(frames)))
    assert torch.equal(to_signed(frames[0]), from_array[0])  # one frame [H, W, 3] -> [3, H, W]


def test_signed_to_uint8_clamps_and_rounds_like_the_official_driver():
    pixels = torch.tensor([-3.0, -1.0, 0.0, 0.5, 1.0, 7.0]).reshape(1, 6, 1, 1).expand(1, 6, 1, 3).movedim(-1, 1)
    out = signed_to_uint8(pixels)[0, :, 0, 0]  # [N, H, W, 3]: the 6 values down one column
    official = [round((max(-1, min(1, x)) / 2 + 0.5) * 255) for x in (-3.0, -1.0, 0.0, 0.5, 1.0, 7.0)]
    assert out.tolist() == official == [0, 0, 128, 191, 255, 255]


def test_unit_range_round_trip_and_float_input_kept():
    frames = _frames()
    unit = to_unit(frames)
    assert unit.dtype == np.float64 and unit.max() <= 1.0
    assert np.array_equal(unit_to_uint8(unit), frames)
    already = np.array([0.25, 1.5, -0.5])
    assert np.array_equal(to_unit(already), already)  # float input is taken as already in [0, 1]
    assert unit_to_uint8(already).tolist() == [64, 255, 0]  # clamped


def test_psnr_of_known_errors_and_of_exact_data():
    assert psnr(255.0**2 / 100) == pytest.approx(20.0)
    assert psnr(0.01, peak=1.0) == pytest.approx(20.0)
    assert psnr(0.0) == math.inf
    many = psnr(np.array([0.0, 0.01]), peak=1.0)
    assert many[0] == math.inf and many[1] == pytest.approx(20.0)
    assert PSNR_CAP_DB == 100.0

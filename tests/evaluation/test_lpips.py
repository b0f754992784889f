"""LPIPS-Alex: architecture, loading local weights under lpips' / torchvision's names, region scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from m3ddm.errors import UserError
from m3ddm.evaluation.lpips import LPIPS, TAP_CHANNELS, load_lpips, lpips_per_frame


def _random_model(seed: int = 0) -> LPIPS:
    torch.manual_seed(seed)
    model = LPIPS()
    for k in range(5):  # lpips' heads are non-negative
        head = getattr(model, f"lin{k}").model[1]
        head.weight.data = head.weight.data.abs()
    return model.eval()


def _split_like_the_originals(model: LPIPS, folder: Path) -> Path:
    """torchvision-style AlexNet file (with its classifier) + lpips-style heads file, in one folder."""
    folder.mkdir()
    state = model.state_dict()
    alexnet = {k: v.clone() for k, v in state.items() if k.startswith("features.")}
    alexnet["classifier.1.weight"] = torch.zeros(4, 4)  # torchvision's head: ignored
    save_file(alexnet, str(folder / "alexnet.safetensors"))
    torch.save({k: v.clone() for k, v in state.items() if k.startswith("lin")}, folder / "alex.pth")
    return folder


def test_architecture_matches_alexnet_lpips() -> None:
    model = LPIPS()
    taps = model.taps(torch.zeros(1, 3, 64, 64))
    assert [t.shape[1] for t in taps] == list(TAP_CHANNELS)
    keys = set(model.state_dict())
    assert {f"features.{i}.weight" for i in (0, 3, 6, 8, 10)} <= keys
    assert {f"lin{k}.model.1.weight" for k in range(5)} <= keys
    assert model.state_dict()["lin2.model.1.weight"].shape == (1, 384, 1, 1)
    assert torch.allclose(model.shift.flatten(), torch.tensor([-0.030, -0.088, -0.188]))
    assert torch.allclose(model.scale.flatten(), torch.tensor([0.458, 0.448, 0.450]))


def test_saved_weights_load_back_with_the_same_outputs(tmp_path: Path) -> None:
    model = _random_model()
    x, y = torch.rand(2, 3, 64, 80) * 2 - 1, torch.rand(2, 3, 64, 80) * 2 - 1
    with torch.inference_mode():
        expected = model(x, y)
    assert expected.shape == (2,) and torch.all(expected > 0)
    folder = _split_like_the_originals(model, tmp_path / "lpips")
    one_file = tmp_path / "whole.safetensors"
    save_file(model.state_dict(), str(one_file))
    lpips_full = tmp_path / "lpips_full.pth"  # lpips' own full-model names: net.slice<K>.<N>.*
    renamed = {}
    for key, value in model.state_dict().items():
        if key.startswith("features."):
            index = int(key.split(".")[1])
            slice_number = 1 + sum(index > last for last in (1, 4, 7, 9))
            key = f"net.slice{slice_number}.{key.removeprefix('features.')}"
        renamed[key] = value
    torch.save(renamed, lpips_full)
    for source in (folder, one_file, lpips_full):
        loaded = load_lpips(source)
        with torch.inference_mode():
            assert torch.allclose(loaded(x, y), expected, atol=1e-6), source
            assert torch.allclose(loaded(x, x), torch.zeros(2), atol=1e-6)


def test_wrong_key_set_is_a_clear_user_error(tmp_path: Path) -> None:
    state = _random_model().state_dict()
    missing = {k: v for k, v in state.items() if k != "lin3.model.1.weight"}
    save_file(missing, str(tmp_path / "missing.safetensors"))
    with pytest.raises(UserError, match="missing: lin3.model.1.weight"):
        load_lpips(tmp_path / "missing.safetensors")
    extra = {**state, "vgg.0.weight": torch.zeros(1)}
    save_file(extra, str(tmp_path / "extra.safetensors"))
    with pytest.raises(UserError, match="unexpected: vgg.0.weight"):
        load_lpips(tmp_path / "extra.safetensors")
    wrong_shape = {**state, "lin0.model.1.weight": torch.zeros(1, 32, 1, 1)}
    save_file(wrong_shape, str(tmp_path / "shape.safetensors"))
    with pytest.raises(UserError, match="mis-shaped: lin0.model.1.weight"):
        load_lpips(tmp_path / "shape.safetensors")
    (tmp_path / "garbage.pth").write_bytes(b"\x00garbage")
    with pytest.raises(UserError, match="cannot read LPIPS weights"):
        load_lpips(tmp_path / "garbage.pth")
    with pytest.raises(UserError, match="not found"):
        load_lpips(tmp_path / "nowhere.safetensors")


def test_region_lpips_ignores_changes_inside_the_known_region() -> None:
    model = _random_model(1)
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 256, (2, 64, 96, 3), dtype=np.uint8)
    pred = gt.copy()
    pred[:, :, :24] = rng.integers(0, 256, (2, 64, 24, 3), dtype=np.uint8)  # generated left border
    mask = np.zeros((64, 96), bool)
    mask[:, :24] = True
    tampered = pred.copy()
    tampered[:, :, 48:] = 255 - tampered[:, :, 48:]  # far inside the known area
    a, b = lpips_per_frame(model, pred, gt, mask), lpips_per_frame(model, tampered, gt, mask)
    assert np.all(a["region"] > 0) and np.all(a["full"] > 0)
    # Deep features see a few pixels across the seam, but nothing 24+ pixels away at the finest layers.
    assert np.allclose(a["region"], b["region"], rtol=0.05)
    assert np.all(b["full"] > a["full"])

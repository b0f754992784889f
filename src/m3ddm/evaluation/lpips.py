"""LPIPS (Zhang et al., 2018), AlexNet variant, built here so it needs neither torchvision nor a download.

Architecture (that of the ``lpips`` package, v0.1):

* input RGB in [-1, 1], then the scaling layer ``(x - shift) / scale`` with shift (-0.030, -0.088, -0.188)
  and scale (0.458, 0.448, 0.450);
* AlexNet convolutional features (torchvision's layout ``features.N``), tapped after the five ReLUs
  (64, 192, 384, 256 and 256 channels);
* each tap is unit-normalised over channels (eps 1e-10), the squared difference of the two images' taps
  goes through a learned 1x1 conv to one channel (``linK.model.1.weight``, no bias) and is averaged over
  space; the five values are summed.

Weights are never downloaded: :func:`load_lpips` reads a local safetensors file or a torch state dict
(``weights_only=True``), or a folder of them, merging e.g. lpips' ``alex.pth`` (the heads) with
torchvision's ``alexnet`` state dict. lpips' own full-model names (``net.sliceK.N.weight``) are accepted
too. Region scores average each layer's distance map with the region mask resampled (area) to that
layer's grid, then sum over layers.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from m3ddm.errors import UserError
from m3ddm.utils.pixels import to_signed
from m3ddm.utils.state_dict import state_dict_mismatch

SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
TAP_CHANNELS = (64, 192, 384, 256, 256)
# Index of the last module (a ReLU) of each tap inside ``features``.
TAP_AFTER = (1, 4, 7, 9, 11)
CONV_INDICES = (0, 3, 6, 8, 10)
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt")
_IGNORED_PREFIXES = ("classifier.", "scaling_layer.")  # torchvision's head / lpips' fixed constants


def alexnet_features() -> nn.Sequential:
    """torchvision's AlexNet ``features`` (same layer indices, so ``features.N.weight`` keys load)."""
    return nn.Sequential(
        nn.Conv2d(3, 64, 11, stride=4, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2),
    )


class LinearHead(nn.Module):
    """lpips' ``NetLinLayer``: dropout (inactive in eval) then a 1x1 conv to one channel, no bias."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class LPIPS(nn.Module):
    """LPIPS-Alex distance; ``forward(x, y)`` takes ``[B, 3, H, W]`` in [-1, 1] and returns ``[B]``."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)
        self.features = alexnet_features()
        for k, channels in enumerate(TAP_CHANNELS):
            self.add_module(f"lin{k}", LinearHead(channels))

    def taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = (x - self.shift) / self.scale
        out = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in TAP_AFTER:
                out.append(x)
            if index == TAP_AFTER[-1]:
                break
        return out

    def distance_maps(self, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
        """Per-layer distance maps ``[B, 1, h_k, w_k]`` (before spatial averaging)."""
        maps = []
        for k, (fx, fy) in enumerate(zip(self.taps(x), self.taps(y), strict=True)):
            nx = fx / (fx.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
            ny = fy / (fy.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
            maps.append(getattr(self, f"lin{k}")((nx - ny) ** 2))
        return maps

    def forward(self, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Distance per image; with ``mask`` (``[H, W]``, 1 = region) only over the region."""
        maps = self.distance_maps(x, y)
        if mask is None:
            return sum(d.mean(dim=(1, 2, 3)) for d in maps)
        return _masked_sum(maps, mask.to(x.dtype))


# ---------------------------------------------------------------------------------------------- weights


def _read_state_file(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unreadable / not a tensor dict
        raise UserError(f"cannot read LPIPS weights {path}: {exc}") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"LPIPS weights {path} are not a state dict of tensors")
    return state


def _canonical_key(key: str) -> str:
    key = key.removeprefix("module.")  # saved from DataParallel
    if key.startswith("net.slice"):  # lpips' full model: net.slice<K>.<N>.weight -> features.<N>.weight
        key = "features." + key.split(".", 2)[2]
    return key


def read_lpips_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Merge the tensors of one file, or of every weights file in a folder, under our key names."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in WEIGHT_SUFFIXES)
        if not files:
            raise UserError(f"no LPIPS weight files ({', '.join(WEIGHT_SUFFIXES)}) in {path}")
    elif path.is_file():
        files = [path]
    else:
        raise UserError(f"LPIPS weights not found at {path}")
    merged: dict[str, torch.Tensor] = {}
    for file in files:
        for key, tensor in _read_state_file(file).items():
            key = _canonical_key(key)
            if not key.startswith(_IGNORED_PREFIXES):
                merged[key] = tensor
    return merged


def load_lpips(path: str | os.PathLike, device: str | torch.device = "cpu") -> LPIPS:
    """Build LPIPS-Alex with the local weights at ``path``; a wrong key set or shape is a UserError."""
    state = read_lpips_state(path)
    model = LPIPS()
    problem = state_dict_mismatch({k: v.shape for k, v in model.state_dict().items()}, state)
    if problem:
        raise UserError(
            f"LPIPS weights at {path} do not match LPIPS-Alex ({problem}); expected torchvision AlexNet "
            "'features.N.weight/bias' and lpips heads 'linK.model.1.weight'"
        )
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model.eval().requires_grad_(False).to(device)


def frames_to_lpips_input(frames: np.ndarray) -> torch.Tensor:
    """uint8 ``[F, H, W, 3]`` -> float ``[F, 3, H, W]`` in [-1, 1]."""
    return to_signed(frames)


@torch.inference_mode()
def lpips_per_frame(
    model: LPIPS, pred: np.ndarray, gt: np.ndarray, mask: np.ndarray, batch_size: int = 8
) -> dict[str, np.ndarray]:
    """LPIPS of each frame pair on the full frame and over the region ``mask`` (``[H, W]`` bool)."""
    device = next(model.parameters()).device
    region = torch.from_numpy(mask.astype(np.float32)).to(device)
    full, reg = [], []
    for start in range(0, len(pred), batch_size):
        x = frames_to_lpips_input(pred[start : start + batch_size]).to(device)
        y = frames_to_lpips_input(gt[start : start + batch_size]).to(device)
        maps = model.distance_maps(x, y)
        full.append(sum(d.mean(dim=(1, 2, 3)) for d in maps).cpu())
        reg.append(_masked_sum(maps, region).cpu())
    return {"full": torch.cat(full).double().numpy(), "region": torch.cat(reg).double().numpy()}


def _masked_sum(maps: Sequence[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
    """Sum over layers of each map's mean weighted by ``mask`` ``[H, W]`` area-resampled to its grid."""
    total = 0.0
    for dmap in maps:
        weight = F.adaptive_avg_pool2d(mask[None, None], dmap.shape[-2:]).expand_as(dmap)
        total = total + (dmap * weight).sum(dim=(1, 2, 3)) / weight.sum(dim=(1, 2, 3)).clamp_min(1e-12)
    return total

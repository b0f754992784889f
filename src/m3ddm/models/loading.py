"""Strict loading of UNet folders: the official release layout and our own ``save_pretrained`` layout.

Both are a ``config.json`` plus ``diffusion_pytorch_model.safetensors`` (or ``.bin``, read only through
``torch.load(weights_only=True)``). The model is built on the meta device and the checkpoint tensors are assigned to
it, so a 1.3 B-parameter model is never allocated twice.
"""

from __future__ import annotations

import inspect
import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file

from m3ddm.errors import UserError
from m3ddm.utils.state_dict import state_dict_mismatch

ACCEPTED_CLASS_NAMES = ("UNet3DConditionModel", "M3DDMUNet")
WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")


def read_unet_config(folder: Path, model_cls) -> dict:
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise UserError(f"not a UNet folder (no config.json): {folder}")
    try:
        raw = json.loads(config_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"unreadable UNet config {config_file}: {exc}") from None
    class_name = raw.get("_class_name")
    if class_name not in ACCEPTED_CLASS_NAMES:
        raise UserError(f"{config_file} describes a {class_name!r}, expected one of {ACCEPTED_CLASS_NAMES}")
    accepted = set(inspect.signature(model_cls.__init__).parameters) - {"self"}
    return {k: v for k, v in raw.items() if k in accepted}


def read_state_dict(folder: Path) -> dict[str, torch.Tensor]:
    for name in WEIGHT_FILES:
        path = folder / name
        if path.is_file():
            try:
                if name.endswith(".safetensors"):
                    return load_file(str(path))
                return torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:  # corrupt or truncated file, or a pickle with non-tensor objects
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise UserError(f"cannot read UNet weights {path}: {first}") from None
    raise UserError(f"UNet folder {folder} has no weights ({' or '.join(WEIGHT_FILES)})")


def load_unet_folder(model_cls, folder: str | os.PathLike, torch_dtype: torch.dtype | None = None):
    """Build the model on the meta device and assign the checkpoint's tensors (float32 unless ``torch_dtype``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"UNet folder not found: {folder}")
    config = read_unet_config(folder, model_cls)
    try:
        with torch.device("meta"):
            model = model_cls(**config)
    except (TypeError, ValueError) as exc:
        raise UserError(f"invalid UNet config in {folder}: {exc}") from None
    state = read_state_dict(folder)
    expected = {k: v.shape for k, v in model.state_dict().items()}
    problem = state_dict_mismatch(expected, state)
    if problem:
        raise UserError(f"UNet weights in {folder} do not fit its config: {problem}")
    # As diffusers: float32 unless asked otherwise (a checkpoint stored in fp16 still loads as fp32 by default).
    dtype = torch_dtype or torch.float32
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval()

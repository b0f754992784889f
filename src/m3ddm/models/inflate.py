"""Inflate a Stable Diffusion 1.x 2D UNet into the masked 3D UNet (the paper starts from SD's image prior).

* Spatial weights (convs, norms, self-attention, feed-forwards, resamplers, time MLP) are copied; 2D kernels gain a
  unit time axis.
* The 5 extra input channels (masked-context latent, mask) start at zero, so the noisy latent path is SD's.
* Temporal layers start as the identity: temporal convs are dirac, the temporal transformer's output projection
  is zero, the fps projections in the resnets are zero. The model is then SD run frame by frame.
* Cross-attention key/value projections whose input width differs (SD's 768-wide text vs our 320-wide global
  tokens) are freshly initialised, and that attention's output projection is zeroed so it starts as a no-op.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from m3ddm.errors import UserError


def _load_unet2d(source):
    from diffusers import UNet2DConditionModel

    if isinstance(source, UNet2DConditionModel):
        return source
    path = os.fspath(source)
    if os.path.isdir(os.path.join(path, "unet")):
        path = os.path.join(path, "unet")
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise UserError(f"not a diffusers UNet2DConditionModel folder (no config.json): {path}")
    try:
        return UNet2DConditionModel.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, RuntimeError) as exc:
        raise UserError(f"cannot load the 2D UNet from {path}: {str(exc).splitlines()[0]}") from None


def _adapt(name: str, value: torch.Tensor, target: torch.Tensor) -> torch.Tensor | None:
    """Reshape a 2D weight to its 3D slot; None if it does not fit (left freshly initialised)."""
    if value.shape == target.shape:
        return value
    if name == "conv_in.weight" and value.ndim == 4 and target.ndim == 5:
        out = torch.zeros_like(target)
        out[:, : value.shape[1], 0] = value  # the extra (context, mask) channels start at zero
        return out
    if value.ndim == 4 and target.ndim == 5 and value.shape == target.shape[:2] + target.shape[3:]:
        return value.unsqueeze(2)
    if value.ndim == 2 and target.ndim == 4 and value.shape == target.shape[:2]:  # linear proj_in/out (SD 2.x)
        return value[:, :, None, None]
    return None


def _target_name(name: str) -> str:
    """Map a UNet2DConditionModel key to ours."""
    for conv in (".conv1.", ".conv2."):
        if ".resnets." in name and conv in name:
            return name.replace(conv, f"{conv}spatial_conv.")
    if name.startswith("conv_out."):
        return name.replace("conv_out.", "conv_out.spatial_conv.")
    return name


def inflate_from_unet2d(model_cls, source, **overrides):
    unet2d = _load_unet2d(source)
    c2 = unet2d.config
    config = dict(
        block_out_channels=tuple(c2.block_out_channels),
        layers_per_block=c2.layers_per_block,
        norm_num_groups=c2.norm_num_groups,
        norm_eps=c2.norm_eps,
        attention_head_dim=c2.attention_head_dim,  # SD 1.x stores the head count under this name
        flip_sin_to_cos=c2.flip_sin_to_cos,
        freq_shift=c2.freq_shift,
        downsample_padding=c2.downsample_padding,
        mid_block_scale_factor=c2.mid_block_scale_factor,
    )
    config.update(overrides)
    model = model_cls(**config)
    target = model.state_dict()
    copied, fresh_attn2 = set(), set()
    with torch.no_grad():
        for name, value in unet2d.state_dict().items():
            ours = _target_name(name)
            if ours not in target:
                continue
            adapted = _adapt(ours, value, target[ours])
            if adapted is None:
                if ".attn2.to_k." in ours or ".attn2.to_v." in ours:
                    fresh_attn2.add(ours.split(".attn2.")[0])
                continue
            target[ours].copy_(adapted)
            copied.add(ours)
        model.load_state_dict(target)
        for module_name, module in model.named_modules():
            if module_name.endswith(("proj_out2", "fps_emb_proj")):  # temporal half and fps start as no-ops
                nn.init.zeros_(module.weight)
                nn.init.zeros_(module.bias)
        for prefix in fresh_attn2:
            out = model.get_submodule(f"{prefix}.attn2.to_out.0")
            nn.init.zeros_(out.weight)
            nn.init.zeros_(out.bias)
    if not copied:
        raise UserError("no weight of the 2D UNet fits the 3D UNet: is it a Stable Diffusion 1.x UNet?")
    return model

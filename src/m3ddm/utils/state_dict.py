"""Comparing a checkpoint's tensors with what a model expects; saving a model's weights in another precision."""

from __future__ import annotations

import torch


def state_dict_mismatch(expected: dict[str, torch.Size], found: dict[str, torch.Tensor], limit: int = 3) -> str | None:
    """A one-line description of missing, unexpected and mis-shaped keys, or None when they agree."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    misshaped = [
        f"{k} {tuple(found[k].shape)} vs {tuple(expected[k])}"
        for k in expected if k in found and tuple(found[k].shape) != tuple(expected[k])
    ]
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)):
        if items:
            more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
            parts.append(f"{len(items)} {label}: {', '.join(items[:limit])}{more}")
    return "; ".join(parts) or None


def save_pretrained_as(model, folder, dtype: torch.dtype = torch.float16) -> None:
    """``model.save_pretrained(folder)`` with its parameters stored in ``dtype`` (half the bytes for float16; the
    folder loads as float32). The model itself is left in float32. Casts in place because ``ModelMixin.to(dtype)``
    warns about the modules it would keep in float32."""
    for param in model.parameters():
        param.data = param.data.to(dtype)
    try:
        model.save_pretrained(folder, safe_serialization=True)
    finally:
        for param in model.parameters():
            param.data = param.data.float()

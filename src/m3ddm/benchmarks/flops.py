"""Counting UNet work: calls, batch rows and FLOPs (``torch.utils.flop_counter``).

FLOPs are those of matrix products and convolutions (2 per multiply-add), which is what ``FlopCounterMode``
counts. Attention is counted with the explicit ("naive") backend: torch's CPU flash-attention kernel has no FLOP
formula, and both backends do the same products, so the count does not depend on the backend in use.

``UNetCallRecorder`` wraps ``unet.denoise`` during a run and only notes each call's shape (cheap, so timings are
unaffected); ``flops()`` afterwards replays one call of each distinct shape under the counter and multiplies.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from m3ddm.models.attention import Attention, GlobalContext


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs (matmuls and convolutions) done by ``fn()``."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def attention_backend(unet: torch.nn.Module) -> str | None:
    for module in unet.modules():
        if isinstance(module, Attention):
            return module.backend
    return None


def count_unet_flops(unet, sample: torch.Tensor, timestep, fps, context=None, context_index=None) -> int:
    """FLOPs of one ``unet.denoise`` call, attention counted with the naive backend (see the module doc)."""
    backend = attention_backend(unet)
    if backend is not None:
        unet.set_attention_backend("naive")
    try:
        return count_flops(lambda: unet.denoise(sample, timestep, fps, context, context_index))
    finally:
        if backend is not None:
            unet.set_attention_backend(backend)


def _signature(sample: torch.Tensor, context, context_index) -> tuple:
    ctx = None
    if isinstance(context, GlobalContext):
        ctx = (tuple(context.tokens.shape), context.cache_kv)
    elif torch.is_tensor(context):
        ctx = (tuple(context.shape), False)
    index = None if context_index is None else tuple(torch.as_tensor(context_index).tolist())
    return tuple(sample.shape), sample.dtype, ctx, index


class UNetCallRecorder:
    """Context manager: count ``unet.denoise`` calls and rows by shape; ``flops()`` gives their total FLOPs."""

    def __init__(self, unet):
        self.unet = unet
        self.calls: Counter = Counter()
        self._example: dict[tuple, tuple] = {}

    def __enter__(self) -> UNetCallRecorder:
        original = self.unet.denoise

        def recording(sample, timestep, fps=1, context=None, context_index=None):
            key = _signature(sample, context, context_index)
            self.calls[key] += 1
            if key not in self._example:  # keep one call per shape to replay (its context keeps its K/V cache)
                self._example[key] = (tuple(sample.shape), sample.dtype, sample.device, timestep, fps, context,
                                      context_index)
            return original(sample, timestep, fps, context, context_index)

        self.unet.denoise = recording  # an instance attribute shadows the method
        return self

    def __exit__(self, *exc) -> None:
        del self.unet.denoise

    @property
    def num_calls(self) -> int:
        return sum(self.calls.values())

    @property
    def num_rows(self) -> int:
        """Batch rows evaluated: each row is one window clip through the UNet for one branch and step."""
        return sum(key[0][0] * n for key, n in self.calls.items())

    def flops(self) -> int:
        total = 0
        model = json.dumps(dict(self.unet.config), sort_keys=True, default=str)
        for key, n in self.calls.items():
            shape, dtype, device, timestep, fps, context, index = self._example[key]
            uniform = _is_uniform(timestep) and _is_uniform(fps)  # one embedding per call instead of one per row
            cache_key = (model, key, uniform)
            if cache_key not in _FLOPS_CACHE:  # counting is slow (Python dispatch per op); shapes repeat
                sample = torch.zeros(shape, dtype=dtype, device=device)
                _FLOPS_CACHE[cache_key] = count_unet_flops(self.unet, sample, timestep, fps, context, index)
            total += n * _FLOPS_CACHE[cache_key]
        return total


# FLOPs depend on the model's configuration and the call's shapes only, never on weights or values.
_FLOPS_CACHE: dict[tuple, int] = {}


def _is_uniform(value) -> bool:
    return not torch.is_tensor(value) or value.numel() <= 1 or bool((value == value.flatten()[0]).all())

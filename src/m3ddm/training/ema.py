"""Exponential moving average of the UNet weights (float32 shadow copies), saved and resumed with the run."""

from __future__ import annotations

import torch
from torch import nn


class EMA:
    """``shadow = decay * shadow + (1 - decay) * param`` after every optimizer step.

    With ``warmup`` the decay starts small and grows as ``(1 + n) / (10 + n)`` up to ``decay`` (n = updates so
    far), so early averages are not dominated by the random initialisation. Buffers (BatchNorm statistics of the
    global encoder) are copied, not averaged.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999, warmup: bool = True):
        self.decay = decay
        self.warmup = warmup
        self.num_updates = 0
        self.shadow = {name: p.detach().float().clone() for name, p in model.named_parameters()}
        self.buffers = {name: b.detach().clone() for name, b in model.named_buffers()}

    def current_decay(self) -> float:
        if not self.warmup:
            return self.decay
        return min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        decay = self.current_decay()
        for name, p in model.named_parameters():
            shadow = self.shadow[name]
            shadow.lerp_(p.detach().to(shadow.device, torch.float32), 1.0 - decay)
        for name, b in model.named_buffers():
            self.buffers[name].copy_(b.detach())
        self.num_updates += 1

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        for name, p in model.named_parameters():
            p.copy_(self.shadow[name].to(p.device, p.dtype))
        for name, b in model.named_buffers():
            b.copy_(self.buffers[name].to(b.device, b.dtype))

    def to(self, device: torch.device) -> EMA:
        self.shadow = {k: v.to(device) for k, v in self.shadow.items()}
        self.buffers = {k: v.to(device) for k, v in self.buffers.items()}
        return self

    def state_dict(self) -> dict:
        return {"decay": self.decay, "warmup": self.warmup, "num_updates": self.num_updates,
                "shadow": {k: v.cpu() for k, v in self.shadow.items()},
                "buffers": {k: v.cpu() for k, v in self.buffers.items()}}

    def load_state_dict(self, state: dict) -> None:
        if set(state["shadow"]) != set(self.shadow):
            raise ValueError("EMA state does not match the model's parameters")
        device = next(iter(self.shadow.values())).device if self.shadow else torch.device("cpu")
        self.decay = state["decay"]
        self.warmup = state["warmup"]
        self.num_updates = state["num_updates"]
        self.shadow = {k: v.to(device, torch.float32) for k, v in state["shadow"].items()}
        self.buffers = {k: v.to(device) for k, v in state["buffers"].items()}
